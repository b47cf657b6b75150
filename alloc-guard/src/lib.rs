//! A global allocator that serves an oversized allocation made while decoding a request from address space that is never backed, and trips a flag that fails the decode.
//!
//! `kafka-protocol` 0.18 decodes an array by calling `Vec::with_capacity(n)` with the count read
//! off the wire, before it checks that `n` elements could fit in the bytes that remain. A 20-byte
//! request claiming 2^31−1 elements asks the system allocator for ~150 GB, which refuses, and
//! Rust aborts the process. This crate closes that hole for every request type and version the
//! crate knows, without a patched copy of it:
//!
//! - [`decode_scope`] runs a (synchronous) decode with a byte budget on the current thread.
//! - Inside a scope, an allocation above the budget trips the scope. Up to `MAPPED_ABOVE_BYTES`
//!   (64 MiB) it still comes from the system allocator, which grants that much as untouched
//!   pages; a larger one gets an anonymous `MAP_NORESERVE` mapping of the asked size — address
//!   space whose pages are committed only when written, outside the overcommit heuristics that
//!   refuse a 150 GB `malloc` (where even that is refused, strict overcommit, the mapping is
//!   `PROT_NONE`, which no policy counts).
//! - The caller's buffer reports no bytes left once the scope is tripped ([`tripped`]), so the
//!   decoder fails on its very next read, before it can write a single element into the mapping;
//!   the vector is dropped and the mapping unmapped. The caller rejects the request.
//!
//! Other code that runs inside a scope (a backtrace being symbolized for an error, say) may make
//! a large allocation and use it: it gets working memory and only trips the scope, which fails
//! a decode that was failing anyway. Outside a scope, and for allocations within the budget,
//! this is the system allocator with one comparison added.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scope's budget is at least this.
const GUARD_FLOOR_BYTES: usize = 64 * 1024;
/// An over-budget allocation up to this size still comes from the system allocator (which
/// grants it without committing memory, and it is never touched: the decode fails first); only
/// larger ones, which the system could refuse, are served from tracked mappings.
const MAPPED_ABOVE_BYTES: usize = 64 << 20;
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

/// A slot's entry: the mapping's address, with this bit set when it is `PROT_NONE`.
const INACCESSIBLE: usize = 1;

fn map(size: usize, prot: libc::c_int) -> Option<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), size, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) };
    (p != libc::MAP_FAILED).then_some(p)
}

/// Maps `layout.size()` bytes of lazily committed address space and remembers it; null if it cannot.
fn reserve(layout: Layout) -> *mut u8 {
    if layout.align() > 4096 {
        return std::ptr::null_mut();
    }
    let size = page_rounded(layout.size());
    let (p, entry) = match map(size, libc::PROT_READ | libc::PROT_WRITE) {
        Some(p) => (p, p as usize),
        None => match map(size, libc::PROT_NONE) {
            Some(p) => (p, p as usize | INACCESSIBLE),
            None => return std::ptr::null_mut(),
        },
    };
    // Claim the first free slot (another thread may take one between the look and the claim).
    if !GUARDED.iter().any(|slot| slot.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Relaxed).is_ok()) {
        // SAFETY: `p` is the mapping made above, of this length, used by no one.
        unsafe { libc::munmap(p, size) };
        return std::ptr::null_mut();
    }
    p.cast()
}

/// Unmaps `ptr` if it is a guarded mapping; false if it is the system allocator's.
fn release(ptr: *mut u8, size: usize) -> bool {
    let addr = ptr as usize;
    for slot in &GUARDED {
        let entry = slot.load(Ordering::Acquire);
        if entry & !INACCESSIBLE == addr && slot.compare_exchange(entry, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            // SAFETY: the slot held this address, so it is a mapping `reserve` made of this size.
            unsafe { libc::munmap(ptr.cast(), page_rounded(size)) };
            return true;
        }
    }
    false
}

/// `None` if `ptr` is not a guarded mapping; else whether it is readable.
fn guarded(ptr: *mut u8) -> Option<bool> {
    let addr = ptr as usize;
    GUARDED.iter().map(|s| s.load(Ordering::Acquire)).find(|e| e & !INACCESSIBLE == addr && *e != 0).map(|e| e & INACCESSIBLE == 0)
}

#[cfg(test)]
fn is_guarded(ptr: *mut u8) -> bool {
    guarded(ptr).is_some()
}

/// Marks the scope tripped when `size` is over its budget; true when the allocation must also be
/// a mapping rather than the system allocator's.
fn trip(size: usize) -> bool {
    if !over_budget(size) {
        return false;
    }
    let _ = TRIPPED.try_with(|t| t.set(true));
    size > MAPPED_ABOVE_BYTES
}

// SAFETY: every pointer handed out is either the system allocator's, for the same layout, or a
// fresh page-aligned mapping of at least the layout's size; each is freed the way it was made,
// and moved by `realloc` with its contents (a `PROT_NONE` one has none: a write would have faulted).
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if trip(layout.size()) {
            let p = reserve(layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // Zeroed memory is readable by contract: never mapped here, but over budget it trips.
        let _ = trip(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() > MAPPED_ABOVE_BYTES && release(ptr, layout.size()) {
            return;
        }
        // SAFETY: not a guarded mapping, so the system allocator made it with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.size() > MAPPED_ABOVE_BYTES {
            if let Some(readable) = guarded(ptr) {
                let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                    return std::ptr::null_mut();
                };
                // SAFETY: a valid layout of non-zero size (it exceeds the floor or came from one).
                let p = unsafe { self.alloc(new_layout) };
                if !p.is_null() {
                    if readable {
                        // SAFETY: both blocks are at least this long and distinct (the new one
                        // is fresh); untouched pages of the old one read as zeros.
                        unsafe { std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
                    }
                    release(ptr, layout.size());
                }
                return p;
            }
        }
        // SAFETY: a system allocation, forwarded with its layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests;
