//! Sanitizer probe: two cores, one rewrites code the other runs, in seven scenarios.
//!
//! Core 0 (the producer) rewrites the first word of function `fN` while core 1 (the consumer)
//! waits; core 1 then calls `fN`. Each scenario is one iteration (marker `ITERATION` = N), so
//! the sanitizer's reports can be checked per scenario:
//!
//! | N | rewrite | producer maintenance | consumer | expected report |
//! | --- | --- | --- | --- | --- |
//! | 1 | `mov x9,#1` -> `mov x9,#2` | none (naive) | spin, call | unpredictable, `clean` |
//! | 2 | same | `DC CVAU; DSB; IC IVAU; DSB` | spin, `ISB`, call | none |
//! | 3 | same | same | spin, call (no `ISB`) | unpredictable, `context-sync` |
//! | 4 | same, through the write alias | none | spin, call | unpredictable, `clean` |
//! | 5 | same, through the write alias | `DC` on alias, `IC` on exec alias | spin, `ISB`, call | none |
//! | 6 | `b` -> `nop` | none | spin, call | stale, not a hazard |
//! | 7 | `b` -> `nop`, then `MARK_PUBLISHED` | none | spin, call | stale hazard |
//!
//! The MMU maps RAM twice: identity at 0x4000_0000 and an alias at 0x8000_0000, both
//! read/write/execute (this probe only needs two virtual addresses for one physical word).
//! Every consumer must still see the new code in QEMU (which keeps translations coherent);
//! the exit code says which scenario did not (10 + N), 0 when all did.
//!
//! With `-append bench` (semihosting `SYS_GET_CMDLINE` gives the kernel path, a space and the
//! `-append` text) both cores instead run a loop of loads, stores, arithmetic and calls
//! (the slowdown measurement); `-append bench-armed` first leaves one rewritten line
//! unsynchronized, so the sanitizer checks every block and follows every load and store.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::arch::global_asm;

/// Marker hints (mirrors of `graft_sanitizer::markers`, kept in sync by the e2e test).
const MARK_PUBLISHED: u32 = 112;
const ITERATION: u32 = 114;
const CORE_ID: u32 = 116;
/// Offset from the identity map to the write alias.
const ALIAS: u64 = 0x4000_0000;
/// Loop count of the timing workload (`-append bench`), per core.
const BENCH_ITERATIONS: u64 = 20_000_000;

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    msr     tpidr_el1, x1               // the core number, for the plugin's core-reg=tpidr_el1
    cbnz    x1, 9f
    bl      mmu_on
    mov     x0, #0
    hint    #{core_id}
    // Semihosting SYS_GET_CMDLINE: "bench" or "bench-armed" selects the timing workload.
    ldr     x1, =cmdline_block
    mov     x0, #0x15
    hlt     #0xf000
    ldr     x4, =cmdline                // "<kernel path> <-append text>": skip the path
7:  ldrb    w5, [x4], #1
    cbz     w5, 8f
    cmp     w5, #' '
    b.ne    7b
    ldrb    w5, [x4]
    ldrb    w6, [x4, #6]
    ldr     x4, =mode
    cmp     w5, #'b'
    b.ne    8f
    mov     w7, #1
    cmp     w6, #'a'
    cinc    w7, w7, eq
    str     w7, [x4]
8:  dsb     ish
    // PSCI CPU_ON(target 1, entry _start, context 0) through HVC (QEMU virt boots at EL1).
    ldr     x0, =0xC4000003
    mov     x1, #1
    adr     x2, _start
    mov     x3, #0
    hvc     #0
    ldr     x4, =mode
    ldr     w5, [x4]
    cbz     w5, producer
    cmp     w5, #2
    b.ne    6f
    bl      f1                      // bench-armed: leave one rewritten line unsynchronized
    adr     x1, f1
    ldr     w2, =0xD2800049
    str     w2, [x1]
6:  ldr     x4, =bench_buf
    bl      bench
    ldr     x4, =done
7:  ldar    w5, [x4]
    cbz     w5, 7b
    mov     x6, #0
    b       4f
9:  bl      mmu_on
    mov     x0, #1
    hint    #{core_id}
    ldr     x4, =mode
    ldr     w5, [x4]
    cbz     w5, consumer
    ldr     x4, =bench_buf + 4096
    bl      bench
    ldr     x4, =done
    mov     w5, #1
    stlr    w5, [x4]
5:  wfi
    b       5b

// The timing workload: a loop of loads, stores, arithmetic and a call (x4 = buffer).
bench:
    mov     x10, x30
    ldr     x6, ={bench_iterations}
1:  ldr     x5, [x4]
    add     x5, x5, x6
    str     x5, [x4, #8]
    ldr     x7, [x4, #16]
    eor     x7, x7, x5
    str     x7, [x4, #16]
    bl      bench_leaf
    subs    x6, x6, #1
    b.ne    1b
    ret     x10
bench_leaf:
    add     x8, x8, #1
    ret

// Identity map RAM at 0x4000_0000, alias it at 0x8000_0000, devices at 0.
mmu_on:
    ldr     x0, =0xFF00             // attr0 device nGnRnE, attr1 normal write-back
    msr     mair_el1, x0
    ldr     x0, =(25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 32))
    msr     tcr_el1, x0
    adr     x0, tables
    msr     ttbr0_el1, x0
    isb
    mrs     x0, sctlr_el1
    orr     x0, x0, #(1 << 0)       // M
    orr     x0, x0, #(1 << 2)       // C
    orr     x0, x0, #(1 << 12)      // I
    msr     sctlr_el1, x0
    isb
    ret

// x0 = iteration, x1 = function, x2 = new word, x3 = alias offset (0 or ALIAS)
.macro producer_start n
    mov     x0, #\n
    hint    #{iteration}
    ldr     x4, =ready
1:  ldar    w5, [x4]
    cmp     w5, #\n
    b.ne    1b
.endm
.macro producer_go n
    ldr     x4, =go
    mov     w5, #\n
    stlr    w5, [x4]
    ldr     x4, =done
1:  ldar    w5, [x4]
    cmp     w5, #\n
    b.ne    1b
.endm

producer:
    ldr     w2, =0xD2800049         // mov x9, #2
    // 1: naive in-place rewrite.
    producer_start 1
    adr     x1, f1
    str     w2, [x1]
    producer_go 1
    // 2: full maintenance.
    producer_start 2
    adr     x1, f2
    str     w2, [x1]
    dc      cvau, x1
    dsb     ish
    ic      ivau, x1
    dsb     ish
    producer_go 2
    // 3: full maintenance, but the consumer skips its ISB.
    producer_start 3
    adr     x1, f3
    str     w2, [x1]
    dc      cvau, x1
    dsb     ish
    ic      ivau, x1
    dsb     ish
    producer_go 3
    // 4: naive rewrite through the write alias.
    producer_start 4
    adr     x1, f4
    ldr     x3, ={alias}
    add     x3, x1, x3
    str     w2, [x3]
    producer_go 4
    // 5: write and clean through the alias, invalidate through the executable address.
    producer_start 5
    adr     x1, f5
    ldr     x3, ={alias}
    add     x3, x1, x3
    str     w2, [x3]
    dc      cvau, x3
    dsb     ish
    ic      ivau, x1
    dsb     ish
    producer_go 5
    // 6: CMODX flip B -> NOP, in flight.
    ldr     w2, =0xD503201F
    producer_start 6
    adr     x1, f6
    str     w2, [x1]
    producer_go 6
    // 7: CMODX flip B -> NOP, marked published.
    producer_start 7
    adr     x1, f7
    str     w2, [x1]
    mov     x0, x1
    mov     x1, #4
    hint    #{published}
    producer_go 7
    // Exit with the first scenario whose consumer did not see the new code.
    ldr     x4, =results
    mov     x6, #1
2:  ldr     x5, [x4, x6, lsl #3]
    cmp     x5, #2
    b.ne    3f
    add     x6, x6, #1
    cmp     x6, #8
    b.ne    2b
    mov     x6, #0
    b       4f
3:  add     x6, x6, #10
4:  ldr     x1, =exit_block
    str     x6, [x1, #8]
    mov     x0, #0x18
    hlt     #0xf000
    b       .

// Consumer side of scenario n: warm the old code, say ready, wait, (ISB), call, report.
.macro consume n, f, isb
    mov     x0, #\n
    hint    #{iteration}
    bl      \f
    ldr     x4, =ready
    mov     w5, #\n
    stlr    w5, [x4]
    ldr     x4, =go
1:  ldar    w5, [x4]
    cmp     w5, #\n
    b.ne    1b
    .if \isb
    isb
    .endif
    bl      \f
    ldr     x4, =results
    str     x9, [x4, #(\n * 8)]
    ldr     x4, =done
    mov     w5, #\n
    stlr    w5, [x4]
.endm

consumer:
    consume 1, f1, 0
    consume 2, f2, 1
    consume 3, f3, 0
    consume 4, f4, 0
    consume 5, f5, 1
    consume 6, f6, 0
    consume 7, f7, 0
5:  wfi
    b       5b

.section .patch, "ax"
.macro movfn name
    .balign 256
\name:
    mov     x9, #1
    ret
.endm
.macro branchfn name
    .balign 256
\name:
    b       1f
    mov     x9, #2
    ret
1:  mov     x9, #1
    ret
.endm
    movfn f1
    movfn f2
    movfn f3
    movfn f4
    movfn f5
    branchfn f6
    branchfn f7

.section .data, "aw"
.balign 4096
tables:
    .quad   0x00000000 | 0x401      // 0x0000_0000: device, AF, block
    .quad   0x40000000 | 0x705      // 0x4000_0000: normal, inner shareable, AF, block
    .quad   0x40000000 | 0x705      // 0x8000_0000: alias of 0x4000_0000
    .fill   509, 8, 0
.balign 64
ready:  .quad 0
.balign 64
go:     .quad 0
.balign 64
done:   .quad 0
.balign 64
results: .fill 8, 8, 0
exit_block:
    .quad   0x20026                 // ADP_Stopped_ApplicationExit
    .quad   0
mode:   .quad 0                     // 0 scenarios, 1 bench, 2 bench-armed
cmdline_block:
    .quad   cmdline
    .quad   4096                    // the kernel's path comes first: leave room
cmdline: .fill 4096, 1, 0
.balign 4096
bench_buf: .fill 8192, 1, 0
"#,
    core_id = const CORE_ID,
    iteration = const ITERATION,
    published = const MARK_PUBLISHED,
    alias = const ALIAS,
    bench_iterations = const BENCH_ITERATIONS,
);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
