//! OAuth2 client credentials for the REST catalog (`POST /v1/oauth/tokens`, as pyiceberg's `credential=id:secret` and Spark's `credential` use it): short-lived opaque tokens issued to callers whose id and secret an injected checker accepts.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

/// Checks a client id and secret (the broker checks them as a user's name and password).
pub trait ClientCredentials: Send + Sync {
    /// Whether `secret` is `client_id`'s.
    fn check(&self, client_id: &str, secret: &str) -> bool;
}

/// Most tokens alive at once; past it the oldest are dropped.
pub const TOKENS_MAX: usize = 10_000;

/// Issues and recognises tokens.
pub struct TokenIssuer {
    credentials: Arc<dyn ClientCredentials>,
    ttl_ms: i64,
    now_ms: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// token → (client id, expiry ms)
    live: Mutex<HashMap<String, (String, i64)>>,
}

impl TokenIssuer {
    /// Tokens valid for `ttl_ms`, on the clock `now_ms`.
    pub fn new(credentials: Arc<dyn ClientCredentials>, ttl_ms: u64, now_ms: Arc<dyn Fn() -> i64 + Send + Sync>) -> TokenIssuer {
        TokenIssuer { credentials, ttl_ms: ttl_ms.clamp(1_000, 86_400_000) as i64, now_ms, live: Mutex::new(HashMap::new()) }
    }

    /// A token and its lifetime in seconds, if the credentials are good.
    pub fn issue(&self, client_id: &str, secret: &str) -> Option<(String, i64)> {
        if !self.credentials.check(client_id, secret) {
            return None;
        }
        let now = (self.now_ms)();
        let token = format!("floe-{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut live = self.live.lock();
        live.retain(|_, (_, exp)| *exp > now);
        if live.len() >= TOKENS_MAX {
            if let Some(oldest) = live.iter().min_by_key(|(_, (_, exp))| *exp).map(|(k, _)| k.clone()) {
                live.remove(&oldest);
            }
        }
        live.insert(token.clone(), (client_id.to_string(), now + self.ttl_ms));
        Some((token, self.ttl_ms / 1000))
    }

    /// The client a live token was issued to.
    pub fn client_of(&self, token: &str) -> Option<String> {
        let now = (self.now_ms)();
        self.live.lock().get(token).filter(|(_, exp)| *exp > now).map(|(c, _)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    struct One;
    impl ClientCredentials for One {
        fn check(&self, id: &str, secret: &str) -> bool {
            id == "spark" && secret == "s3cret"
        }
    }

    #[test]
    fn tokens_are_issued_for_good_credentials_and_expire() {
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = now.clone();
        let issuer = TokenIssuer::new(Arc::new(One), 60_000, Arc::new(move || clock.load(Ordering::Relaxed)));
        assert!(issuer.issue("spark", "wrong").is_none());
        let (t, expires_in) = issuer.issue("spark", "s3cret").expect("issued");
        assert_eq!(expires_in, 60);
        assert_eq!(issuer.client_of(&t).as_deref(), Some("spark"));
        assert_eq!(issuer.client_of("floe-made-up"), None);
        now.fetch_add(60_001, Ordering::Relaxed);
        assert_eq!(issuer.client_of(&t), None, "expired");
    }
}
