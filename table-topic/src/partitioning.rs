//! `partition.by`: `[bucket(id, 16), day(ts)]` parsed into partition fields, bound to a table's
//! schema as the partition spec they ask for, and compared with the spec a table has.

use iceberg::spec::{PartitionSpec, Schema, Transform, UnboundPartitionSpec};

/// One partition field as configured: a transform of a (possibly dotted) source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionBy {
    pub column: String,
    pub transform: Transform,
}

impl PartitionBy {
    /// The partition field's name, as Iceberg's Java API names it (`id_bucket`, `ts_day`; the
    /// column itself for identity).
    pub fn name(&self) -> String {
        let suffix = match self.transform {
            Transform::Identity => return self.column.clone(),
            Transform::Bucket(_) => "bucket",
            Transform::Truncate(_) => "trunc",
            Transform::Year => "year",
            Transform::Month => "month",
            Transform::Day => "day",
            Transform::Hour => "hour",
            _ => "void",
        };
        format!("{}_{suffix}", self.column)
    }
}

/// Splits on the commas outside parentheses: `bucket(id, 16), day(ts)` → two items.
fn items(v: &str) -> Vec<&str> {
    let v = v.trim();
    let v = v.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(v);
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0usize);
    for (i, c) in v.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn column(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("`{s}` is not a column name"))
    }
}

/// A width or bucket count, and the column, in either order (`bucket(id, 16)` or Spark's `bucket(16, id)`).
fn sized(f: &str, args: &[&str]) -> Result<(String, u32), String> {
    let [a, b] = args else { return Err(format!("{f}() takes a column and a number, as {f}(id, 16)")) };
    let (col, n) = match (a.parse::<u32>(), b.parse::<u32>()) {
        (Err(_), Ok(n)) => (*a, n),
        (Ok(n), Err(_)) => (*b, n),
        _ => return Err(format!("{f}() takes a column and a number, as {f}(id, 16)")),
    };
    if n == 0 {
        return Err(format!("{f}() needs a number above 0"));
    }
    Ok((column(col)?, n))
}

fn one(item: &str) -> Result<PartitionBy, String> {
    let Some((f, rest)) = item.split_once('(') else {
        return Ok(PartitionBy { column: column(item)?, transform: Transform::Identity });
    };
    let inner = rest.strip_suffix(')').ok_or_else(|| format!("`{item}` lacks its closing parenthesis"))?;
    let args: Vec<&str> = inner.split(',').map(str::trim).collect();
    let f = f.trim().to_ascii_lowercase();
    let single = |t: Transform| match args.as_slice() {
        [c] => Ok(PartitionBy { column: column(c)?, transform: t }),
        _ => Err(format!("{f}() takes one column")),
    };
    match f.as_str() {
        "identity" => single(Transform::Identity),
        "year" | "years" => single(Transform::Year),
        "month" | "months" => single(Transform::Month),
        "day" | "days" => single(Transform::Day),
        "hour" | "hours" => single(Transform::Hour),
        "bucket" => sized(&f, &args).map(|(column, n)| PartitionBy { column, transform: Transform::Bucket(n) }),
        "truncate" => sized(&f, &args).map(|(column, n)| PartitionBy { column, transform: Transform::Truncate(n) }),
        other => Err(format!("`{other}` is not a partition transform (identity, year, month, day, hour, bucket, truncate)")),
    }
}

/// Parses a `partition.by` value; an empty list means unpartitioned.
pub fn parse(v: &str) -> Result<Vec<PartitionBy>, String> {
    let fields = items(v).into_iter().map(one).collect::<Result<Vec<_>, _>>()?;
    for (i, f) in fields.iter().enumerate() {
        if fields[..i].iter().any(|g| g.name() == f.name()) {
            return Err(format!("two partition fields are named {}", f.name()));
        }
    }
    Ok(fields)
}

/// The spec `fields` ask for on `schema`; an error names a column the schema lacks or a
/// transform its type does not take.
pub fn spec(fields: &[PartitionBy], schema: &Schema) -> Result<UnboundPartitionSpec, String> {
    let mut b = UnboundPartitionSpec::builder();
    for f in fields {
        let source = schema.field_by_name(&f.column).ok_or_else(|| format!("partition.by names `{}`, which the table does not have", f.column))?;
        f.transform
            .result_type(&source.field_type)
            .map_err(|e| format!("partition.by: {} cannot take `{}` ({}): {}", f.transform, f.column, source.field_type, e.message()))?;
        b = b.add_partition_field(source.id, f.name(), f.transform).map_err(|e| format!("partition.by: {}", e.message()))?;
    }
    Ok(b.build())
}

/// True when `have` partitions as `want` does (same sources, transforms and names, in order).
pub fn same(have: &PartitionSpec, want: &UnboundPartitionSpec) -> bool {
    have.fields().len() == want.fields().len()
        && have.fields().iter().zip(want.fields()).all(|(h, w)| h.source_id == w.source_id && h.transform == w.transform && h.name == w.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{NestedField, PrimitiveType, Type};
    use std::sync::Arc;

    #[test]
    fn transforms_parse_in_either_argument_order() {
        let got = parse("[bucket(id, 16), day(ts), truncate(4, name), region, hours(meta.at)]").expect("parses");
        let want = [
            ("id", Transform::Bucket(16), "id_bucket"),
            ("ts", Transform::Day, "ts_day"),
            ("name", Transform::Truncate(4), "name_trunc"),
            ("region", Transform::Identity, "region"),
            ("meta.at", Transform::Hour, "meta.at_hour"),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (c, t, n)) in got.iter().zip(want) {
            assert_eq!((g.column.as_str(), g.transform, g.name().as_str()), (c, t, n));
        }
        assert_eq!(parse("[]").expect("empty"), vec![]);
        for (bad, needle) in [
            ("[bucket(id)]", "a column and a number"),
            ("[bucket(id, 0)]", "above 0"),
            ("[explode(id)]", "explode"),
            ("[day(ts]", "closing parenthesis"),
            ("[day(a, b)]", "one column"),
            ("[day(ts), days(ts)]", "two partition fields"),
            ("[a b]", "not a column name"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn a_spec_binds_to_the_schema_or_says_why_not() {
        let schema = Schema::builder()
            .with_fields(vec![
                Arc::new(NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long))),
                Arc::new(NestedField::optional(2, "ts", Type::Primitive(PrimitiveType::Timestamptz))),
                Arc::new(NestedField::optional(3, "ok", Type::Primitive(PrimitiveType::Boolean))),
            ])
            .build()
            .expect("schema");
        let s = spec(&parse("[bucket(id, 8), day(ts)]").expect("parse"), &schema).expect("binds");
        assert_eq!(s.fields().iter().map(|f| (f.source_id, f.name.as_str())).collect::<Vec<_>>(), vec![(1, "id_bucket"), (2, "ts_day")]);
        assert!(spec(&parse("[day(when)]").expect("parse"), &schema).expect_err("missing").contains("`when`"));
        assert!(spec(&parse("[day(ok)]").expect("parse"), &schema).expect_err("boolean").contains("`ok`"));
        let bound = s.clone().bind(Arc::new(schema)).expect("bind");
        assert!(same(&bound, &s));
        assert!(!same(&PartitionSpec::unpartition_spec(), &s));
    }
}
