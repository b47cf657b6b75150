//! The Schema Registry's state: subjects, versions, ids (never reused), compatibility levels;
//! every change appended to a durable log first (the `_schemas` topic of Confluent's registry),
//! replayed on start.
//!
//! The HTTP layer is [`server`]; the log is injected ([`RegistryLog`]), so the broker can keep it
//! in the storage engine and tests in memory.

pub mod auth;
mod compaction;
pub mod compat;
pub mod compat_other;
pub mod server;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::avro::AvroSchema;
use crate::error::{Result, SchemaError};

/// Schemas one registration may parse through its references, counted once per path.
pub const REFERENCES_MAX: usize = 256;

/// The schema languages a subject can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Protobuf,
    Json,
}

/// Compatibility levels, as Confluent names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

/// A reference from one schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A schema as stored, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSchema {
    pub id: u32,
    pub schema_type: SchemaType,
    pub schema: String,
    pub references: Vec<Reference>,
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub schema: StoredSchema,
    pub deleted: bool,
}

/// The durable log the registry appends its changes to.
#[async_trait::async_trait]
pub trait RegistryLog: Send + Sync + 'static {
    /// Appends one event; returns its position once it is durable.
    async fn append(&self, event: Vec<u8>) -> std::result::Result<u64, String>;
    /// Every event still in the log, in order.
    async fn load(&self) -> std::result::Result<Vec<Vec<u8>>, String>;
    /// Drops the events before position `before` (a compaction holds everything they said).
    async fn trim(&self, before: u64) -> std::result::Result<(), String>;
}

/// A log in memory (tests, and a registry that need not survive restarts): (position of the
/// first event kept, events).
#[derive(Default)]
pub struct MemoryLog(std::sync::Mutex<(u64, Vec<Vec<u8>>)>);

impl MemoryLog {
    fn events(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Vec<u8>>)> {
        // Poisoning cannot leave the log half-written: a push either happened or not.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Events kept now.
    pub fn len(&self) -> usize {
        self.events().1.len()
    }

    /// True when no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl RegistryLog for MemoryLog {
    async fn append(&self, event: Vec<u8>) -> std::result::Result<u64, String> {
        let mut log = self.events();
        log.1.push(event);
        Ok(log.0 + log.1.len() as u64 - 1)
    }
    async fn load(&self) -> std::result::Result<Vec<Vec<u8>>, String> {
        Ok(self.events().1.clone())
    }
    async fn trim(&self, before: u64) -> std::result::Result<(), String> {
        let mut log = self.events();
        let n = (before.saturating_sub(log.0) as usize).min(log.1.len());
        log.1.drain(..n);
        log.0 += n as u64;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Event {
    Registered {
        subject: String,
        version: i32,
        schema: StoredSchema,
    },
    Deleted {
        subject: String,
        version: i32,
        permanent: bool,
    },
    Config {
        subject: Option<String>,
        level: Option<Compatibility>,
    },
    /// A compaction run (see `compaction.rs`): its state holds once its end is read.
    CompactBegin {
        id: u64,
    },
    CompactPart {
        id: u64,
        part: compaction::Part,
    },
    CompactEnd {
        id: u64,
        parts: u32,
    },
}

/// Replay of the log: the state, and a compaction run being read.
#[derive(Default)]
struct Replay {
    state: State,
    pending: Option<(u64, u32, State)>,
}

impl Replay {
    fn apply(&mut self, e: Event) {
        match e {
            Event::CompactBegin { id } => self.pending = Some((id, 0, State::default())),
            Event::CompactPart { id, part } => {
                if let Some((pid, n, s)) = &mut self.pending {
                    if *pid == id {
                        *n += 1;
                        s.add_part(part);
                    }
                }
            }
            Event::CompactEnd { id, parts } => match self.pending.take() {
                Some((pid, n, s)) if pid == id && n == parts => {
                    let last_id = self.state.last_id.max(s.last_id);
                    self.state = s;
                    self.state.last_id = last_id;
                }
                _ => tracing::warn!(id, parts, "an incomplete registry compaction is ignored"),
            },
            other => self.state.apply(other),
        }
    }
}

#[derive(Default)]
struct State {
    schemas: BTreeMap<u32, StoredSchema>,
    subjects: BTreeMap<String, BTreeMap<i32, (u32, bool)>>,
    global: Option<Compatibility>,
    subject_levels: HashMap<String, Compatibility>,
    last_id: u32,
}

impl State {
    fn apply(&mut self, e: Event) {
        match e {
            Event::Registered { subject, version, schema } => {
                self.last_id = self.last_id.max(schema.id);
                self.subjects.entry(subject).or_default().insert(version, (schema.id, false));
                self.schemas.insert(schema.id, schema);
            }
            Event::Deleted { subject, version, permanent } => {
                if let Some(vs) = self.subjects.get_mut(&subject) {
                    if permanent {
                        vs.remove(&version);
                        if vs.is_empty() {
                            self.subjects.remove(&subject);
                        }
                    } else if let Some(v) = vs.get_mut(&version) {
                        v.1 = true;
                    }
                }
            }
            Event::Config { subject: None, level } => self.global = level,
            Event::Config { subject: Some(s), level: Some(l) } => {
                self.subject_levels.insert(s, l);
            }
            Event::Config { subject: Some(s), level: None } => {
                self.subject_levels.remove(&s);
            }
            // Compaction runs are read by `Replay`.
            Event::CompactBegin { .. } | Event::CompactPart { .. } | Event::CompactEnd { .. } => {}
        }
    }

    fn level(&self, subject: &str) -> Compatibility {
        self.subject_levels.get(subject).copied().or(self.global).unwrap_or(Compatibility::Backward)
    }

    fn live_versions(&self, subject: &str) -> Vec<(i32, u32)> {
        self.subjects.get(subject).map(|vs| vs.iter().filter(|(_, (_, d))| !d).map(|(v, (id, _))| (*v, *id)).collect()).unwrap_or_default()
    }
}

/// The registry.
pub struct Registry {
    log: Arc<dyn RegistryLog>,
    state: tokio::sync::Mutex<State>,
    /// Events appended since the last compaction.
    since_compaction: std::sync::atomic::AtomicU64,
}

/// Normalizes schema text so that the same schema written differently gets the same id.
fn normalize(t: SchemaType, text: &str) -> Result<String> {
    match t {
        SchemaType::Avro | SchemaType::Json => {
            let v: serde_json::Value = serde_json::from_str(text).map_err(|e| SchemaError::InvalidSchema(format!("not JSON: {e}")))?;
            serde_json::to_string(&v).map_err(|e| SchemaError::InvalidSchema(e.to_string()))
        }
        SchemaType::Protobuf => {
            let t = text.trim();
            if t.is_empty() {
                return Err(SchemaError::InvalidSchema("empty Protobuf schema".into()));
            }
            Ok(t.to_string())
        }
    }
}

impl Registry {
    /// A registry on `log`, with every event in it replayed.
    pub async fn open(log: Arc<dyn RegistryLog>) -> Result<Self> {
        let mut replay = Replay::default();
        let events = log.load().await.map_err(SchemaError::Store)?;
        let n = events.len() as u64;
        for raw in events {
            let e: Event = serde_json::from_slice(&raw).map_err(|e| SchemaError::Store(format!("unreadable registry event: {e}")))?;
            replay.apply(e);
        }
        Ok(Self { log, state: tokio::sync::Mutex::new(replay.state), since_compaction: n.into() })
    }

    async fn record(&self, state: &mut State, e: Event) -> Result<()> {
        self.append(&e).await?;
        state.apply(e);
        if self.since_compaction.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 >= compaction::COMPACT_EVERY_EVENTS {
            // A failed compaction is tried again after the next event; the log stays whole.
            if let Err(e) = self.compact(state).await {
                tracing::warn!(error = %e, "registry log compaction failed");
            }
        }
        Ok(())
    }

    async fn append(&self, e: &Event) -> Result<u64> {
        let raw = serde_json::to_vec(e).map_err(|e| SchemaError::Store(e.to_string()))?;
        self.log.append(raw).await.map_err(SchemaError::Store)
    }

    /// Writes the whole state again as one compaction run, then trims the log before it.
    async fn compact(&self, state: &State) -> Result<()> {
        let id = u64::from(state.last_id) << 20 | (self.since_compaction.load(std::sync::atomic::Ordering::Relaxed) & 0xfffff);
        let parts = compaction::parts(state);
        let n = parts.len() as u32;
        let begin = self.append(&Event::CompactBegin { id }).await?;
        for part in parts {
            self.append(&Event::CompactPart { id, part }).await?;
        }
        self.append(&Event::CompactEnd { id, parts: n }).await?;
        self.log.trim(begin).await.map_err(SchemaError::Store)?;
        self.since_compaction.store(0, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// The schema a reference points to.
    fn referenced<'a>(state: &'a State, r: &Reference) -> Result<&'a StoredSchema> {
        let id = state
            .subjects
            .get(&r.subject)
            .and_then(|vs| vs.get(&r.version))
            .map(|(id, _)| *id)
            .ok_or_else(|| SchemaError::InvalidSchema(format!("reference {} to {} version {} does not exist", r.name, r.subject, r.version)))?;
        state.schemas.get(&id).ok_or_else(|| SchemaError::SchemaNotFound(id.to_string()))
    }

    fn avro(state: &State, s: &StoredSchema) -> Result<AvroSchema> {
        Self::avro_within(state, s, &mut { REFERENCES_MAX })
    }

    /// Parses `s` and what it references, at most `budget` schemas in all (a reference graph
    /// that reaches one schema by many paths parses it once per path).
    fn avro_within(state: &State, s: &StoredSchema, budget: &mut usize) -> Result<AvroSchema> {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| SchemaError::InvalidSchema(format!("the schema's references reach more than {REFERENCES_MAX} schemas (REFERENCES_MAX)")))?;
        let mut refs = Vec::new();
        for r in &s.references {
            refs.push(Self::avro_within(state, Self::referenced(state, r)?, budget)?);
        }
        let json: serde_json::Value = serde_json::from_str(&s.schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()))?;
        AvroSchema::parse_with(&json, &refs)
    }

    /// Refuses a schema its language cannot read: Avro is parsed, Protobuf compiled (`.proto`
    /// text or a base64 `FileDescriptorProto`, references as imports), JSON Schema must be an
    /// object or a boolean.
    fn validate(state: &State, s: &StoredSchema) -> Result<()> {
        match s.schema_type {
            SchemaType::Avro => Self::avro(state, s).map(|_| ()),
            SchemaType::Json => match serde_json::from_str::<serde_json::Value>(&s.schema) {
                Ok(serde_json::Value::Object(_) | serde_json::Value::Bool(_)) => Ok(()),
                _ => Err(SchemaError::InvalidSchema("a JSON Schema must be an object or a boolean".into())),
            },
            SchemaType::Protobuf => Self::proto(state, s).map(|_| ()),
        }
    }

    /// The reader-can-read-writer check of one schema language.
    fn can_read(state: &State, reader: &StoredSchema, writer: &StoredSchema) -> Result<std::result::Result<(), String>> {
        Ok(match reader.schema_type {
            SchemaType::Avro => compat::can_read(&Self::avro(state, reader)?, &Self::avro(state, writer)?),
            SchemaType::Protobuf => compat_other::protobuf_can_read(&Self::proto(state, reader)?, &Self::proto(state, writer)?),
            SchemaType::Json => {
                let parse = |s: &StoredSchema| serde_json::from_str::<serde_json::Value>(&s.schema).map_err(|e| SchemaError::InvalidSchema(e.to_string()));
                compat_other::json_can_read(&parse(reader)?, &parse(writer)?, "")
            }
        })
    }

    fn proto(state: &State, s: &StoredSchema) -> Result<crate::protobuf::ProtoSchema> {
        let mut imports = Vec::new();
        for r in &s.references {
            imports.push((r.name.clone(), Self::referenced(state, r)?.schema.clone()));
        }
        crate::protobuf::ProtoSchema::from_source("schema.proto", &s.schema, &imports, None)
    }

    fn check(state: &State, subject: &str, new: &StoredSchema, against: &[u32], level: Compatibility) -> Result<()> {
        use Compatibility::*;
        if level == None || against.is_empty() {
            return Ok(());
        }
        let olds: Vec<&u32> = match level {
            Backward | Forward | Full => against.last().into_iter().collect(),
            _ => against.iter().collect(),
        };
        for id in olds {
            let old = state.schemas.get(id).ok_or_else(|| SchemaError::SchemaNotFound(id.to_string()))?;
            let incompatible = |reason: String| SchemaError::Incompatible { subject: subject.to_string(), reason };
            if old.schema_type != new.schema_type {
                return Err(incompatible(format!("schema id {id} is {:?}, the new one {:?}", old.schema_type, new.schema_type)));
            }
            if matches!(level, Backward | BackwardTransitive | Full | FullTransitive) {
                Self::can_read(state, new, old)?.map_err(|e| incompatible(format!("the new schema cannot read data written with id {id}: {e}")))?;
            }
            if matches!(level, Forward | ForwardTransitive | Full | FullTransitive) {
                Self::can_read(state, old, new)?.map_err(|e| incompatible(format!("schema id {id} cannot read data written with the new schema: {e}")))?;
            }
        }
        Ok(())
    }

    /// Registers a schema under a subject; returns its id (the existing one for a known schema).
    pub async fn register(&self, subject: &str, schema_type: SchemaType, schema: &str, references: Vec<Reference>) -> Result<u32> {
        let text = normalize(schema_type, schema)?;
        let mut state = self.state.lock().await;
        let candidate = StoredSchema { id: 0, schema_type, schema: text.clone(), references: references.clone() };
        Self::validate(&state, &candidate)?;
        let same = |s: &StoredSchema| s.schema_type == schema_type && s.schema == text && s.references == references;
        let live = state.live_versions(subject);
        if let Some((_, id)) = live.iter().find(|(_, id)| state.schemas.get(id).is_some_and(same)) {
            return Ok(*id);
        }
        let ids: Vec<u32> = live.iter().map(|(_, id)| *id).collect();
        Self::check(&state, subject, &candidate, &ids, state.level(subject))?;
        let id = state.schemas.values().find(|s| same(s)).map_or(state.last_id + 1, |s| s.id);
        let version = state.subjects.get(subject).and_then(|vs| vs.keys().last().copied()).unwrap_or(0) + 1;
        let stored = StoredSchema { id, ..candidate };
        self.record(&mut state, Event::Registered { subject: subject.to_string(), version, schema: stored }).await?;
        Ok(id)
    }

    /// The version of `subject` holding this schema.
    pub async fn lookup(&self, subject: &str, schema_type: SchemaType, schema: &str, references: &[Reference]) -> Result<SubjectVersion> {
        let text = normalize(schema_type, schema)?;
        let state = self.state.lock().await;
        if !state.subjects.contains_key(subject) {
            return Err(SchemaError::SubjectNotFound(subject.to_string()));
        }
        for (v, id) in state.live_versions(subject) {
            if let Some(s) = state.schemas.get(&id).filter(|s| s.schema_type == schema_type && s.schema == text && s.references == references) {
                return Ok(SubjectVersion { subject: subject.to_string(), version: v, schema: s.clone(), deleted: false });
            }
        }
        Err(SchemaError::SchemaNotFound(format!("in subject {subject}")))
    }

    /// One version ("latest" or a number).
    pub async fn version(&self, subject: &str, version: &str, include_deleted: bool) -> Result<SubjectVersion> {
        let state = self.state.lock().await;
        let vs = state.subjects.get(subject).ok_or_else(|| SchemaError::SubjectNotFound(subject.to_string()))?;
        let wanted = if version == "latest" || version == "-1" {
            vs.iter().rev().find(|(_, (_, d))| include_deleted || !d).map(|(v, _)| *v)
        } else {
            let n: i32 = version.parse().ok().filter(|n| *n >= 1).ok_or_else(|| SchemaError::InvalidVersion(version.to_string()))?;
            vs.get(&n).filter(|(_, d)| include_deleted || !d).map(|_| n)
        };
        let v = wanted.ok_or_else(|| SchemaError::VersionNotFound(subject.to_string(), version.to_string()))?;
        let (id, deleted) = vs[&v];
        let schema = state.schemas.get(&id).cloned().ok_or_else(|| SchemaError::SchemaNotFound(id.to_string()))?;
        Ok(SubjectVersion { subject: subject.to_string(), version: v, schema, deleted })
    }

    /// Versions of a subject.
    pub async fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<i32>> {
        let state = self.state.lock().await;
        let vs = state.subjects.get(subject).ok_or_else(|| SchemaError::SubjectNotFound(subject.to_string()))?;
        let out: Vec<i32> = vs.iter().filter(|(_, (_, d))| include_deleted || !d).map(|(v, _)| *v).collect();
        if out.is_empty() {
            return Err(SchemaError::SubjectNotFound(subject.to_string()));
        }
        Ok(out)
    }

    /// Subjects (with live versions, or all).
    pub async fn subjects(&self, include_deleted: bool) -> Vec<String> {
        let state = self.state.lock().await;
        state.subjects.iter().filter(|(_, vs)| include_deleted || vs.values().any(|(_, d)| !d)).map(|(s, _)| s.clone()).collect()
    }

    /// A schema by id.
    pub async fn schema(&self, id: u32) -> Result<StoredSchema> {
        let state = self.state.lock().await;
        state.schemas.get(&id).cloned().ok_or_else(|| SchemaError::SchemaNotFound(format!("id {id}")))
    }

    /// (subject, version) pairs using an id.
    pub async fn id_versions(&self, id: u32) -> Result<Vec<(String, i32)>> {
        let state = self.state.lock().await;
        if !state.schemas.contains_key(&id) {
            return Err(SchemaError::SchemaNotFound(format!("id {id}")));
        }
        Ok(state.subjects.iter().flat_map(|(s, vs)| vs.iter().filter(|(_, (i, _))| *i == id).map(|(v, _)| (s.clone(), *v))).collect())
    }

    /// Deletes a subject (soft, or permanently after a soft delete); returns the versions.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        let mut state = self.state.lock().await;
        let vs = state.subjects.get(subject).cloned().ok_or_else(|| SchemaError::SubjectNotFound(subject.to_string()))?;
        let all_deleted = vs.values().all(|(_, d)| *d);
        if permanent && !all_deleted {
            return Err(SchemaError::SubjectNotSoftDeleted(subject.to_string()));
        }
        if !permanent && all_deleted {
            return Err(SchemaError::SubjectSoftDeleted(subject.to_string()));
        }
        let mut out = Vec::new();
        for (v, (_, d)) in vs {
            if permanent || !d {
                self.record(&mut state, Event::Deleted { subject: subject.to_string(), version: v, permanent }).await?;
                out.push(v);
            }
        }
        Ok(out)
    }

    /// Deletes one version (soft, or permanently after a soft delete).
    pub async fn delete_version(&self, subject: &str, version: &str, permanent: bool) -> Result<i32> {
        let v = self.version(subject, version, permanent).await?;
        let mut state = self.state.lock().await;
        if permanent && !v.deleted {
            return Err(SchemaError::SubjectNotSoftDeleted(format!("{subject} version {}", v.version)));
        }
        self.record(&mut state, Event::Deleted { subject: subject.to_string(), version: v.version, permanent }).await?;
        Ok(v.version)
    }

    /// The compatibility level of a subject (or the global one).
    pub async fn level(&self, subject: Option<&str>, default_to_global: bool) -> Result<Compatibility> {
        let state = self.state.lock().await;
        match subject {
            None => Ok(state.global.unwrap_or(Compatibility::Backward)),
            Some(s) => match state.subject_levels.get(s) {
                Some(l) => Ok(*l),
                None if default_to_global => Ok(state.level(s)),
                None => Err(SchemaError::SubjectNotFound(s.to_string())),
            },
        }
    }

    /// Sets (or with `None` removes) a compatibility level.
    pub async fn set_level(&self, subject: Option<&str>, level: Option<Compatibility>) -> Result<()> {
        let mut state = self.state.lock().await;
        self.record(&mut state, Event::Config { subject: subject.map(str::to_string), level }).await
    }

    /// Is `schema` compatible with a version of the subject (under the subject's level)?
    pub async fn compatible(
        &self,
        subject: &str,
        version: &str,
        schema_type: SchemaType,
        schema: &str,
        references: Vec<Reference>,
    ) -> Result<(bool, Vec<String>)> {
        let against = self.version(subject, version, false).await?;
        let text = normalize(schema_type, schema)?;
        let state = self.state.lock().await;
        let candidate = StoredSchema { id: 0, schema_type, schema: text, references };
        let level = match state.level(subject) {
            Compatibility::BackwardTransitive => Compatibility::Backward,
            Compatibility::ForwardTransitive => Compatibility::Forward,
            Compatibility::FullTransitive => Compatibility::Full,
            l => l,
        };
        match Self::check(&state, subject, &candidate, &[against.schema.id], level) {
            Ok(()) => Ok((true, vec![])),
            Err(SchemaError::Incompatible { reason, .. }) => Ok((false, vec![reason])),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
