//! The Avro binary decoder: one datum into a [`Value`], many into a record batch with per-record errors.
//!
//! Bounded: lengths are checked against what is left, and a record may hold at most
//! [`ITEMS_MAX`] array/map items in all, of which at most [`EMPTY_ITEMS_MAX`] may take no bytes
//! (null items take none, so a count alone proves nothing: 5 bytes could claim millions).

use std::sync::Arc;

use arrow_array::RecordBatch;

use super::schema::AvroSchema;
use crate::arrow::record_batch;
use crate::error::{RecordError, Result, SchemaError};
use crate::value::Value;

/// Array and map items one record may hold.
pub const ITEMS_MAX: usize = 1 << 22;
/// Array and map items of no bytes (nulls, empty records) one record may hold.
pub const EMPTY_ITEMS_MAX: usize = 1 << 12;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    empty_items: usize,
}

fn err(msg: impl Into<String>) -> SchemaError {
    SchemaError::Decode(msg.into())
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or_else(|| err("truncated varint"))?;
            self.pos += 1;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(err("varint longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| err(format!("{v} does not fit an int")))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| err(format!("{n} bytes wanted, {} left", self.buf.len() - self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| err(format!("negative length {n}")))?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map(str::to_string).map_err(|e| err(format!("invalid UTF-8: {e}")))
    }

    /// Reads the blocks of an array or map, calling `item` for each entry.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                count = count.checked_neg().ok_or_else(|| err("bad block count"))?;
                let _size = self.long()?;
            }
            let count = usize::try_from(count).map_err(|_| err("bad block count"))?;
            self.items = self.items.checked_add(count).filter(|&n| n <= ITEMS_MAX).ok_or_else(|| err(format!("more than {ITEMS_MAX} items in one record")))?;
            for _ in 0..count {
                let at = self.pos;
                item(self)?;
                if self.pos == at {
                    self.empty_items += 1;
                    if self.empty_items > EMPTY_ITEMS_MAX {
                        return Err(err(format!("more than {EMPTY_ITEMS_MAX} items of no bytes in one record")));
                    }
                }
            }
        }
    }

    fn value(&mut self, s: &AvroSchema) -> Result<Value> {
        Ok(match s {
            AvroSchema::Null => Value::Null,
            AvroSchema::Boolean => match self.take(1)?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(err(format!("boolean byte {b}"))),
            },
            AvroSchema::Int => Value::Int(self.int()?),
            AvroSchema::Long => Value::Long(self.long()?),
            AvroSchema::Float => Value::Float(f32::from_le_bytes(self.take(4)?.try_into().map_err(|_| err("float"))?)),
            AvroSchema::Double => Value::Double(f64::from_le_bytes(self.take(8)?.try_into().map_err(|_| err("double"))?)),
            AvroSchema::Bytes => Value::Bytes(self.bytes()?.to_vec()),
            AvroSchema::String => Value::String(self.string()?),
            AvroSchema::Record { fields, .. } => {
                let mut out = Vec::with_capacity(fields.len());
                for f in fields.iter() {
                    out.push(self.value(&f.schema).map_err(|e| err(format!("field {}: {e}", f.name)))?);
                }
                Value::Record(out)
            }
            AvroSchema::Enum { symbols, name } => {
                let i = self.int()?;
                let sym = usize::try_from(i).ok().and_then(|i| symbols.get(i)).ok_or_else(|| err(format!("enum {name} has no symbol {i}")))?;
                Value::String(sym.clone())
            }
            AvroSchema::Array(item) => {
                let mut out = Vec::new();
                self.blocks(|r| {
                    out.push(r.value(item)?);
                    Ok(())
                })?;
                Value::Array(out)
            }
            AvroSchema::Map(value) => {
                let mut out = Vec::new();
                self.blocks(|r| {
                    let k = r.string()?;
                    out.push((k, r.value(value)?));
                    Ok(())
                })?;
                Value::Map(out)
            }
            AvroSchema::Union(branches) => {
                let i = self.long()?;
                let b = usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or_else(|| err(format!("union has no branch {i}")))?;
                self.value(b)?
            }
            AvroSchema::Fixed { size, .. } => Value::Fixed(self.take(*size)?.to_vec()),
            AvroSchema::Decimal { fixed, .. } => {
                let b = match fixed {
                    Some(n) => self.take(*n)?,
                    None => self.bytes()?,
                };
                if b.len() > 16 {
                    return Err(err(format!("decimal of {} bytes does not fit 128 bits", b.len())));
                }
                let mut v: i128 = if b.first().is_some_and(|x| x & 0x80 != 0) { -1 } else { 0 };
                for &x in b {
                    v = (v << 8) | i128::from(x);
                }
                Value::Decimal(v)
            }
            AvroSchema::Uuid => {
                let s = self.string()?;
                Value::Fixed(parse_uuid(&s).ok_or_else(|| err(format!("{s:?} is not a UUID")))?.to_vec())
            }
            AvroSchema::Date => Value::Date(self.int()?),
            AvroSchema::TimeMillis => Value::TimeMicros(i64::from(self.int()?) * 1000),
            AvroSchema::TimeMicros => Value::TimeMicros(self.long()?),
            AvroSchema::TimestampMillis | AvroSchema::LocalTimestampMillis => {
                let ms = self.long()?;
                Value::TimestampMicros(ms.checked_mul(1000).ok_or_else(|| err(format!("timestamp {ms} ms overflows")))?)
            }
            AvroSchema::TimestampMicros | AvroSchema::LocalTimestampMicros => Value::TimestampMicros(self.long()?),
        })
    }
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let t = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(t, 16).ok()?;
    }
    Some(out)
}

/// Decodes one datum; every byte must be used.
pub fn decode(schema: &AvroSchema, bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { buf: bytes, pos: 0, items: 0, empty_items: 0 };
    let v = r.value(schema)?;
    if r.pos != bytes.len() {
        return Err(err(format!("{} bytes left after the record", bytes.len() - r.pos)));
    }
    Ok(v)
}

/// Decodes many records of one schema into a batch; records that fail are returned as errors
/// (with their offsets) and left out of the batch.
pub fn decode_batch(schema: &AvroSchema, records: &[(i64, &[u8])]) -> Result<(RecordBatch, Vec<RecordError>)> {
    let arrow = Arc::new(schema.arrow_schema()?);
    let mut rows = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (offset, bytes) in records {
        match decode(schema, bytes) {
            Ok(v) => rows.push(v),
            Err(e) => errors.push(RecordError { offset: *offset, reason: e.to_string() }),
        }
    }
    Ok((record_batch(arrow, &rows)?, errors))
}

#[cfg(test)]
mod tests;
