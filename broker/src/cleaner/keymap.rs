//! The cleaner's offset map: a 128-bit digest of each key to the offset of its latest record, bounded by a byte budget (Kafka's `log.cleaner.dedupe.buffer.size`).

use std::collections::HashMap;

/// Bytes one entry is reckoned to take (digest, offset, and the hash table's own overhead).
pub const ENTRY_BYTES: u64 = 48;

/// Key digest → latest offset.
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

/// A key's digest: the first 128 bits of its SHA-256 (Kafka's cleaner uses a 128-bit MD5).
fn digest(key: &[u8]) -> u128 {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut x = [0u8; 16];
    x.copy_from_slice(&d.as_ref()[..16]);
    u128::from_be_bytes(x)
}

impl OffsetMap {
    /// A map holding at most `budget_bytes / ENTRY_BYTES` keys (at least one).
    pub fn with_budget(budget_bytes: u64) -> Self {
        Self { map: HashMap::new(), capacity: (budget_bytes / ENTRY_BYTES).max(1) as usize }
    }

    /// Records `offset` as the latest of `key`; false (nothing changed) when the map is full and
    /// the key is new.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let d = digest(key);
        if let Some(o) = self.map.get_mut(&d) {
            *o = (*o).max(offset);
            return true;
        }
        if self.map.len() >= self.capacity {
            return false;
        }
        self.map.insert(d, offset);
        true
    }

    /// The latest offset of `key`, if the map has it.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&digest(key)).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_refuses_new_keys_when_full() {
        let mut m = OffsetMap::with_budget(2 * ENTRY_BYTES);
        assert!(m.put(b"a", 5) && m.put(b"a", 9) && m.put(b"b", 7));
        assert!(m.put(b"a", 3), "an older offset of a known key is accepted and ignored");
        assert_eq!((m.latest(b"a"), m.latest(b"b"), m.latest(b"c")), (Some(9), Some(7), None));
        assert!(!m.put(b"c", 10), "full: a new key is refused");
        assert!(m.put(b"b", 11), "full: a known key still moves");
        assert_eq!(m.len(), 2);
    }
}
