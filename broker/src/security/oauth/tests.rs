//! Tokens signed here with a fresh P-256 key: good ones pass, every kind of bad one is refused.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::*;

struct Issuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    jwks: tempfile::NamedTempFile,
}

fn issuer() -> Issuer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("key");
    let point = key.public_key().as_ref();
    let jwk = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "x": B64URL.encode(&point[1..33]), "y": B64URL.encode(&point[33..65])}]});
    let jwks = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(jwks.path(), jwk.to_string()).expect("write");
    Issuer { key, rng, jwks }
}

impl Issuer {
    fn token(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!("{}.{}", B64URL.encode(header.to_string()), B64URL.encode(claims.to_string()));
        let sig = self.key.sign(&self.rng, signed.as_bytes()).expect("sign");
        format!("{signed}.{}", B64URL.encode(sig.as_ref()))
    }

    fn validator(&self) -> OAuthValidator {
        let s = Settings {
            sasl_oauthbearer_jwks_file: Some(self.jwks.path().to_path_buf()),
            sasl_oauthbearer_expected_issuer: Some("https://idp.test".into()),
            sasl_oauthbearer_expected_audience: Some("floe".into()),
            ..Settings::default()
        };
        OAuthValidator::from_settings(&s).expect("valid").expect("configured")
    }
}

const NOW_MS: i64 = 1_800_000_000_000;

fn claims(exp_s: i64) -> serde_json::Value {
    serde_json::json!({"sub": "alice", "iss": "https://idp.test", "aud": ["other", "floe"], "exp": exp_s})
}

#[test]
fn a_good_token_grants_its_subject_until_it_expires() {
    let i = issuer();
    let t = i.token(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims(NOW_MS / 1000 + 600));
    let msg = format!("n,,\x01auth=Bearer {t}\x01\x01");
    let g = i.validator().authenticate(msg.as_bytes(), NOW_MS).expect("valid");
    assert_eq!(g, Grant { subject: "alice".into(), expires_ms: NOW_MS + 600_000 });
}

#[test]
fn bad_tokens_are_refused() {
    let i = issuer();
    let v = i.validator();
    let h = serde_json::json!({"alg": "ES256"});
    let expired = i.token(h.clone(), claims(NOW_MS / 1000 - 60));
    assert!(v.check(&expired, NOW_MS).expect_err("expired").contains("expired"));
    let mut c = claims(NOW_MS / 1000 + 600);
    c["iss"] = "https://evil.test".into();
    assert!(v.check(&i.token(h.clone(), c), NOW_MS).expect_err("issuer").contains("issuer"));
    let mut c = claims(NOW_MS / 1000 + 600);
    c["aud"] = "someone-else".into();
    assert!(v.check(&i.token(h.clone(), c), NOW_MS).expect_err("audience").contains("audience"));
    let good = i.token(h.clone(), claims(NOW_MS / 1000 + 600));
    let (head, rest) = good.split_once('.').expect("dots");
    let (_, sig) = rest.split_once('.').expect("dots");
    let mut c = claims(NOW_MS / 1000 + 600);
    c["sub"] = "admin".into();
    let forged = format!("{head}.{}.{sig}", B64URL.encode(c.to_string()));
    assert!(v.check(&forged, NOW_MS).expect_err("forged").contains("signature"));
    let none = format!("{}.{}.", B64URL.encode(r#"{"alg":"none"}"#), B64URL.encode(claims(NOW_MS / 1000 + 600).to_string()));
    assert!(v.check(&none, NOW_MS).is_err(), "alg none");
    let other = issuer();
    assert!(v.check(&other.token(h, claims(NOW_MS / 1000 + 600)), NOW_MS).is_err(), "a key outside the JWKS");
    assert!(v.authenticate(b"n,,\x01auth=Basic abc\x01\x01", NOW_MS).is_err());
    assert!(v.authenticate(b"p=tls,,\x01auth=Bearer x.y.z\x01\x01", NOW_MS).is_err());
    assert!(v.check("a.b", NOW_MS).is_err());
}

#[test]
fn a_rotated_jwks_is_read_again() {
    let i = issuer();
    let v = i.validator();
    let next = issuer();
    let t = next.token(serde_json::json!({"alg": "ES256"}), claims(NOW_MS / 1000 + 600));
    assert!(v.check(&t, NOW_MS).is_err());
    std::fs::copy(next.jwks.path(), i.jwks.path()).expect("rotate");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options().write(true).open(i.jwks.path()).and_then(|f| f.set_modified(later)).expect("touch");
    assert_eq!(v.check(&t, NOW_MS).expect("the new key").subject, "alice");
}
