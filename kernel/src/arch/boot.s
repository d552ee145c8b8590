// Graft's first instructions, for every core.
//
// The primary core enters at _start (x0 = device tree, unused); secondaries enter at
// graft_secondary_entry with their linear index in x0 (PSCI CPU_ON context id, or a board
// trampoline). Each core: mask interrupts, leave EL2 if it arrived there, enable FP/SIMD before
// any Rust code (Rust emits NEON), install the vectors, unmask SError, and take its own stacks. The primary clears
// .bss once; secondaries turn their MMU on from the configuration the primary published and
// cleaned to the point of coherency, before they touch any shared data.

.section .text.boot, "ax"
// The arm64 Image header (Linux's Documentation/arch/arm64/booting.rst), so that the Raspberry
// Pi firmware and U-Boot's `booti` accept kernel8.img. Execution starts at its first word.
graft_image_header:
    b       _start                      // code0: jump over the header
    .long   0                           // code1
    .quad   __text_offset               // text_offset: load address minus its 2 MiB aligned base
    .quad   __image_size                // image_size, .bss and the arena included
    .quad   0x2                         // flags: little endian, 4 KiB pages, fixed placement
    .quad   0, 0, 0                     // res2-res4
    .byte   0x41, 0x52, 0x4d, 0x64      // magic "ARM\x64" at offset 0x38
    .long   0                           // res5: no PE/COFF header

.global _start
_start:
    mov     x19, #0
    b       graft_common_entry

.global graft_secondary_entry
graft_secondary_entry:
    mov     x19, x0

graft_common_entry:
    msr     daifset, #0xf
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    cmp     x20, #2
    b.ne    1f
    bl      graft_drop_to_el1
1:
    msr     tpidr_el1, x19
    mov     x1, #(3 << 20)              // CPACR_EL1.FPEN = 0b11: no FP/SIMD traps
    msr     cpacr_el1, x1
    ldr     x1, =graft_vectors
    msr     vbar_el1, x1
    isb
    msr     daifclr, #4                 // SError unmasked: reported by the vectors, not lost

    // This core's stacks: x1 = STACKS + index * size of CoreStacks (boot.rs).
    ldr     x1, ={stacks}
    ldr     x2, ={core_stacks_size}
    madd    x1, x19, x2, x1
    cbnz    x19, 3f

    // Primary: zero .bss (which holds the stacks) before the first stack use.
    ldr     x2, =__bss_start
    ldr     x3, =__bss_end
2:  cmp     x2, x3
    b.hs    4f
    stp     xzr, xzr, [x2], #16
    b       2b
4:  bl      graft_take_stacks
    mov     x0, x20
    bl      {primary_main}
    b       graft_halt

3:  // Secondary: MMU on with the primary's tables, then Rust.
    mov     x21, x1
    ldr     x0, ={mmu_config}
    bl      graft_enable_mmu
    mov     x1, x21
    bl      graft_take_stacks
    mov     x0, x19
    mov     x1, x20
    bl      {secondary_main}

graft_halt:
    wfi
    b       graft_halt

// From x1 = this core's CoreStacks: SP_EL1 := top of its exception stack, then select SP_EL0
// (EL1t) := top of its own stack. Exceptions taken from here on switch to SP_EL1 by themselves.
// Clobbers x2.
graft_take_stacks:
    add     x2, x1, #{exception_top}
    mov     sp, x2
    msr     spsel, #0
    add     x2, x1, #{stack_top}
    mov     sp, x2
    ret

// Leaves EL2 for EL1h with interrupts masked, returning to the caller at EL1.
// Clobbers x2.
graft_drop_to_el1:
    mov     x2, #(1 << 31)              // HCR_EL2.RW: EL1 is AArch64; nothing else trapped
    msr     hcr_el2, x2
    mrs     x2, cnthctl_el2             // EL1PCTEN | EL1PCEN: EL1 may use the physical counter/timer
    orr     x2, x2, #3
    msr     cnthctl_el2, x2
    msr     cntvoff_el2, xzr            // virtual time = physical time
    mrs     x2, midr_el1                // EL1 reads the real MIDR and MPIDR
    msr     vpidr_el2, x2
    mrs     x2, mpidr_el1
    msr     vmpidr_el2, x2
    mov     x2, #0x33ff                 // CPTR_EL2: RES1 bits, no FP/SIMD trap
    msr     cptr_el2, x2
    msr     hstr_el2, xzr
    mrs     x2, id_aa64pfr0_el1         // GICv3 present: let EL1 use the ICC_* registers
    ubfx    x2, x2, #24, #4
    cbz     x2, 5f
    mrs     x2, s3_4_c12_c9_5           // ICC_SRE_EL2
    orr     x2, x2, #0x1                // SRE
    orr     x2, x2, #0x8                // Enable: EL1 may use ICC_SRE_EL1
    msr     s3_4_c12_c9_5, x2
    isb
5:  ldr     x2, =0x30d00800             // SCTLR_EL1 RES1 bits, MMU and caches off
    msr     sctlr_el1, x2
    mov     x2, #0x3c5                  // SPSR_EL2: EL1h, DAIF masked
    msr     spsr_el2, x2
    msr     elr_el2, x30
    eret

// Turns the MMU and caches on from x0 -> {{ mair, tcr, ttbr0, sctlr }}. Clobbers x1-x4.
.global graft_enable_mmu
graft_enable_mmu:
    ldp     x1, x2, [x0]
    ldp     x3, x4, [x0, #16]
    msr     mair_el1, x1
    msr     tcr_el1, x2
    msr     ttbr0_el1, x3
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x4
    isb
    ret
