//! What a table name, a namespace level and a table location may be: checked before anything is stored.
//!
//! Names become object paths (a table's default location is `<warehouse>/<ns…>/<name>-<uuid>`),
//! so path separators, `.`/`..`, control characters and the store's own separators are refused.
//! Locations are compared by path segments: a table's location may not equal, contain or lie
//! inside another table's, nor contain the warehouse root, so that purging or cleaning one table
//! never reaches another's files.

use crate::error::CatalogError;

/// Longest name or namespace level, in bytes.
pub const NAME_BYTES_MAX: usize = 255;

/// Refuses a table name or namespace level that could not be a path segment of its own.
pub fn check(what: &str, name: &str) -> Result<(), CatalogError> {
    let bad = |why: &str| Err(CatalogError::BadRequest(format!("{what} {name:?} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return bad(&format!("is longer than {NAME_BYTES_MAX} bytes"));
    }
    if name == "." || name == ".." {
        return bad("is a path step");
    }
    if name.chars().any(|c| c == '/' || c == '\\' || c.is_control()) {
        return bad("holds a path separator or a control character");
    }
    Ok(())
}

/// The segments of a location, without scheme-relative empties (`s3://b/a/` → `["s3:", "b", "a"]`).
fn segments(location: &str) -> Vec<&str> {
    location.split('/').filter(|s| !s.is_empty()).collect()
}

/// Whether one location equals or contains the other, segment by segment.
pub fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (segments(a), segments(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// A table's location from its metadata file's (`<location>/metadata/<file>`).
pub fn table_location(metadata_location: &str) -> &str {
    metadata_location.rsplit_once("/metadata/").map_or(metadata_location, |(l, _)| l)
}

/// Refuses `location` for a new table when it contains the warehouse root or overlaps a table
/// of `existing` (table name, location).
pub fn check_location<'a>(location: &str, warehouse: &str, mut existing: impl Iterator<Item = (String, &'a str)>) -> Result<(), CatalogError> {
    if segments(location).len() <= segments(warehouse).len() && overlap(location, warehouse) {
        return Err(CatalogError::BadRequest(format!("location {location} holds the warehouse root {warehouse}: a table needs a location of its own")));
    }
    if let Some((name, other)) = existing.find(|(_, other)| overlap(location, other)) {
        return Err(CatalogError::BadRequest(format!("location {location} overlaps {other}, the location of table {name}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_path_segment_are_refused() {
        for bad in ["", ".", "..", "a/b", "a\\b", "a\u{1f}b", "x\n", &"n".repeat(256)] {
            assert!(check("table", bad).is_err(), "{bad:?}");
        }
        for ok in ["orders", "pg.public.customers", "Ümlaut", "a-b_c 1"] {
            assert!(check("table", ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn locations_overlap_by_segments_not_by_characters() {
        assert!(overlap("s3://b/wh/lake/t", "s3://b/wh/lake/t/"));
        assert!(overlap("s3://b/wh/lake", "s3://b/wh/lake/t"));
        assert!(!overlap("s3://b/wh/lake/t", "s3://b/wh/lake/t2"));
        let wh = "s3://b/wh";
        let tables = [("lake.t".to_string(), "s3://b/wh/lake/t")];
        assert!(check_location("s3://b/wh", wh, tables.iter().cloned()).is_err(), "the warehouse root");
        assert!(check_location("s3://b", wh, tables.iter().cloned()).is_err(), "above the root");
        assert!(check_location("s3://b/wh/lake", wh, tables.iter().cloned()).is_err(), "holds another table");
        assert!(check_location("s3://b/wh/lake/t/data", wh, tables.iter().cloned()).is_err(), "inside another table");
        assert!(check_location("s3://b/wh/lake/t2", wh, tables.iter().cloned()).is_ok());
        assert_eq!(table_location("s3://b/wh/lake/t/metadata/00001-x.metadata.json"), "s3://b/wh/lake/t");
    }
}
