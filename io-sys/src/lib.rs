//! Safe wrappers of the Linux calls that `std` lacks: writing a file's dirty pages back one range
//! at a time (`sync_file_range`), so that a large write-back can be paced, and lowering the
//! calling thread's CPU priority (`setpriority`), so that background work yields to requests;
//! and the C allocator's heap: its use, and releasing what it holds free (`heap.rs`).

mod heap;

pub use heap::{heap_usage, release_free_heap, resident_bytes, HeapUsage};

use std::fs::File;
use std::io;

/// Starts write-back of `file`'s dirty pages in `offset..offset + len` and waits until they are
/// on the device (`SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER`). Unlike `fdatasync` this
/// neither flushes the file's metadata nor the device's cache: it paces, it does not make
/// durable. Elsewhere than Linux it does nothing.
pub fn write_back_range(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "range beyond i64"));
        };
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: the descriptor is `file`'s, open for the whole call (borrowed); the call reads
        // no memory of this process.
        let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
    Ok(())
}

/// Sets the calling thread's nice value to `nice` (0 normal, 19 lowest; threads it starts
/// inherit it): under contention the scheduler gives it a share by weight (nice 10 ≈ a tenth of a
/// nice-0 thread's). Lowering needs no privilege; raising does. Elsewhere than Linux it does
/// nothing.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` and `setpriority` read no memory of this process; the id is this
        // thread's own.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn writes_back_written_ranges_and_refuses_a_range_beyond_i64() {
        let mut f = tempfile::tempfile().expect("tmp");
        f.write_all(&vec![7u8; 3 << 20]).expect("write");
        write_back_range(&f, 0, 1 << 20).expect("first MiB");
        write_back_range(&f, 1 << 20, 2 << 20).expect("the rest");
        write_back_range(&f, 0, u64::MAX).expect_err("a length beyond i64 is refused, not wrapped");
    }

    #[test]
    fn a_thread_lowers_its_own_priority_and_only_its_own() {
        let own = std::thread::spawn(|| {
            set_thread_nice(10).expect("lowering needs no privilege");
            // SAFETY (test): reads this thread's nice value.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        })
        .join()
        .expect("thread");
        assert_eq!(own, 10);
        // SAFETY (test): reads this thread's nice value.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        assert_ne!(here, 10, "the calling thread of the test is untouched");
    }
}
