//! A global allocator that serves an oversized allocation made while decoding a request from address space that is never backed, and trips a flag that fails the decode.
//!
//! `kafka-protocol` 0.18 decodes an array by calling `Vec::with_capacity(n)` with the count read
//! off the wire, before it checks that `n` elements could fit in the bytes that remain. A 20-byte
//! request claiming 2^31−1 elements asks the system allocator for ~150 GB, which refuses, and
//! Rust aborts the process. This crate closes that hole for every request type and version the
//! crate knows, without a patched copy of it:
//!
//! - [`decode_scope`] runs a (synchronous) decode with a byte budget on the current thread.
//! - Inside a scope, an allocation above the budget is not given to the system allocator. It gets
//!   a `PROT_NONE` anonymous mapping of the asked size: address space only, no memory committed,
//!   not counted by any overcommit policy, and any touch of it would fault. The scope is marked
//!   tripped.
//! - The caller's buffer reports no bytes left once the scope is tripped ([`tripped`]), so the
//!   decoder fails on its very next read, before it can write a single element into the mapping;
//!   the vector is dropped and the mapping unmapped. The caller rejects the request.
//!
//! Invariant: guarded memory is never written (nothing is pushed into it), so `realloc` of it
//! needs no copy. Outside a scope, and for allocations within the budget, this is the system
//! allocator with one comparison added.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Allocations at or below this size are never guarded, whatever the budget.
const GUARD_FLOOR_BYTES: usize = 64 * 1024;
/// Guarded mappings alive at once, across threads (each scope holds at most a few, briefly).
const GUARDED_SLOTS: usize = 256;

thread_local! {
    static BUDGET_BYTES: Cell<usize> = const { Cell::new(0) };
    static TRIPPED: Cell<bool> = const { Cell::new(false) };
}

static GUARDED: [AtomicUsize; GUARDED_SLOTS] = [const { AtomicUsize::new(0) }; GUARDED_SLOTS];

/// The system allocator, with guarded allocations inside a [`decode_scope`].
pub struct GuardedAlloc;

/// Runs `f` with allocations above `budget_bytes` guarded; returns its result and whether any
/// allocation was over the budget (then the result must be discarded and the input rejected).
pub fn decode_scope<R>(budget_bytes: usize, f: impl FnOnce() -> R) -> (R, bool) {
    let previous = BUDGET_BYTES.with(|b| b.replace(budget_bytes.max(GUARD_FLOOR_BYTES)));
    let was_tripped = TRIPPED.with(|t| t.replace(false));
    let r = f();
    let tripped = TRIPPED.with(|t| t.replace(was_tripped));
    BUDGET_BYTES.with(|b| b.set(previous));
    (r, tripped)
}

/// Whether an allocation of the current thread's scope went over its budget.
pub fn tripped() -> bool {
    TRIPPED.try_with(Cell::get).unwrap_or(false)
}

fn over_budget(size: usize) -> bool {
    size > GUARD_FLOOR_BYTES && BUDGET_BYTES.try_with(|b| b.get() != 0 && size > b.get()).unwrap_or(false)
}

fn page_rounded(size: usize) -> usize {
    size.div_ceil(4096) * 4096
}

/// Maps `layout.size()` bytes of inaccessible address space and remembers it; null if it cannot.
fn reserve(layout: Layout) -> *mut u8 {
    if layout.align() > 4096 {
        return std::ptr::null_mut();
    }
    let Some(slot) = GUARDED.iter().find(|s| s.load(Ordering::Relaxed) == 0) else {
        return std::ptr::null_mut();
    };
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), page_rounded(layout.size()), libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0)
    };
    if p == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    if slot.compare_exchange(0, p as usize, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        // Another thread took the slot meanwhile: give the mapping back and let the system try.
        // SAFETY: `p` is the mapping made above, of this length, used by no one.
        unsafe { libc::munmap(p, page_rounded(layout.size())) };
        return std::ptr::null_mut();
    }
    TRIPPED.with(|t| t.set(true));
    p.cast()
}

/// Unmaps `ptr` if it is a guarded mapping; false if it is the system allocator's.
fn release(ptr: *mut u8, size: usize) -> bool {
    let addr = ptr as usize;
    for slot in &GUARDED {
        if slot.load(Ordering::Acquire) == addr && slot.compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            // SAFETY: the slot held this address, so it is a mapping `reserve` made of this size.
            unsafe { libc::munmap(ptr.cast(), page_rounded(size)) };
            return true;
        }
    }
    false
}

fn is_guarded(ptr: *mut u8) -> bool {
    let addr = ptr as usize;
    GUARDED.iter().any(|s| s.load(Ordering::Acquire) == addr)
}

// SAFETY: every pointer handed out is either the system allocator's, for the same layout, or a
// fresh page-aligned mapping of at least the layout's size; each is freed the way it was made.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_budget(layout.size()) {
            let p = reserve(layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Zeroed memory is readable by contract: never guarded.
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() > GUARD_FLOOR_BYTES && release(ptr, layout.size()) {
            return;
        }
        // SAFETY: not a guarded mapping, so the system allocator made it with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() > GUARD_FLOOR_BYTES && is_guarded(ptr) {
            // Guarded memory was never written: nothing to copy.
            let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                return std::ptr::null_mut();
            };
            // SAFETY: a valid layout of non-zero size (it exceeds the floor or came from one).
            let p = unsafe { self.alloc(new_layout) };
            if !p.is_null() {
                release(ptr, layout.size());
            }
            return p;
        }
        // SAFETY: a system allocation, forwarded with its layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests;
