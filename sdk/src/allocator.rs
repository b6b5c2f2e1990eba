//! The component's memory allocator: dlmalloc, as Rust's standard library
//! uses on WebAssembly, whose first memory is a zeroed arena inside the
//! module's initial memory instead of a `memory.grow`.
//!
//! Every request runs in a fresh instance, which starts with the module's
//! initial memory. With the standard allocator, the first allocation of
//! every request grows that memory, and the host must then change the
//! memory's protection twice per request (allow the grown pages, and take
//! them away again before the next instance uses the slot); on a machine
//! with several cores each such change interrupts the other cores to flush
//! their TLBs. A route that allocates less than the arena
//! ([`ARENA_BYTES`]) never grows its memory; one that needs more grows it
//! as before. On by default (the `allocator` feature); a crate with its own
//! `#[global_allocator]` turns the feature off.

#![expect(
    unsafe_code,
    reason = "a global allocator: raw memory, a static the allocator alone touches"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr;

/// Bytes of the arena: the memory a request's allocations use before the
/// allocator grows linear memory. Pages of it the request does not touch
/// cost nothing: the host resets only the pages an instance wrote.
pub const ARENA_BYTES: usize = 1 << 20;

/// WebAssembly's page size.
const PAGE_BYTES: usize = 64 << 10;

/// dlmalloc's flag for memory it did not get from the system and must not
/// merge or release.
const EXTERN_BIT: u32 = 1;

/// The arena, zero when the instance starts (it lives in `.bss`).
#[repr(C, align(65536))]
struct Arena(UnsafeCell<[MaybeUninit<u8>; ARENA_BYTES]>);

// SAFETY: wasm32-wasip2 components run one thread; only the allocator,
// under `ALLOCATOR`'s exclusive access, touches the arena.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([MaybeUninit::uninit(); ARENA_BYTES]));

/// Where dlmalloc gets memory: the arena once, then `memory.grow`.
struct ArenaThenGrow {
    arena_taken: UnsafeCell<bool>,
}

// SAFETY: one thread (see `Arena`).
unsafe impl Send for ArenaThenGrow {}

// SAFETY: `alloc` hands out the arena at most once and otherwise fresh pages
// from `memory.grow`; both are zeroed, unused memory the caller then owns.
// Nothing is ever given back, as the standard allocator on WebAssembly does.
unsafe impl dlmalloc::Allocator for ArenaThenGrow {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: one thread, and no reference to the flag outlives this.
        let taken = unsafe { &mut *self.arena_taken.get() };
        if !*taken && size <= ARENA_BYTES {
            *taken = true;
            return (ARENA.0.get().cast::<u8>(), ARENA_BYTES, EXTERN_BIT);
        }
        let pages = size.div_ceil(PAGE_BYTES);
        let previous = core::arch::wasm32::memory_grow(0, pages);
        if previous == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        ((previous * PAGE_BYTES) as *mut u8, pages * PAGE_BYTES, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE_BYTES
    }
}

/// The component's global allocator.
pub struct Allocator(UnsafeCell<dlmalloc::Dlmalloc<ArenaThenGrow>>);

// SAFETY: one thread (see `Arena`).
unsafe impl Sync for Allocator {}

impl Allocator {
    /// Exclusive access to dlmalloc's state.
    ///
    /// # Safety
    /// One thread only, and no other reference to the state alive: each
    /// allocator call takes it once, and dlmalloc does not call back in.
    #[expect(clippy::mut_from_ref, reason = "exclusive by the single thread")]
    unsafe fn state(&self) -> &mut dlmalloc::Dlmalloc<ArenaThenGrow> {
        // SAFETY: see the function's contract.
        unsafe { &mut *self.0.get() }
    }
}

// SAFETY: every call forwards to dlmalloc with the layout's size and
// alignment, as Rust's own WebAssembly allocator does.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread; the state is not otherwise borrowed.
        unsafe { self.state().malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe { self.state().calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `alloc`; `ptr` came from this allocator with `layout`.
        unsafe { self.state().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`.
        unsafe {
            self.state()
                .realloc(ptr, layout.size(), layout.align(), new_size)
        }
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(
    ArenaThenGrow {
        arena_taken: UnsafeCell::new(false),
    },
)));
