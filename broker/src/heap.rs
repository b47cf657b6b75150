//! Keeps the node's resident memory near what it uses: freed heap that glibc's malloc keeps
//! resident past `heap_retained_bytes_max` is released to the system, and the figures shown.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the checks saw and did (`/metrics`).
#[derive(Default)]
pub struct HeapKeeper {
    /// Resident minus in use, right after the last release: what a release cannot take
    /// (code, stacks, the allocator's own pages). Retained memory is counted above it.
    floor_bytes: AtomicU64,
    /// The last check's figures.
    pub resident_bytes: AtomicU64,
    pub in_use_bytes: AtomicU64,
    /// Releases made, and the resident bytes they returned.
    pub releases: AtomicU64,
    pub released_bytes: AtomicU64,
}

/// Whether memory resident and not in use has grown past `max_bytes` over `floor_bytes`.
fn due(resident_bytes: u64, in_use_bytes: u64, floor_bytes: u64, max_bytes: u64) -> bool {
    max_bytes > 0 && resident_bytes.saturating_sub(in_use_bytes) > floor_bytes.saturating_add(max_bytes)
}

/// One reading: resident and in-use bytes.
pub trait HeapProbe {
    fn read(&self) -> Option<(u64, u64)>;
    /// Releases the free heap; true when any was released.
    fn release(&self) -> bool;
}

/// The process's own heap (glibc's malloc; on other allocators there is nothing to read).
pub struct ProcessHeap;

impl HeapProbe for ProcessHeap {
    fn read(&self) -> Option<(u64, u64)> {
        Some((floe_io_sys::resident_bytes()?, floe_io_sys::heap_usage()?.in_use_bytes))
    }

    fn release(&self) -> bool {
        floe_io_sys::release_free_heap()
    }
}

impl HeapKeeper {
    /// Reads the heap and releases its free pages when they are due; the bytes a release
    /// returned (0 when none was made). Blocks while it releases: run it where that may wait.
    pub fn check(&self, probe: &dyn HeapProbe, max_bytes: u64) -> u64 {
        let Some((resident, in_use)) = probe.read() else { return 0 };
        self.resident_bytes.store(resident, Relaxed);
        self.in_use_bytes.store(in_use, Relaxed);
        if !due(resident, in_use, self.floor_bytes.load(Relaxed), max_bytes) || !probe.release() {
            return 0;
        }
        let Some((after, in_use_after)) = probe.read() else { return 0 };
        let returned = resident.saturating_sub(after);
        self.floor_bytes.store(after.saturating_sub(in_use_after), Relaxed);
        self.resident_bytes.store(after, Relaxed);
        self.in_use_bytes.store(in_use_after, Relaxed);
        self.releases.fetch_add(1, Relaxed);
        self.released_bytes.fetch_add(returned, Relaxed);
        tracing::debug!(resident_before = resident, resident_after = after, in_use = in_use_after, "freed heap released to the system");
        returned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A heap whose figures the test sets; a release brings resident down to in use plus
    /// `overhead`.
    struct Scripted {
        figures: Mutex<(u64, u64)>,
        overhead: u64,
    }

    impl HeapProbe for Scripted {
        fn read(&self) -> Option<(u64, u64)> {
            Some(*self.figures.lock())
        }
        fn release(&self) -> bool {
            let mut f = self.figures.lock();
            f.0 = f.1 + self.overhead;
            true
        }
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn releases_only_past_the_limit_over_what_the_last_release_left() {
        let heap = Scripted { figures: Mutex::new((400 * MIB, 200 * MIB)), overhead: 150 * MIB };
        let keeper = HeapKeeper::default();
        // 200 MiB resident beyond use: under a 256 MiB limit.
        assert_eq!(keeper.check(&heap, 256 * MIB), 0);
        assert_eq!(keeper.releases.load(Relaxed), 0);
        // Freed memory piles up: 1 GiB resident beyond use, released down to the overhead.
        *heap.figures.lock() = (1_224 * MIB, 200 * MIB);
        assert_eq!(keeper.check(&heap, 256 * MIB), 874 * MIB);
        assert_eq!(keeper.resident_bytes.load(Relaxed), 350 * MIB);
        // The overhead a release cannot take does not count against the limit again …
        *heap.figures.lock() = (600 * MIB, 200 * MIB);
        assert_eq!(keeper.check(&heap, 256 * MIB), 0);
        // … what is retained above it does.
        *heap.figures.lock() = (700 * MIB, 200 * MIB);
        assert_eq!(keeper.check(&heap, 256 * MIB), 350 * MIB);
        assert_eq!((keeper.releases.load(Relaxed), keeper.released_bytes.load(Relaxed)), (2, 1_224 * MIB));
    }

    #[test]
    fn a_limit_of_zero_never_releases() {
        let heap = Scripted { figures: Mutex::new((8_000 * MIB, 100 * MIB)), overhead: 0 };
        let keeper = HeapKeeper::default();
        assert_eq!(keeper.check(&heap, 0), 0);
        assert_eq!(keeper.resident_bytes.load(Relaxed), 8_000 * MIB, "figures are still read");
    }

    #[test]
    fn the_process_heap_reads_its_own_figures() {
        let (resident, in_use) = ProcessHeap.read().expect("glibc on Linux");
        assert!(resident > 0 && in_use > 0 && in_use < resident * 4, "resident {resident}, in use {in_use}");
    }
}
