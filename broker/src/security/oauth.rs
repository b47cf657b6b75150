//! SASL OAUTHBEARER (RFC 7628, KIP-255): a JWT checked against a JWKS file — signature (RS256/384/512, PS256, ES256/384), expiry, issuer and audience.
//!
//! The JWKS file is read again when it changes, so keys rotate without a restart. A token's
//! `sub` (or the configured claim) is the principal; its `exp` bounds the SASL session.

use std::path::PathBuf;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use parking_lot::Mutex;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use crate::settings::Settings;

/// Longest token accepted.
pub const TOKEN_BYTES_MAX: usize = 16 << 10;
/// Most keys read from the JWKS file.
const KEYS_MAX: usize = 256;

#[derive(Debug, Clone, Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The principal's name (the `sub` claim, or the configured one).
    pub subject: String,
    /// When the token expires (ms since the epoch).
    pub expires_ms: i64,
}

/// Checks OAUTHBEARER tokens.
pub struct OAuthValidator {
    jwks_file: PathBuf,
    issuer: Option<String>,
    audience: Option<String>,
    sub_claim: String,
    skew_ms: i64,
    keys: Mutex<(Option<SystemTime>, Vec<Jwk>)>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    B64URL.decode(s.trim_end_matches('=')).map_err(|_| "not base64url".to_string())
}

fn read_keys(path: &std::path::Path) -> Result<Vec<Jwk>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("{} is not a JWKS: {e}", path.display()))?;
    if set.keys.len() > KEYS_MAX {
        return Err(format!("{} holds more than {KEYS_MAX} keys", path.display()));
    }
    Ok(set.keys)
}

impl OAuthValidator {
    /// A validator from the settings, if OAUTHBEARER is configured.
    pub fn from_settings(s: &Settings) -> Result<Option<OAuthValidator>, String> {
        let Some(file) = &s.sasl_oauthbearer_jwks_file else { return Ok(None) };
        let keys = read_keys(file)?;
        let stamp = std::fs::metadata(file).and_then(|m| m.modified()).ok();
        Ok(Some(OAuthValidator {
            jwks_file: file.clone(),
            issuer: s.sasl_oauthbearer_expected_issuer.clone(),
            audience: s.sasl_oauthbearer_expected_audience.clone(),
            sub_claim: s.sasl_oauthbearer_sub_claim_name.clone(),
            skew_ms: s.sasl_oauthbearer_clock_skew_seconds.saturating_mul(1000) as i64,
            keys: Mutex::new((stamp, keys)),
        }))
    }

    /// The keys, read again if the file changed (a file that no longer parses keeps the old keys).
    fn keys(&self) -> Vec<Jwk> {
        let stamp = std::fs::metadata(&self.jwks_file).and_then(|m| m.modified()).ok();
        let mut k = self.keys.lock();
        if stamp != k.0 {
            match read_keys(&self.jwks_file) {
                Ok(keys) => *k = (stamp, keys),
                Err(e) => tracing::warn!(error = %e, "the JWKS file changed but does not load; the previous keys stay"),
            }
        }
        k.1.clone()
    }

    /// Reads the client's first message (`n,,\x01auth=Bearer <jwt>\x01\x01`) and checks its token at `now_ms`.
    pub fn authenticate(&self, msg: &[u8], now_ms: i64) -> Result<Grant, String> {
        if msg.len() > TOKEN_BYTES_MAX {
            return Err(format!("an OAUTHBEARER message of {} bytes", msg.len()));
        }
        let text = std::str::from_utf8(msg).map_err(|_| "an OAUTHBEARER message is not UTF-8".to_string())?;
        let (gs2, kvs) = text.split_once('\x01').ok_or("an OAUTHBEARER message without key-value pairs")?;
        if !gs2.starts_with("n,") && !gs2.starts_with("y,") {
            return Err("channel binding is not supported".into());
        }
        let token = kvs
            .split('\x01')
            .find_map(|kv| kv.strip_prefix("auth="))
            .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
            .ok_or("no auth=Bearer token")?;
        self.check(token.trim(), now_ms)
    }

    /// Checks a compact JWS: signature by a JWKS key, then expiry, not-before, issuer, audience.
    pub fn check(&self, token: &str, now_ms: i64) -> Result<Grant, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("a token is not header.payload.signature".into());
        };
        let header: Header = serde_json::from_slice(&b64(h)?).map_err(|e| format!("token header: {e}"))?;
        let signature = b64(s)?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let keys = self.keys();
        let candidates: Vec<&Jwk> = keys.iter().filter(|k| header.kid.is_none() || k.kid == header.kid).collect();
        if !candidates.iter().any(|k| verify(&header.alg, k, signed, &signature)) {
            return Err(format!("the token's {} signature matches no key of the JWKS", header.alg));
        }
        let claims: serde_json::Value = serde_json::from_slice(&b64(p)?).map_err(|e| format!("token claims: {e}"))?;
        let secs = |name: &str| claims.get(name).and_then(serde_json::Value::as_f64).map(|v| (v * 1000.0) as i64);
        let expires_ms = secs("exp").ok_or("a token without exp")?;
        if now_ms > expires_ms.saturating_add(self.skew_ms) {
            return Err("the token has expired".into());
        }
        if secs("nbf").is_some_and(|nbf| now_ms.saturating_add(self.skew_ms) < nbf) {
            return Err("the token is not valid yet".into());
        }
        if let Some(want) = &self.issuer {
            if claims.get("iss").and_then(|v| v.as_str()) != Some(want.as_str()) {
                return Err("the token's issuer is not the expected one".into());
            }
        }
        if let Some(want) = &self.audience {
            let ok = match claims.get("aud") {
                Some(serde_json::Value::String(a)) => a == want,
                Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want.as_str())),
                _ => false,
            };
            if !ok {
                return Err("the token is not meant for this audience".into());
            }
        }
        let subject =
            claims.get(&self.sub_claim).and_then(|v| v.as_str()).filter(|s| !s.is_empty()).ok_or_else(|| format!("a token without {}", self.sub_claim))?;
        Ok(Grant { subject: subject.to_string(), expires_ms })
    }
}

/// Verifies `sig` over `msg` with key `k` for JWS algorithm `alg` (never `none` or HMAC).
fn verify(alg: &str, k: &Jwk, msg: &[u8], sig: &[u8]) -> bool {
    let rsa = |params: &'static signature::RsaParameters| -> bool {
        let (Some(n), Some(e)) = (k.n.as_deref().and_then(|n| b64(n).ok()), k.e.as_deref().and_then(|e| b64(e).ok())) else { return false };
        k.kty == "RSA" && RsaPublicKeyComponents { n: &n, e: &e }.verify(params, msg, sig).is_ok()
    };
    let ec = |crv: &str, alg: &'static signature::EcdsaVerificationAlgorithm| -> bool {
        let (Some(x), Some(y)) = (k.x.as_deref().and_then(|x| b64(x).ok()), k.y.as_deref().and_then(|y| b64(y).ok())) else { return false };
        if k.kty != "EC" || k.crv.as_deref() != Some(crv) {
            return false;
        }
        let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
        UnparsedPublicKey::new(alg, point).verify(msg, sig).is_ok()
    };
    match alg {
        "RS256" => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "ES256" => ec("P-256", &signature::ECDSA_P256_SHA256_FIXED),
        "ES384" => ec("P-384", &signature::ECDSA_P384_SHA384_FIXED),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
