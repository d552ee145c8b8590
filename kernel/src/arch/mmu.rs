//! The MMU: one identity map shared by every core, plus a second, writable view of the arena.
//!
//! Normal memory is write-back cacheable and inner shareable; MMIO is device-nGnRE. The kernel's
//! text is read-only and executable, everything else writable is never executable, and the code
//! arena is mapped twice: executable+read-only at its physical address, writable+never-executable
//! at `physical + WRITE_ALIAS_OFFSET`, as are the pages of kernel text that hold call sites
//! (`patch::call_sites`). No page is writable and executable through one mapping
//! (`SCTLR_EL1.WXN` enforces it as well). Each stack's guard page (`boot::guard_pages`) is left
//! unmapped. Tables are built with `aarch64-paging` from a static
//! pool of pages, by the primary, with the MMU still off.

use crate::arch::boot::MMU_CONFIG;
use aarch64_cpu::registers::{MAIR_EL1, SCTLR_EL1, TCR_EL1};
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{
    Constraints, El1And0, MemoryRegion, PAGE_SIZE, PageTable, Translation, VaRange,
};
use boards::{Board, Current, Region};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Where the writable view of the arena starts, relative to the arena's physical address.
pub const WRITE_ALIAS_OFFSET: usize = 0x40_0000_0000;
/// Virtual address bits: 39 (T0SZ = 25), so the root table is at level 1.
const VA_BITS: u64 = 39;
const ROOT_LEVEL: usize = 1;

/// The system-register values `graft_enable_mmu` (in `boot.s`) loads, in that order.
#[repr(C)]
pub struct MmuConfig {
    /// `MAIR_EL1`.
    pub mair: u64,
    /// `TCR_EL1`.
    pub tcr: u64,
    /// `TTBR0_EL1`.
    pub ttbr0: u64,
    /// `SCTLR_EL1`.
    pub sctlr: u64,
}

const _: () = assert!(core::mem::size_of::<MmuConfig>() == 32);

impl MmuConfig {
    /// All zero: not yet published.
    pub const ZERO: Self = Self {
        mair: 0,
        tcr: 0,
        ttbr0: 0,
        sctlr: 0,
    };
}

// MAIR indices.
const DEVICE: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_0;
const NORMAL: El1Attributes = El1Attributes::ATTRIBUTE_INDEX_1;

const BASE: El1Attributes = El1Attributes::VALID.union(El1Attributes::ACCESSED);
const NEVER_EXECUTE: El1Attributes = El1Attributes::PXN.union(El1Attributes::UXN);
const DEVICE_RW: El1Attributes = BASE.union(DEVICE).union(NEVER_EXECUTE);
const NORMAL_RW: El1Attributes = BASE
    .union(NORMAL)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(NEVER_EXECUTE);
const NORMAL_RO: El1Attributes = NORMAL_RW.union(El1Attributes::READ_ONLY);
/// Executable at EL1 only, never writable.
const NORMAL_RX: El1Attributes = BASE
    .union(NORMAL)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::READ_ONLY)
    .union(El1Attributes::UXN);

/// Pages for translation tables: enough for RAM in 2 MiB blocks with the image split to pages.
const POOL_PAGES: usize = 24;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[PageTable<El1Attributes>; POOL_PAGES]>);

// SAFETY: only the primary allocates from the pool, once, before any other core runs.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([PageTable::EMPTY; POOL_PAGES]));
static POOL_USED: AtomicUsize = AtomicUsize::new(0);

/// Hands out zeroed pages from [`POOL`]; the map is identity, so a table's address is its PA.
struct PoolTranslation;

impl Translation<El1Attributes> for PoolTranslation {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El1Attributes>>, PhysicalAddress) {
        let i = POOL_USED.fetch_add(1, Ordering::Relaxed);
        assert!(i < POOL_PAGES, "page-table pool exhausted");
        // SAFETY: index `i` is in bounds and handed out once, so no other reference to this page
        // exists; the pool lives in .bss, zeroed at boot.
        let page = unsafe { NonNull::from(&mut (*POOL.0.get())[i]) };
        (page, PhysicalAddress(page.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, _page_table: NonNull<PageTable<El1Attributes>>) {
        // The kernel's map only grows; pages are never returned.
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El1Attributes>> {
        NonNull::new(pa.0 as *mut _).expect("page table at address zero")
    }
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __arena_start: u8;
    static __arena_end: u8;
    fn graft_enable_mmu(config: *const MmuConfig);
}

fn symbol(s: &u8) -> usize {
    s as *const u8 as usize
}

/// The arena's physical (= executable) range.
pub fn arena() -> Region {
    // SAFETY: linker-defined symbols; only their addresses are taken.
    unsafe {
        Region {
            start: symbol(&__arena_start),
            end: symbol(&__arena_end),
        }
    }
}

fn map(map: &mut Mapping<PoolTranslation, El1And0>, va: Region, pa: usize, flags: El1Attributes) {
    map.map_range(
        &MemoryRegion::new(va.start, va.end),
        PhysicalAddress(pa),
        flags,
        Constraints::empty(),
    )
    .expect("kernel memory map rejected by aarch64-paging");
}

/// Builds the tables, publishes the configuration for secondaries and turns the MMU on here.
///
/// # Safety
///
/// Call once, on the primary core, with the MMU off and before any secondary starts.
pub unsafe fn init_primary() {
    let mut m =
        Mapping::with_asid_and_va_range(PoolTranslation, 0, ROOT_LEVEL, El1And0, VaRange::Lower);
    let board = Current::memory_map();
    for dev in board.devices {
        map(&mut m, *dev, dev.start, DEVICE_RW);
    }
    // SAFETY: linker-defined symbols; only their addresses are taken.
    let (image, text_end, rodata_end) = unsafe {
        (
            symbol(&__image_start),
            symbol(&__text_end),
            symbol(&__rodata_end),
        )
    };
    // Later calls override earlier ones on the ranges they cover (the table is not live yet).
    map(&mut m, board.ram, board.ram.start, NORMAL_RW);
    map(
        &mut m,
        Region {
            start: image,
            end: text_end,
        },
        image,
        NORMAL_RX,
    );
    map(
        &mut m,
        Region {
            start: text_end,
            end: rodata_end,
        },
        text_end,
        NORMAL_RO,
    );
    // Every stack's guard page stays unmapped: an overflow takes a data abort (reported from the
    // exception stack, see `boot`) instead of writing whatever lies below.
    for (_, _, page) in crate::arch::boot::guard_pages() {
        let guard = Region {
            start: page,
            end: page + PAGE_SIZE,
        };
        map(&mut m, guard, page, El1Attributes::empty());
    }
    let arena = arena();
    map(&mut m, arena, arena.start, NORMAL_RX);
    let alias = Region {
        start: arena.start + WRITE_ALIAS_OFFSET,
        end: arena.end + WRITE_ALIAS_OFFSET,
    };
    map(&mut m, alias, arena.start, NORMAL_RW);
    // The pages of kernel text that hold call sites get the same kind of writable,
    // never-executable view, at the same offset: only their recorded words are written there.
    for page in crate::patch::call_sites::pages() {
        let alias = Region {
            start: page + WRITE_ALIAS_OFFSET,
            end: page + PAGE_SIZE + WRITE_ALIAS_OFFSET,
        };
        map(&mut m, alias, page, NORMAL_RW);
    }

    let config = MmuConfig {
        mair: (MAIR_EL1::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
            + MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc)
            .value,
        tcr: (TCR_EL1::T0SZ.val(64 - VA_BITS)
            + TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL1::SH0::Inner
            + TCR_EL1::TG0::KiB_4
            + TCR_EL1::EPD1::DisableTTBR1Walks
            + TCR_EL1::IPS::Bits_40)
            .value,
        ttbr0: m.root_address().0 as u64,
        sctlr: (SCTLR_EL1::M::Enable
            + SCTLR_EL1::C::Cacheable
            + SCTLR_EL1::I::Cacheable
            + SCTLR_EL1::WXN::Enable
            + SCTLR_EL1::SA::Enable)
            .value
            | SCTLR_RES1,
    };
    // The table lives for the rest of the run on every core.
    core::mem::forget(m);

    // SAFETY: no other core runs yet, so this is the only access to the shared configuration.
    unsafe { MMU_CONFIG.0.get().write(config) };
    // Secondaries read it with their MMU (and caches) off: push it to the point of coherency.
    clean_to_poc(
        MMU_CONFIG.0.get() as usize,
        core::mem::size_of::<MmuConfig>(),
    );
    // SAFETY: the configuration maps all of RAM, the image and the devices the kernel uses, at
    // the same addresses, so execution continues unchanged once translation is on.
    unsafe { graft_enable_mmu(MMU_CONFIG.0.get()) };
}

/// `SCTLR_EL1` bits that are RES1 in ARMv8.0 (EIS, SPAN, EOS, TSCXT, bits 28-29, 23, 22, 20, 11).
const SCTLR_RES1: u64 = 0x30d0_0800;

/// Cleans `[start, start+len)` to the point of coherency, line by line, then waits.
fn clean_to_poc(start: usize, len: usize) {
    let line = crate::arch::cpu::dcache_line();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        // SAFETY: DC CVAC by a mapped address only writes back a cache line; no memory changes.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) addr, options(nostack, preserves_flags)) };
        addr += line;
    }
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
}

const _: () = assert!(PAGE_SIZE == 4096);
