//! SCRAM-SHA-256/512 (RFC 5802, RFC 7677): stored credentials, the server's exchange and the client's (for the CLI).
//!
//! The server never sees or keeps a password: a credential is (salt, iterations, StoredKey,
//! ServerKey). A proof is checked by recovering ClientKey = proof XOR HMAC(StoredKey, AuthMessage)
//! and comparing H(ClientKey) with StoredKey in constant time. The server's nonce is fresh for
//! every exchange, so a replayed client message can never be completed.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// Fewest iterations a credential may use (Kafka's floor).
pub const ITERATIONS_MIN: u32 = 4096;
/// Most iterations a credential may use (Kafka's ceiling; bounds the cost of one login).
pub const ITERATIONS_MAX: u32 = 16384;
/// Longest SCRAM message accepted.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Characters of a nonce (about 190 bits).
const NONCE_CHARS: usize = 32;

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// From the SASL name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// From the Kafka protocol's mechanism byte (1: SHA-256, 2: SHA-512).
    pub fn from_kafka(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The Kafka protocol's mechanism byte.
    pub fn kafka_code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data).as_ref().to_vec()
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with the mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest().output_len()];
        let i = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), i, salt, password, &mut out);
        out
    }

    /// The stored credential for a salted password.
    pub fn credential(self, salted_password: &[u8], salt: &[u8], iterations: u32) -> ScramCredential {
        let client_key = self.mac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: digest::digest(self.digest(), &client_key).as_ref().to_vec(),
            server_key: self.mac(salted_password, b"Server Key"),
        }
    }

    /// A credential for `password` with a fresh random salt.
    pub fn new_credential(self, password: &str, iterations: u32) -> ScramCredential {
        let salt = random_bytes(self.digest().output_len());
        self.credential(&self.salted_password(password.as_bytes(), &salt, iterations), &salt, iterations)
    }
}

/// What the server keeps of a SCRAM user: never the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// Whether `password` is this credential's (constant time in the comparison).
    pub fn matches_password(&self, mech: ScramMechanism, password: &str) -> bool {
        let c = mech.credential(&mech.salted_password(password.as_bytes(), &self.salt, self.iterations), &self.salt, self.iterations);
        bool::from(c.stored_key.ct_eq(&self.stored_key))
    }
}

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A fresh nonce: alphanumeric, as Kafka's are (some clients mishandle `+`, `/` or `=` in one).
fn nonce() -> String {
    use rand::Rng;
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(NONCE_CHARS).map(char::from).collect()
}

/// A refused exchange, with the reason for the server's log (the client is told only that it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

fn err<T>(reason: impl Into<String>) -> Result<T, ScramError> {
    Err(ScramError(reason.into()))
}

/// The `k=v` attributes of a SCRAM message, in order.
fn attributes(msg: &str) -> Result<Vec<(char, &str)>, ScramError> {
    msg.split(',')
        .map(|a| {
            let mut chars = a.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &a[2..])),
                _ => err(format!("malformed attribute {a:?}")),
            }
        })
        .collect()
}

/// RFC 5802 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return err("malformed user name escape"),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_name(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

fn utf8(msg: &[u8]) -> Result<&str, ScramError> {
    if msg.len() > MESSAGE_BYTES_MAX {
        return err(format!("a SCRAM message of {} bytes is over {MESSAGE_BYTES_MAX}", msg.len()));
    }
    std::str::from_utf8(msg).map_err(|_| ScramError("a SCRAM message is not UTF-8".into()))
}

/// The server's side of one exchange, after the client's first message.
pub struct ScramServer {
    mech: ScramMechanism,
    user: String,
    /// None when the user is unknown: the exchange goes on with a made-up salt and fails at the proof.
    credential: Option<ScramCredential>,
    gs2_header: String,
    nonce: String,
    auth_message_prefix: String,
}

impl ScramServer {
    /// Reads the client's first message and returns the server's first. `lookup` finds the
    /// user's credential; `decoy_key` makes an unknown user's salt stable and unguessable, so
    /// that the answer does not tell whether the user exists.
    pub fn start(
        mech: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        decoy_key: &[u8],
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        Self::start_with_nonce(mech, client_first, lookup, decoy_key, nonce())
    }

    fn start_with_nonce(
        mech: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        decoy_key: &[u8],
        server_nonce: String,
    ) -> Result<(ScramServer, Vec<u8>), ScramError> {
        let msg = utf8(client_first)?;
        // gs2-header: "n," or "y," (no channel binding), then an optional "a=authzid", then ",".
        let (cbind, rest) = msg.split_once(',').ok_or_else(|| ScramError("no GS2 header".into()))?;
        if cbind != "n" && cbind != "y" {
            return err(format!("channel binding {cbind:?} is not supported"));
        }
        let (authzid, bare) = rest.split_once(',').ok_or_else(|| ScramError("no GS2 header".into()))?;
        let gs2_header = format!("{cbind},{authzid},");
        let attrs = attributes(bare)?;
        let (user, client_nonce) = match attrs.as_slice() {
            [('n', u), ('r', r), extensions @ ..] => {
                // Kafka's one extension: delegation tokens, which Floe does not issue.
                if extensions.iter().any(|(k, v)| *k == 't' || v.starts_with("tokenauth")) {
                    return err("delegation-token authentication is not supported");
                }
                (decode_name(u)?, *r)
            }
            [('m', _), ..] => return err("a mandatory extension is not supported"),
            _ => return err("the client's first message lacks n= or r="),
        };
        if user.is_empty() || client_nonce.is_empty() || client_nonce.contains(|c: char| !c.is_ascii_graphic()) {
            return err("an empty user name or a malformed nonce");
        }
        if !authzid.is_empty() && authzid.strip_prefix("a=").map(decode_name).transpose()?.as_deref() != Some(user.as_str()) {
            return err("an authorization id other than the user");
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (mech.mac(decoy_key, user.as_bytes()), ITERATIONS_MIN),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        let auth_message_prefix = format!("{bare},{server_first},");
        Ok((ScramServer { mech, user, credential, gs2_header, nonce, auth_message_prefix }, server_first.into_bytes()))
    }

    /// Checks the client's final message: returns the authenticated user and the server's final
    /// message (its signature, for the client to check).
    pub fn finish(self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let msg = utf8(client_final)?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or_else(|| ScramError("the client's final message has no proof".into()))?;
        let attrs = attributes(without_proof)?;
        let (cbind, nonce) = match attrs.as_slice() {
            [('c', c), ('r', r), ..] => (*c, *r),
            _ => return err("the client's final message lacks c= or r="),
        };
        if B64.decode(cbind).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return err("the channel binding does not repeat the GS2 header");
        }
        // Kafka accepts a final nonce that ends with the exchange's (librdkafka sends its own
        // nonce again in front of it); the server's fresh part is what defeats a replay.
        let tail = nonce.len().checked_sub(self.nonce.len()).and_then(|at| nonce.as_bytes().get(at..)).unwrap_or_default();
        if !bool::from(tail.ct_eq(self.nonce.as_bytes())) {
            return err("the nonce is not this exchange's");
        }
        let proof = B64.decode(proof).map_err(|_| ScramError("the proof is not base64".into()))?;
        let Some(cred) = &self.credential else { return err(format!("unknown user {:?}", self.user)) };
        let auth_message = format!("{}{without_proof}", self.auth_message_prefix);
        let client_signature = self.mech.mac(&cred.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return err("the proof has the wrong length");
        }
        let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
        let stored_key = digest::digest(self.mech.digest(), &client_key);
        if !bool::from(stored_key.as_ref().ct_eq(&cred.stored_key)) {
            return err(format!("a wrong proof for user {:?}", self.user));
        }
        let server_signature = self.mech.mac(&cred.server_key, auth_message.as_bytes());
        Ok((self.user, format!("v={}", B64.encode(server_signature)).into_bytes()))
    }
}

/// The client's side of one exchange (for the CLI's admin connection).
pub struct ScramClient {
    mech: ScramMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts an exchange for `user`; returns the client's first message.
    pub fn start(mech: ScramMechanism, user: &str, password: &str) -> (ScramClient, Vec<u8>) {
        Self::with_nonce(mech, user, password, nonce())
    }

    fn with_nonce(mech: ScramMechanism, user: &str, password: &str, nonce: String) -> (ScramClient, Vec<u8>) {
        let client_first_bare = format!("n={},r={nonce}", encode_name(user));
        let first = format!("n,,{client_first_bare}").into_bytes();
        (ScramClient { mech, password: password.to_string(), client_first_bare, nonce, server_signature: None }, first)
    }

    /// Answers the server's first message with the proof.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let msg = utf8(server_first)?;
        let attrs = attributes(msg)?;
        let (nonce, salt, iterations) = match attrs.as_slice() {
            [('r', r), ('s', s), ('i', i), ..] => (*r, *s, *i),
            _ => return err("the server's first message lacks r=, s= or i="),
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return err("the server's nonce does not extend ours");
        }
        let salt = B64.decode(salt).map_err(|_| ScramError("the salt is not base64".into()))?;
        let iterations: u32 = iterations.parse().map_err(|_| ScramError("the iteration count is not a number".into()))?;
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return err(format!("{iterations} iterations is outside {ITERATIONS_MIN}..={ITERATIONS_MAX}"));
        }
        let salted = self.mech.salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{msg},{without_proof}", self.client_first_bare);
        // The client knows what the server stores, and ClientKey besides.
        let cred = self.mech.credential(&salted, &salt, iterations);
        let client_key = self.mech.mac(&salted, b"Client Key");
        let signature = self.mech.mac(&cred.stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        self.server_signature = Some(self.mech.mac(&cred.server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message: the server knew the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let msg = utf8(server_final)?;
        let Some(v) = msg.strip_prefix("v=") else { return err(format!("the server refused: {msg}")) };
        let got = B64.decode(v).map_err(|_| ScramError("the server signature is not base64".into()))?;
        match &self.server_signature {
            Some(want) if bool::from(got.ct_eq(want)) => Ok(()),
            _ => err("the server's signature is wrong"),
        }
    }
}

#[cfg(test)]
mod tests;
