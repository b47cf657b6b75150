//! SCRAM credentials (`security/scram/<mechanism>/<user>`, never a password), durable in the security store: the engine's metadata, or etcd in a cluster.

use std::collections::BTreeMap;

use std::sync::Arc;

use super::store::SecurityStore;

use super::scram::{ScramCredential, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};
use crate::error::{BrokerError, Result};

const PREFIX: &str = "security/scram/";
const DECOY_KEY: &str = "security/decoy_key";
/// Most credentials kept (they live in the engine's manifest).
pub const CREDENTIALS_MAX: usize = 10_000;
/// Longest user name.
pub const USER_NAME_BYTES_MAX: usize = 256;

/// The node's SCRAM users.
pub struct Users {
    store: Arc<SecurityStore>,
    /// Orders changes, so that the count check and the write are one step.
    writes: tokio::sync::Mutex<()>,
    /// Makes an unknown user's decoy salt stable and unguessable.
    decoy_key: Vec<u8>,
}

fn key(user: &str, mech: ScramMechanism) -> String {
    format!("{PREFIX}{}/{user}", mech.name())
}

/// Why a user name cannot be used, if it cannot.
pub fn check_name(user: &str) -> Result<()> {
    if user.is_empty() || user.len() > USER_NAME_BYTES_MAX || user.chars().any(char::is_control) {
        return Err(BrokerError::UnacceptableCredential(format!("a user name must be 1..={USER_NAME_BYTES_MAX} bytes without control characters")));
    }
    Ok(())
}

impl Users {
    /// The users of `store` (creating the decoy key on first use).
    pub async fn open(store: Arc<SecurityStore>) -> Result<Users> {
        let decoy_key = match store.get(DECOY_KEY) {
            Some(k) => k.into_bytes(),
            None => {
                let k = uuid::Uuid::new_v4().simple().to_string();
                store.put(vec![(DECOY_KEY.into(), Some(k.clone()))]).await?;
                k.into_bytes()
            }
        };
        Ok(Users { store, writes: tokio::sync::Mutex::new(()), decoy_key })
    }

    /// The decoy key for unknown users' salts.
    pub fn decoy_key(&self) -> &[u8] {
        &self.decoy_key
    }

    /// A user's credential for a mechanism.
    pub fn get(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        let v = self.store.get(&key(user, mech))?;
        match serde_json::from_str(&v) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(user, mechanism = mech.name(), error = %e, "a stored SCRAM credential does not parse; the user cannot log in with it");
                None
            }
        }
    }

    /// Checks a password against the user's SCRAM credential (SHA-256 first, else SHA-512). An
    /// unknown user costs the same work as a known one; the error is for the log only.
    pub fn check_password(&self, user: &str, password: &str) -> std::result::Result<(), String> {
        let found = ScramMechanism::ALL.into_iter().find_map(|m| self.get(user, m).map(|c| (m, c)));
        match found {
            Some((m, c)) if c.matches_password(m, password) => Ok(()),
            Some(_) => Err(format!("a wrong password for user {user:?}")),
            None => {
                let _ = ScramMechanism::Sha256.salted_password(password.as_bytes(), &self.decoy_key, ITERATIONS_MIN);
                Err(format!("unknown user {user:?}"))
            }
        }
    }

    /// Every user with the mechanisms and iteration counts of its credentials.
    pub fn list(&self) -> BTreeMap<String, Vec<(ScramMechanism, u32)>> {
        let mut out: BTreeMap<String, Vec<(ScramMechanism, u32)>> = BTreeMap::new();
        for (k, v) in self.store.scan(PREFIX) {
            let Some((mech, user)) = k[PREFIX.len()..].split_once('/') else { continue };
            let (Some(mech), Ok(c)) = (ScramMechanism::from_name(mech), serde_json::from_str::<ScramCredential>(&v)) else { continue };
            out.entry(user.to_string()).or_default().push((mech, c.iterations));
        }
        out
    }

    /// Applies deletions and upserts in one durable write. Deleting a credential that does not
    /// exist, or going past [`CREDENTIALS_MAX`], fails the whole change.
    pub async fn alter(&self, deletions: &[(String, ScramMechanism)], upserts: Vec<(String, ScramMechanism, ScramCredential)>) -> Result<()> {
        let _order = self.writes.lock().await;
        let mut entries = Vec::new();
        for (user, mech) in deletions {
            if self.store.get(&key(user, *mech)).is_none() {
                return Err(BrokerError::ResourceNotFound(format!("user {user:?} has no {} credential", mech.name())));
            }
            entries.push((key(user, *mech), None));
        }
        let existing = self.store.scan(PREFIX).len();
        let new = upserts.iter().filter(|(u, m, _)| self.store.get(&key(u, *m)).is_none()).count();
        if existing + new > CREDENTIALS_MAX + deletions.len() {
            return Err(BrokerError::UnacceptableCredential(format!("at most {CREDENTIALS_MAX} credentials are kept")));
        }
        for (user, mech, cred) in upserts {
            check_name(&user)?;
            if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&cred.iterations) {
                return Err(BrokerError::UnacceptableCredential(format!("{} iterations is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}", cred.iterations)));
            }
            let json = serde_json::to_string(&cred).map_err(|e| BrokerError::Internal(e.to_string()))?;
            entries.push((key(&user, mech), Some(json)));
        }
        self.store.put(entries).await?;
        Ok(())
    }
}
