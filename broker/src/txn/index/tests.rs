//! The index against a brute-force reading of the same log.

use proptest::prelude::*;

use super::*;

#[test]
fn an_open_transaction_holds_the_lso_and_an_abort_is_reported_where_it_has_records() {
    let mut ix = TxnIndex::default();
    ix.on_batch(7, 10);
    ix.on_batch(8, 12);
    ix.on_batch(7, 14);
    assert_eq!((ix.lso(20), ix.open_count()), (10, 2));
    ix.on_marker(7, 15, false);
    assert_eq!(ix.lso(20), 12, "8 still open");
    ix.on_marker(8, 16, true);
    assert_eq!(ix.lso(20), 20);
    assert_eq!(ix.aborted_between(0, 20), vec![AbortedTxn { producer_id: 7, first_offset: 10, last_offset: 15 }]);
    assert!(ix.aborted_between(16, 20).is_empty(), "the abort ended before the fetch");
    assert!(ix.aborted_between(0, 10).is_empty(), "the abort began after the fetch");
    ix.on_marker(7, 17, false);
    assert_eq!(ix.aborted_between(0, 20).len(), 1, "a marker with nothing open changes nothing");
    ix.trim(16);
    assert!(ix.aborted_between(0, 20).is_empty());
    ix.on_batch(9, 18);
    ix.trim(19);
    assert_eq!(ix.lso(25), 19, "DeleteRecords past an open transaction's start: the LSO stays within the log");
}

#[test]
fn a_split_index_merges_back_whole() {
    let mut ix = TxnIndex::default();
    for i in 0..25 {
        ix.on_batch(i, i * 10);
        ix.on_marker(i, i * 10 + 5, i % 2 == 0);
    }
    ix.on_batch(100, 300);
    let pieces = ix.clone().split(4);
    assert_eq!(pieces.len(), 3, "12 aborted, 4 a piece");
    let mut merged = TxnIndex::default();
    for p in pieces {
        merged.merge(p);
    }
    assert_eq!(merged, ix);
    assert_eq!(TxnIndex::default().split(4).len(), 1);
}

#[derive(Debug, Clone)]
enum Entry {
    Data(i64),
    Marker(i64, bool),
}

/// The model: reads the whole log each time.
fn model(log: &[Entry], hw: i64) -> (i64, Vec<(i64, i64, i64)>) {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut aborted = Vec::new();
    for (offset, e) in log.iter().enumerate() {
        let offset = offset as i64;
        match *e {
            Entry::Data(p) => {
                open.entry(p).or_insert(offset);
            }
            Entry::Marker(p, commit) => {
                if let Some(first) = open.remove(&p) {
                    if !commit {
                        aborted.push((p, first, offset));
                    }
                }
            }
        }
    }
    (open.values().copied().min().unwrap_or(hw).min(hw), aborted)
}

proptest! {
    #[test]
    fn the_index_agrees_with_reading_the_whole_log(
        log in proptest::collection::vec(prop_oneof![(0..4i64).prop_map(Entry::Data), (0..4i64, any::<bool>()).prop_map(|(p, c)| Entry::Marker(p, c))], 0..80),
        from in 0..90i64,
        len in 0..40i64,
    ) {
        let mut ix = TxnIndex::default();
        for (offset, e) in log.iter().enumerate() {
            match *e {
                Entry::Data(p) => ix.on_batch(p, offset as i64),
                Entry::Marker(p, commit) => ix.on_marker(p, offset as i64, commit),
            }
        }
        let hw = log.len() as i64;
        let (lso, aborted) = model(&log, hw);
        prop_assert_eq!(ix.lso(hw), lso);
        let to = from + len;
        let want: Vec<AbortedTxn> = aborted
            .iter()
            .filter(|(_, first, last)| *last >= from && *first < to)
            .map(|&(producer_id, first_offset, last_offset)| AbortedTxn { producer_id, first_offset, last_offset })
            .collect();
        prop_assert_eq!(ix.aborted_between(from, to), want);
    }
}
