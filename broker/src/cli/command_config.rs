//! `--command-config`: librdkafka-style client properties for the admin subcommands, and the client's side of TLS and SASL.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsConnector;

use super::kafka::{check, Client};
use crate::security::listeners::SecurityProtocol;
use crate::security::sasl::Mechanism;
use crate::security::scram::ScramClient;

/// A SASL login.
#[derive(Debug, Clone)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

/// How the admin client secures its connection.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    pub tls: bool,
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate and key (mTLS).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub sasl: Option<SaslLogin>,
}

/// Parses `key=value` lines (`#` comments, blank lines skipped).
fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
        .collect()
}

impl ClientSecurity {
    /// From a properties file.
    pub fn from_file(path: &Path) -> anyhow::Result<ClientSecurity> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_properties(&properties(&text))
    }

    /// From properties (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`,
    /// `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`).
    pub fn from_properties(p: &BTreeMap<String, String>) -> anyhow::Result<ClientSecurity> {
        let protocol = match p.get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(v) => SecurityProtocol::parse(v).ok_or_else(|| anyhow!("security.protocol {v:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"))?,
        };
        let sasl = match protocol.sasl() {
            false => None,
            true => {
                let name = p.get("sasl.mechanism").or_else(|| p.get("sasl.mechanisms")).map_or("PLAIN", String::as_str);
                let mechanism = Mechanism::parse(name).ok_or_else(|| anyhow!("sasl.mechanism {name:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"))?;
                let get = |k: &str| p.get(k).cloned().ok_or_else(|| anyhow!("{k} is needed for SASL"));
                Some(SaslLogin { mechanism, username: get("sasl.username")?, password: get("sasl.password")? })
            }
        };
        let client_cert = match (p.get("ssl.certificate.location"), p.get("ssl.key.location")) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => bail!("ssl.certificate.location and ssl.key.location go together"),
        };
        Ok(ClientSecurity { tls: protocol.tls(), ca_file: p.get("ssl.ca.location").map(Into::into), client_cert, sasl })
    }

    /// A TLS connector, if the protocol uses TLS.
    pub fn tls_connector(&self) -> anyhow::Result<Option<TlsConnector>> {
        if !self.tls {
            return Ok(None);
        }
        let ca = self.ca_file.as_ref().ok_or_else(|| anyhow!("ssl.ca.location is needed for TLS"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))? {
            roots.add(c.with_context(|| format!("reading {}", ca.display()))?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?.with_root_certificates(roots);
        let config = match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert).with_context(|| format!("reading {}", cert.display()))?.collect::<Result<Vec<_>, _>>()?;
                let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
                builder.with_client_auth_cert(chain, key)?
            }
        };
        Ok(Some(TlsConnector::from(Arc::new(config))))
    }
}

fn sasl_error(code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    check(code, message, "SASL authentication")
}

/// Runs the SASL exchange (SaslHandshake v1, then SaslAuthenticate) on a fresh connection.
pub async fn authenticate(c: &mut Client, login: &SaslLogin) -> anyhow::Result<()> {
    let hs = c.call(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(login.mechanism.name().into())), 1).await?;
    check(hs.error_code, None, &format!("SASL handshake for {}", login.mechanism.name()))?;
    let step = |bytes: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
    match login.mechanism {
        Mechanism::Plain => {
            let r = c.call(&step(format!("\0{}\0{}", login.username, login.password).into_bytes()), 1).await?;
            sasl_error(r.error_code, r.error_message.as_ref())
        }
        Mechanism::OAuthBearer => bail!("the floe CLI logs in with PLAIN or SCRAM, not OAUTHBEARER"),
        Mechanism::Scram(m) => {
            let (mut scram, first) = ScramClient::start(m, &login.username, &login.password);
            let r = c.call(&step(first), 1).await?;
            sasl_error(r.error_code, r.error_message.as_ref())?;
            let last = scram.respond(&r.auth_bytes).map_err(|e| anyhow!("SCRAM: {}", e.0))?;
            let r = c.call(&step(last), 1).await?;
            sasl_error(r.error_code, r.error_message.as_ref())?;
            scram.verify(&r.auth_bytes).map_err(|e| anyhow!("SCRAM: {}", e.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_properties_are_read() {
        let p = properties(
            "# admin\nsecurity.protocol=SASL_SSL\nsasl.mechanism = SCRAM-SHA-512\nsasl.username=admin\nsasl.password=a=b\nssl.ca.location=/ca.pem\n",
        );
        let s = ClientSecurity::from_properties(&p).expect("valid");
        assert!(s.tls);
        let login = s.sasl.expect("sasl");
        assert_eq!((login.mechanism.name(), login.username.as_str(), login.password.as_str()), ("SCRAM-SHA-512", "admin", "a=b"));
        assert!(ClientSecurity::from_properties(&properties("security.protocol=SASL_PLAINTEXT\nsasl.username=x\n")).is_err(), "no password");
        assert!(ClientSecurity::from_properties(&properties("security.protocol=TLS\n")).is_err());
    }
}
