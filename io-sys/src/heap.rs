//! The C allocator's heap as the process sees it: bytes in use, resident bytes, and giving the
//! free pages glibc's malloc keeps in its arenas back to the system (`malloc_trim`).
//!
//! glibc returns freed memory to the system only from the top of an arena's heap; memory freed
//! below a live allocation stays resident however long it is unused. A node that allocates large
//! transient buffers on many threads (uploads, merges, Parquet files) can so hold gigabytes it
//! does not use. `malloc_trim(0)` walks every arena and releases each free page
//! (`madvise(MADV_DONTNEED)`), which is what [`release_free_heap`] does.

/// What the allocator holds for the program: in arenas and in mapped chunks (glibc `mallinfo2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapUsage {
    /// Bytes of live allocations (in arenas and in their own mappings).
    pub in_use_bytes: u64,
    /// Bytes the arenas hold free (resident or already released to the system).
    pub free_bytes: u64,
}

/// The allocator's figures; `None` where the allocator is not glibc's.
pub fn heap_usage() -> Option<HeapUsage> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` takes each arena's lock while it sums, and returns a plain struct.
        let m = unsafe { libc::mallinfo2() };
        Some(HeapUsage { in_use_bytes: (m.uordblks + m.hblkhd) as u64, free_bytes: m.fordblks as u64 })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// Releases the free pages of every arena to the system; true when any were released. A call
/// takes each arena's lock in turn (allocations on it wait meanwhile): call it from a thread
/// that may block. Elsewhere than glibc it does nothing.
pub fn release_free_heap() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` only changes the allocator's own state, under its locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// This process's resident set in bytes (`/proc/self/statm`), `None` where it cannot be read.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    #[cfg(target_os = "linux")]
    // SAFETY: `sysconf` reads no memory of this process.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    #[cfg(not(target_os = "linux"))]
    let page = 4096;
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[test]
    fn memory_freed_below_a_live_allocation_stays_resident_until_released() {
        // On a thread of its own (an arena of its own): 64 MiB in 64 KiB blocks (below glibc's
        // mapping threshold, so in the arena), written, then freed except the last, which pins
        // the heap's top so glibc cannot shrink it.
        let (held, after_free, after_release) = std::thread::spawn(|| {
            let mut blocks: Vec<Vec<u8>> = (0..1024).map(|_| vec![1u8; 64 << 10]).collect();
            let last = blocks.pop();
            drop(blocks);
            let after_free = resident_bytes().expect("statm");
            let held = heap_usage().expect("glibc").free_bytes;
            release_free_heap();
            let after_release = resident_bytes().expect("statm");
            drop(last);
            (held, after_free, after_release)
        })
        .join()
        .expect("thread");
        assert!(held >= 32 << 20, "the arena holds what was freed: {held} bytes free");
        assert!(after_release + (32 << 20) < after_free, "released: resident {after_free} → {after_release} bytes");
    }

    #[test]
    fn live_allocations_count_as_in_use() {
        let before = heap_usage().expect("glibc").in_use_bytes;
        let block = vec![7u8; 8 << 20];
        let during = heap_usage().expect("glibc").in_use_bytes;
        assert!(during >= before + (8 << 20), "{before} → {during}");
        drop(block);
    }
}
