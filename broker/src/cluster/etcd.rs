//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/...`): leases, range, put, create-if-absent, transactions, delete.
//!
//! Keys and values travel base64-encoded and 64-bit numbers as strings, as the gateway's
//! protobuf-JSON mapping writes them; fields at their default (false, 0, empty) are left out of
//! answers. Endpoints are tried in order until one answers; an answer is read into at most
//! [`RESPONSE_BYTES_MAX`].

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{BrokerError, Result};

/// Most bytes of one answer read from etcd.
pub const RESPONSE_BYTES_MAX: usize = 16 << 20;

/// One key as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub lease: i64,
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Cmp {
    /// The key does not exist.
    Absent(String),
    /// The key was last changed at this revision (0: it does not exist).
    ModRevision(String, i64),
}

/// A write of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put(String, Vec<u8>),
    Delete(String),
    /// Every key under the prefix.
    DeletePrefix(String),
}

impl Cmp {
    fn json(&self) -> Value {
        match self {
            Cmp::Absent(k) => json!({"key": b64(k.as_bytes()), "target": "CREATE", "create_revision": "0"}),
            Cmp::ModRevision(k, r) => json!({"key": b64(k.as_bytes()), "target": "MOD", "mod_revision": r.to_string()}),
        }
    }
}

impl Op {
    fn json(&self) -> Value {
        match self {
            Op::Put(k, v) => json!({"request_put": {"key": b64(k.as_bytes()), "value": b64(v)}}),
            Op::Delete(k) => json!({"request_delete_range": {"key": b64(k.as_bytes())}}),
            Op::DeletePrefix(p) => json!({"request_delete_range": {"key": b64(p.as_bytes()), "range_end": b64(&prefix_end(p.as_bytes()))}}),
        }
    }
}

/// A client of one etcd cluster.
#[derive(Clone)]
pub struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// Requests sent, by this client and its clones (for `/metrics`).
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn err(what: impl std::fmt::Display) -> BrokerError {
    BrokerError::Coordination(what.to_string())
}

/// A gateway number: a string ("42") or, leniently, a JSON number; absent is 0.
pub fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of the range holding every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// The keys of a range answer.
pub fn kvs(answer: &Value) -> Result<Vec<Kv>> {
    let Some(list) = answer.get("kvs").and_then(Value::as_array) else { return Ok(vec![]) };
    list.iter()
        .map(|kv| {
            let field = |k: &str| kv.get(k).and_then(Value::as_str).unwrap_or("");
            let key = B64.decode(field("key")).map_err(err)?;
            Ok(Kv {
                key: String::from_utf8(key).map_err(err)?,
                value: B64.decode(field("value")).map_err(err)?,
                create_revision: kv.get("create_revision").map_or(0, num),
                mod_revision: kv.get("mod_revision").map_or(0, num),
                lease: kv.get("lease").map_or(0, num),
            })
        })
        .collect()
}

impl Etcd {
    /// A client of `endpoints` (`http://host:port`), each call bounded by `timeout`.
    pub fn new(endpoints: &[String], timeout: Duration) -> Result<Self> {
        if endpoints.is_empty() {
            return Err(err("no etcd endpoint"));
        }
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build().map_err(err)?;
        Ok(Self { http, endpoints: endpoints.iter().map(|e| e.trim_end_matches('/').to_string()).collect(), requests: Default::default() })
    }

    /// POSTs `body` to `path` on the first endpoint that answers.
    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let mut last = None;
        for ep in &self.endpoints {
            match self.call_one(ep, path, &body).await {
                Ok(v) => return Ok(v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| err("no etcd endpoint")))
    }

    async fn call_one(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value> {
        self.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut resp = self.http.post(format!("{endpoint}{path}")).json(body).send().await.map_err(|e| err(format!("etcd {endpoint}{path}: {e}")))?;
        let status = resp.status();
        let mut buf = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(err)? {
            if buf.len() + chunk.len() > RESPONSE_BYTES_MAX {
                return Err(err(format!("etcd {path}: an answer over {RESPONSE_BYTES_MAX} bytes")));
            }
            buf.extend_from_slice(&chunk);
        }
        let v: Value = serde_json::from_slice(&buf).map_err(|e| err(format!("etcd {path}: {e}")))?;
        if !status.is_success() || v.get("error").is_some() {
            return Err(err(format!("etcd {path}: {status} {v}")));
        }
        Ok(v)
    }

    /// A new lease of `ttl_s` seconds; its id.
    pub async fn grant(&self, ttl_s: i64) -> Result<i64> {
        let v = self.call("/v3/lease/grant", json!({"TTL": ttl_s.to_string()})).await?;
        match v.get("ID").map_or(0, num) {
            0 => Err(err(format!("etcd granted no lease: {v}"))),
            id => Ok(id),
        }
    }

    /// Renews `lease`; the seconds it has left (0: it had expired).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64> {
        let v = self.call("/v3/lease/keepalive", json!({"ID": lease.to_string()})).await?;
        Ok(v.get("result").and_then(|r| r.get("TTL")).map_or(0, num))
    }

    /// Ends `lease` and deletes its keys.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        self.call("/v3/lease/revoke", json!({"ID": lease.to_string()})).await.map(|_| ())
    }

    /// Creates `key` (held by `lease`, 0 for none) if it does not exist: its revision, or None.
    pub async fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Option<i64>> {
        let k = b64(key.as_bytes());
        let body = json!({
            "compare": [{"key": k, "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": b64(value), "lease": lease.to_string()}}],
        });
        let v = self.call("/v3/kv/txn", body).await?;
        let created = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        Ok(created.then(|| v.get("header").and_then(|h| h.get("revision")).map_or(0, num)))
    }

    /// The key, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let v = self.call("/v3/kv/range", json!({"key": b64(key.as_bytes())})).await?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub async fn prefix(&self, prefix: &str) -> Result<Vec<Kv>> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes()))});
        kvs(&self.call("/v3/kv/range", body).await?)
    }

    /// Applies `ops` atomically if every condition holds: the new revision, or None when a
    /// condition failed (nothing was written).
    pub async fn txn(&self, conditions: &[Cmp], ops: &[Op]) -> Result<Option<i64>> {
        let body = json!({
            "compare": conditions.iter().map(Cmp::json).collect::<Vec<_>>(),
            "success": ops.iter().map(Op::json).collect::<Vec<_>>(),
        });
        let v = self.call("/v3/kv/txn", body).await?;
        let done = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        Ok(done.then(|| v.get("header").and_then(|h| h.get("revision")).map_or(0, num)))
    }

    /// Every key under `prefix`, and the store's revision they were read at.
    pub async fn prefix_at(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes()))});
        let v = self.call("/v3/kv/range", body).await?;
        let revision = v.get("header").and_then(|h| h.get("revision")).map_or(0, num);
        Ok((kvs(&v)?, revision))
    }

    /// What changes whenever a key under `prefix` is created, changed or deleted: how many keys
    /// there are and the newest change among them (one small answer: the top key, no values).
    pub async fn prefix_version(&self, prefix: &str) -> Result<(i64, i64)> {
        let body = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes())), "limit": "1",
            "sort_order": "DESCEND", "sort_target": "MOD", "keys_only": true});
        let v = self.call("/v3/kv/range", body).await?;
        let newest = kvs(&v)?.first().map_or(0, |kv| kv.mod_revision);
        Ok((v.get("count").map_or(0, num), newest))
    }

    /// Writes `key` (no lease).
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.call("/v3/kv/put", json!({"key": b64(key.as_bytes()), "value": b64(value)})).await.map(|_| ())
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.call("/v3/kv/deleterange", json!({"key": b64(key.as_bytes())})).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_answers_and_prefix_ends_are_read_as_the_gateway_writes_them() {
        let answer = json!({"header": {"revision": "7"}, "kvs": [
            {"key": B64.encode("/floe/c/brokers/1"), "value": B64.encode("{}"), "create_revision": "5", "mod_revision": "6", "lease": "99"},
            {"key": B64.encode("/floe/c/brokers/2"), "create_revision": "7", "mod_revision": "7"},
        ], "count": "2"});
        let got = kvs(&answer).expect("kvs");
        assert_eq!(got[0], Kv { key: "/floe/c/brokers/1".into(), value: b"{}".to_vec(), create_revision: 5, mod_revision: 6, lease: 99 });
        assert_eq!((got[1].value.len(), got[1].lease), (0, 0), "absent fields are defaults");
        assert!(kvs(&json!({"header": {}})).expect("none").is_empty());
        assert!(kvs(&json!({"kvs": [{"key": "not base64!"}]})).is_err());
        assert_eq!(prefix_end(b"/floe/"), b"/floe0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(num(&json!("12")), 12);
        assert_eq!(num(&json!(12)), 12);
        assert_eq!(num(&Value::Null), 0);
    }
}
