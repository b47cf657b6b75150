//! A JSON document that borrows its keys and plain strings from the record's bytes, with objects as
//! ordered pairs: what schemaless decoding parses into (no map, no key allocations).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value as Json};

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    /// Fields in the order the record has them (a repeated key appears twice; the last wins).
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// Parses one JSON text.
    pub fn parse(bytes: &'a [u8]) -> serde_json::Result<Doc<'a>> {
        serde_json::from_slice(bytes)
    }

    pub fn as_bool(&self) -> Option<bool> {
        if let Doc::Bool(b) = self {
            Some(*b)
        } else {
            None
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        if let Doc::Number(n) = self {
            n.as_i64()
        } else {
            None
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        if let Doc::Number(n) = self {
            n.as_f64()
        } else {
            None
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        if let Doc::String(s) = self {
            Some(s)
        } else {
            None
        }
    }
    pub fn as_array(&self) -> Option<&[Doc<'a>]> {
        if let Doc::Array(a) = self {
            Some(a)
        } else {
            None
        }
    }
    pub fn as_object(&self) -> Option<&[(Cow<'a, str>, Doc<'a>)]> {
        if let Doc::Object(o) = self {
            Some(o)
        } else {
            None
        }
    }

    /// As a `serde_json::Value` (for the slow paths that take one).
    pub fn to_json(&self) -> Json {
        match self {
            Doc::Null => Json::Null,
            Doc::Bool(b) => Json::Bool(*b),
            Doc::Number(n) => Json::Number(n.clone()),
            Doc::String(s) => Json::String(s.to_string()),
            Doc::Array(items) => Json::Array(items.iter().map(Doc::to_json).collect()),
            Doc::Object(pairs) => Json::Object(pairs.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()),
        }
    }
}

impl From<&Json> for Doc<'static> {
    fn from(v: &Json) -> Self {
        match v {
            Json::Null => Doc::Null,
            Json::Bool(b) => Doc::Bool(*b),
            Json::Number(n) => Doc::Number(n.clone()),
            Json::String(s) => Doc::String(Cow::Owned(s.clone())),
            Json::Array(items) => Doc::Array(items.iter().map(Doc::from).collect()),
            Json::Object(o) => Doc::Object(o.iter().map(|(k, v)| (Cow::Owned(k.clone()), Doc::from(v))).collect()),
        }
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Doc<'de>, E> {
        Ok(Number::from_f64(v).map_or(Doc::Null, Doc::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        Doc::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(k) = map.next_key_seed(KeySeed)? {
            // A repeated key is kept twice (no search per key); readers let the last one win.
            pairs.push((k, map.next_value()?));
        }
        Ok(Doc::Object(pairs))
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

/// An object key, borrowed when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field `name` of an object (its last value, as readers take it).
    fn field<'d, 'a>(doc: &'d Doc<'a>, name: &str) -> Option<&'d Doc<'a>> {
        doc.as_object()?.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    #[test]
    fn parses_as_serde_json_does_and_borrows_plain_text() {
        let text = br#"{"id": 7, "big": 18446744073709551615, "x": -1.5, "s": "plain", "e": "tab\tbed", "n": null, "a": [true, {"k": []}], "id": 8}"#;
        let doc = Doc::parse(text).expect("parses");
        let want: Json = serde_json::from_slice(text).expect("serde");
        assert_eq!(doc.to_json(), want, "same value, the repeated key's last value winning");
        assert!(matches!(field(&doc, "s"), Some(Doc::String(Cow::Borrowed("plain")))));
        assert!(matches!(field(&doc, "e"), Some(Doc::String(Cow::Owned(_)))));
        let Doc::Object(pairs) = &doc else { panic!("object") };
        assert_eq!(pairs.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), ["id", "big", "x", "s", "e", "n", "a", "id"]);
        assert_eq!(field(&doc, "id"), Some(&Doc::Number(8.into())));
        assert!(Doc::parse(b"{\"a\": }").is_err());
    }
}
