//! Walks the records of a (decompressed) v2 batch body, checking every length and varint against the bytes that remain.
//!
//! Kafka's `DefaultRecord.readFrom`: length (varint), attributes (i8), timestamp delta (varlong),
//! offset delta (varint), key length + key, value length + value, header count, headers (key
//! length + key, value length + value). A record must take exactly its declared length, offset
//! deltas must be 0, 1, 2…, and the records must end exactly where the batch does.

/// One record, borrowed from the batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The header section (after its count), to be read with [`headers`].
    pub headers_raw: &'a [u8],
    pub header_count: u32,
    /// The whole record after its length varint (what a rewrite copies).
    pub raw: &'a [u8],
}

/// A cursor over bytes whose reads fail instead of running past the end.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.b.get(self.pos).ok_or("a varint runs past the end")?;
            self.pos += 1;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("a varint is longer than 10 bytes".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        i32::try_from(self.varlong()?).map_err(|_| "a varint is out of the 32-bit range".to_string())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| format!("{n} bytes run past the end"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A nullable byte field: length −1 is null; any other negative length is refused.
    fn nullable(&mut self, what: &str) -> Result<Option<&'a [u8]>, String> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(format!("{what} length {n}")),
            n => self.take(n as usize).map(Some),
        }
    }
}

/// Reads `count` records from `body` (as produced: offset deltas 0, 1, 2…), calling `f` with
/// each; fails on the first inconsistency.
pub fn records<'a>(body: &'a [u8], count: u32, f: impl FnMut(RecordView<'a>)) -> Result<(), String> {
    walk(body, count, None, f)
}

/// Reads `count` records of a stored batch, which compaction may have thinned: offset deltas
/// rise strictly and stay at or below `last_offset_delta`.
pub fn stored_records<'a>(body: &'a [u8], count: u32, last_offset_delta: i32, f: impl FnMut(RecordView<'a>)) -> Result<(), String> {
    walk(body, count, Some(last_offset_delta), f)
}

/// `sparse`: None when deltas must be dense, else the largest delta allowed.
fn walk<'a>(body: &'a [u8], count: u32, sparse: Option<i32>, mut f: impl FnMut(RecordView<'a>)) -> Result<(), String> {
    let mut c = Cursor { b: body, pos: 0 };
    let mut previous = -1i32;
    for i in 0..count {
        let len = c.varint().map_err(|e| format!("record {i} of {count}: {e}"))?;
        if len < 0 {
            return Err(format!("record {i} has length {len}"));
        }
        let rec = c.take(len as usize).map_err(|e| format!("record {i} of {len} bytes: {e}"))?;
        let view = record(rec).map_err(|e| format!("record {i}: {e}"))?;
        let fits = match sparse {
            None => view.offset_delta == i as i32,
            Some(last) => view.offset_delta > previous && view.offset_delta <= last,
        };
        if !fits {
            return Err(format!("record {i} has offset delta {}", view.offset_delta));
        }
        previous = view.offset_delta;
        f(view);
    }
    if c.pos != body.len() {
        return Err(format!("{} bytes follow the batch's {count} records", body.len() - c.pos));
    }
    Ok(())
}

fn record(rec: &[u8]) -> Result<RecordView<'_>, String> {
    let mut c = Cursor { b: rec, pos: 0 };
    c.take(1)?; // attributes: unused in v2
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable("key")?;
    let value = c.nullable("value")?;
    let header_count = c.varint()?;
    if header_count < 0 {
        return Err(format!("header count {header_count}"));
    }
    let headers_raw = &rec[c.pos..];
    let mut h = Cursor { b: headers_raw, pos: 0 };
    for _ in 0..header_count {
        let k = h.varint()?;
        if k < 0 {
            return Err(format!("header key length {k}"));
        }
        h.take(k as usize)?;
        h.nullable("header value")?;
    }
    if h.pos != headers_raw.len() {
        return Err(format!("{} bytes follow the record's headers", headers_raw.len() - h.pos));
    }
    Ok(RecordView { offset_delta, timestamp_delta, key, value, headers_raw, header_count: header_count as u32, raw: rec })
}

/// The headers of a record already walked by [`records`] (so every length is known to fit).
pub fn headers<'a>(r: &RecordView<'a>) -> Vec<(&'a [u8], Option<&'a [u8]>)> {
    let mut h = Cursor { b: r.headers_raw, pos: 0 };
    let mut out = Vec::with_capacity(r.header_count.min(1024) as usize);
    for _ in 0..r.header_count {
        let Ok(k) = h.varint() else { break };
        let (Ok(key), Ok(value)) = (h.take(k.max(0) as usize), h.nullable("header value")) else { break };
        out.push((key, value));
    }
    out
}

/// Appends `v` as a zig-zag varint (Kafka's signed varint and varlong encoding).
pub fn put_varint(out: &mut impl bytes::BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}
