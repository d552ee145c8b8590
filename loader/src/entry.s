// The loader's first instructions, and the few it needs at the end.
//
// The firmware (or QEMU, given the raw image) loads kernel8.img at 0x80000 and enters it at EL2
// on core 0, with x0 = device tree and secondaries parked in its spin table. The loader is linked
// at LOADER_BASE (linker/loader.ld), far above, so that the kernel it receives can be written at
// 0x80000: until the copy is done this code must be position independent (adr, not absolute
// addresses), and it writes nothing below 0x80000. x0-x3 are kept for the kernel.

.section .text.boot, "ax"
// arm64 Image header, as the kernel's: the firmware and QEMU load it at text_offset 0x80000.
graft_loader_header:
    b       _start                      // code0
    .long   0                           // code1
    .quad   __text_offset               // text_offset
    .quad   __image_size                // image_size, .bss and stack included
    .quad   0x2                         // flags: little endian, 4 KiB pages, fixed placement
    .quad   0, 0, 0                     // res2-res4
    .byte   0x41, 0x52, 0x4d, 0x64      // magic "ARM\x64" at offset 0x38
    .long   0                           // res5

.global _start
_start:
    msr     daifset, #0xf
    mrs     x9, mpidr_el1
    and     x9, x9, #0xff
    cbnz    x9, graft_loader_secondary
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, x3
    bl      graft_loader_enable_fp

    adr     x0, __loader_start          // where the firmware put us
    ldr     x1, =__loader_start         // where we are linked
    cmp     x0, x1
    b.eq    graft_loader_high
    ldr     x2, =__loader_load_end
    mov     x3, x1
    // The copy and the original never overlap: loader.ld asserts the loader is smaller than
    // the distance from 0x80000 to LOADER_BASE.
1:  cmp     x3, x2
    b.hs    2f
    ldp     x4, x5, [x0], #16
    stp     x4, x5, [x3], #16
    b       1b
2:  mov     x0, x1
    mov     x1, x2
    bl      graft_loader_sync_range
    bl      graft_loader_sync_icache
    adr     x9, graft_loader_moved      // tell any secondary in the old copy to move up
    mov     w10, #1
    str     w10, [x9]
    dsb     sy
    sev
    ldr     x9, =graft_loader_high
    br      x9

graft_loader_high:
    ldr     x0, =__bss_start
    ldr     x1, =__bss_end
3:  cmp     x0, x1
    b.hs    4f
    stp     xzr, xzr, [x0], #16
    b       3b
4:  ldr     x9, =__stack_top
    mov     sp, x9
    mov     x0, x19
    mov     x1, x20
    mov     x2, x21
    mov     x3, x22
    bl      {main}
    b       graft_loader_park

// Only core 0 loads. A core that enters here anyway (firmware without a spin table) waits in the
// copy it entered until core 0 has moved the loader high, then parks up there, out of the way
// of the kernel written at 0x80000. It never touches the spin table.
graft_loader_secondary:
    adr     x9, graft_loader_moved
    ldr     x10, =__loader_start
    adr     x11, __loader_start
    cmp     x10, x11
    b.eq    graft_loader_park
5:  ldr     w10, [x9]
    cbnz    w10, 6f
    wfe
    b       5b
6:  ldr     x9, =graft_loader_park
    br      x9

.global graft_loader_park
graft_loader_park:
    wfi
    b       graft_loader_park

.balign 8
graft_loader_moved:
    .quad   0

// FP/SIMD without traps at the level we run at (Rust emits NEON). Clobbers x9.
graft_loader_enable_fp:
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    7f
    mov     x9, #0x33ff                 // CPTR_EL2: RES1 bits, TFP = 0
    msr     cptr_el2, x9
    b       8f
7:  mov     x9, #(3 << 20)              // CPACR_EL1.FPEN = 0b11
    msr     cpacr_el1, x9
8:  isb
    ret

// graft_loader_sync_range(start x0, end x1): makes [start, end) in memory what was written,
// for instruction fetch and for a kernel that starts with its caches off. With the data cache on
// (SCTLR.C), each line is cleaned to the point of coherency; with it off, the writes went to
// memory and each line is invalidated instead, so that no stale line can later shadow them.
// Steps by CTR_EL0.DminLine. Clobbers x0, x2-x5.
.global graft_loader_sync_range
graft_loader_sync_range:
    mrs     x2, CurrentEL
    cmp     x2, #(2 << 2)
    b.ne    9f
    mrs     x3, sctlr_el2
    b       10f
9:  mrs     x3, sctlr_el1
10: mrs     x2, ctr_el0
    ubfx    x2, x2, #16, #4             // DminLine: log2 of the line size in words
    mov     x4, #4
    lsl     x4, x4, x2
    sub     x5, x4, #1
    bic     x0, x0, x5
11: cmp     x0, x1
    b.hs    14f
    tbz     x3, #2, 12f                 // SCTLR.C
    dc      cvac, x0
    b       13f
12: dc      ivac, x0
13: add     x0, x0, x4
    b       11b
14: dsb     sy
    ret

// Invalidates the whole instruction cache, then waits for it and refetches.
.global graft_loader_sync_icache
graft_loader_sync_icache:
    ic      iallu
    dsb     sy
    isb
    ret

// graft_loader_enter(entry x0, x0..x3 for the kernel in x1..x4): never returns.
.global graft_loader_enter
graft_loader_enter:
    mov     x9, x0
    mov     x0, x1
    mov     x1, x2
    mov     x2, x3
    mov     x3, x4
    br      x9
