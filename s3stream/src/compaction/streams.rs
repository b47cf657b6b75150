//! Which stream objects to merge: a run of a stream's small stream objects (each under half of
//! [`COMPACTION_BYTES_MAX`]) that follow each other in its offsets, at least `count` of them and
//! at most `COMPACTION_BYTES_MAX` in all. A merged object is not small, so a byte is merged once.

use super::COMPACTION_BYTES_MAX;
use crate::manifest::Manifest;

/// Small stream objects: merged again until this size.
const SMALL_BYTES: u64 = COMPACTION_BYTES_MAX / 2;

/// The first stream's run of small stream objects worth merging, and their bytes. An object may
/// serve several runs of the stream (an earlier merge of stream-set objects wrote one object for
/// runs between the stream's own objects); it is counted once, and all its runs are merged.
pub(super) fn choose(manifest: &Manifest, count: usize) -> Option<(Vec<u64>, u64)> {
    for s in manifest.streams.values() {
        let mut ranges = s.ranges.clone();
        ranges.sort_by_key(|r| r.start);
        let (mut run, mut bytes, mut end): (Vec<u64>, u64, Option<u64>) = (Vec::new(), 0, None);
        for r in &ranges {
            let small = manifest.objects.get(&r.object).filter(|o| o.stream_object && o.size < SMALL_BYTES).map(|o| o.size);
            let follows = end == Some(r.start);
            end = Some(r.end);
            if !follows || small.is_none() {
                if run.len() >= count {
                    return Some((run, bytes));
                }
                (run, bytes) = (Vec::new(), 0);
            }
            let Some(size) = small else { continue };
            if run.contains(&r.object) {
                continue;
            }
            if bytes + size > COMPACTION_BYTES_MAX {
                if run.len() >= count {
                    return Some((run, bytes));
                }
                (run, bytes) = (Vec::new(), 0);
            }
            run.push(r.object);
            bytes += size;
        }
        if run.len() >= count {
            return Some((run, bytes));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ObjectMeta, RangeRef, StreamMeta};

    /// A stream of consecutive ranges, each (object, size, stream object?, start, end).
    fn manifest(objects: &[(u64, u64, bool, u64, u64)]) -> Manifest {
        let mut m = Manifest::default();
        let mut s = StreamMeta::default();
        for &(id, size, stream_object, start, end) in objects {
            m.objects.insert(id, ObjectMeta { size, stream_object, created_ms: 0 });
            s.ranges.push(RangeRef { object: id, start, end });
        }
        m.streams.insert(1, s);
        m
    }

    #[test]
    fn a_run_of_small_contiguous_stream_objects_is_merged_and_nothing_else() {
        const MIB: u64 = 1 << 20;
        let m = manifest(&[(1, 16 * MIB, true, 0, 10), (2, 16 * MIB, true, 10, 20), (3, 16 * MIB, true, 20, 30)]);
        assert_eq!(choose(&m, 3), Some((vec![1, 2, 3], 48 * MIB)));
        assert_eq!(choose(&m, 4), None, "fewer than count");
        // A large object, a stream-set object or a gap in offsets ends a run.
        let big = manifest(&[(1, 16 * MIB, true, 0, 10), (2, SMALL_BYTES, true, 10, 20), (3, 16 * MIB, true, 20, 30), (4, 16 * MIB, true, 30, 40)]);
        assert_eq!(choose(&big, 2), Some((vec![3, 4], 32 * MIB)));
        let shared = manifest(&[(1, 16 * MIB, true, 0, 10), (2, 16 * MIB, false, 10, 20), (3, 16 * MIB, true, 20, 30)]);
        assert_eq!(choose(&shared, 2), None);
        let gap = manifest(&[(1, 16 * MIB, true, 0, 10), (2, 16 * MIB, true, 15, 20)]);
        assert_eq!(choose(&gap, 2), None, "a rewrite's gap: the objects are not one run");
        // An object holding two runs of the stream counts once; the merged size stays bounded.
        let twice = manifest(&[(1, 16 * MIB, true, 0, 10), (1, 16 * MIB, true, 10, 20), (2, 16 * MIB, true, 20, 30)]);
        assert_eq!(choose(&twice, 2), Some((vec![1, 2], 32 * MIB)));
        let between = manifest(&[(1, 16 * MIB, true, 0, 10), (2, 16 * MIB, true, 10, 20), (1, 16 * MIB, true, 20, 30), (3, 16 * MIB, true, 30, 40)]);
        assert_eq!(choose(&between, 3), Some((vec![1, 2, 3], 48 * MIB)), "object 1's runs on either side of object 2");
        let many: Vec<_> = (0..20).map(|i| (i, 100 * MIB, true, i * 10, i * 10 + 10)).collect();
        let (run, bytes) = choose(&manifest(&many), 2).expect("a run");
        assert!(bytes <= COMPACTION_BYTES_MAX && run == vec![0, 1], "{run:?} {bytes}");
    }
}
