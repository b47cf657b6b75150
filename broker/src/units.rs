//! Human units in settings: durations ("250ms", "5s", "1h") and sizes ("64MiB", "2GiB"), or plain numbers.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration in milliseconds, written as a number of ms or with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub u64);

/// A size in bytes, written as a number of bytes or with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

fn split(s: &str) -> (&str, &str) {
    let s = s.trim();
    let i = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    (s[..i].trim(), s[i..].trim())
}

/// Parses "250ms", "5s", "2m", "1h", "1d" or a plain number of milliseconds.
pub fn parse_millis(s: &str) -> Result<u64, String> {
    let (n, unit) = split(s);
    let n: f64 = n.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 250ms, 5s, 1h)"))?;
    let scale = match unit {
        "" | "ms" => 1.0,
        "s" => 1e3,
        "m" | "min" => 60e3,
        "h" => 3600e3,
        "d" => 86400e3,
        _ => return Err(format!("unknown duration unit {unit:?} in {s:?}")),
    };
    Ok((n * scale) as u64)
}

/// Parses "64MiB", "2GiB", "100MB", "512KiB" or a plain number of bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let (n, unit) = split(s);
    let n: f64 = n.parse().map_err(|_| format!("{s:?} is not a size (e.g. 64MiB)"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => return Err(format!("unknown size unit {unit:?} in {s:?}")),
    };
    Ok((n * scale) as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(Millis(n)),
            NumOrStr::Str(s) => parse_millis(&s).map(Millis).map_err(de::Error::custom),
        }
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(ByteSize(n)),
            NumOrStr::Str(s) => parse_bytes(&s).map(ByteSize).map_err(de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_as_written() {
        for (s, ms) in [("250ms", 250), ("5s", 5000), ("2m", 120_000), ("1h", 3_600_000), ("40", 40), ("1.5s", 1500)] {
            assert_eq!(parse_millis(s), Ok(ms), "{s}");
        }
        for (s, b) in [("64MiB", 64 << 20), ("2GiB", 2 << 30), ("100MB", 100_000_000), ("512KiB", 512 << 10), ("7", 7)] {
            assert_eq!(parse_bytes(s), Ok(b), "{s}");
        }
        assert!(parse_millis("5 parsecs").is_err());
        assert!(parse_bytes("lots").is_err());
    }
}
