//! TLS of the Kafka listeners (rustls, ring): PEM certificate and key, optional client certificates, files read again when they change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::principal::PrincipalRules;
use crate::settings::TlsSettings;

/// Whether and how clients present certificates (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    fn of(s: &TlsSettings) -> Result<ClientAuth, String> {
        match (s.client_auth.as_deref().map(str::to_ascii_lowercase).as_deref(), &s.client_ca_file) {
            (Some("none"), _) => Ok(ClientAuth::None),
            (Some("requested"), Some(_)) => Ok(ClientAuth::Requested),
            (Some("required"), Some(_)) | (None, Some(_)) => Ok(ClientAuth::Required),
            (None, None) => Ok(ClientAuth::None),
            (Some(a @ ("requested" | "required")), None) => Err(format!("tls.client_auth = {a:?} needs tls.client_ca_file")),
            (Some(other), _) => Err(format!("tls.client_auth {other:?} is not none, requested or required")),
        }
    }
}

/// The listeners' TLS configuration, replaced whole when its files change.
pub struct Tls {
    settings: TlsSettings,
    rules: PrincipalRules,
    current: RwLock<Arc<ServerConfig>>,
    /// The files' modification times when `current` was built.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

fn files(s: &TlsSettings) -> Vec<PathBuf> {
    [&s.cert_file, &s.key_file, &s.client_ca_file].into_iter().flatten().cloned().collect()
}

fn stamps(s: &TlsSettings) -> Vec<Option<SystemTime>> {
    files(s).iter().map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn build(s: &TlsSettings) -> Result<ServerConfig, String> {
    let (Some(cert_file), Some(key_file)) = (&s.cert_file, &s.key_file) else {
        return Err("a TLS listener needs tls.cert_file and tls.key_file".into());
    };
    let chain = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| format!("reading the private key {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
    let auth = ClientAuth::of(s)?;
    let builder = match (&s.client_ca_file, auth) {
        (Some(ca), ClientAuth::Requested | ClientAuth::Required) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| format!("a CA certificate in {}: {e}", ca.display()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if auth == ClientAuth::Requested { v.allow_unauthenticated() } else { v };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("client certificate verifier: {e}"))?)
        }
        _ => builder.with_no_client_auth(),
    };
    builder.with_single_cert(chain, key).map_err(|e| format!("the certificate and key of {}: {e}", cert_file.display()))
}

impl Tls {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn load(settings: &TlsSettings, principal_rules: &str) -> Result<Arc<Tls>, String> {
        let config = build(settings)?;
        let rules = PrincipalRules::parse(principal_rules).map_err(|e| format!("ssl_principal_mapping_rules: {e}"))?;
        Ok(Arc::new(Tls { settings: settings.clone(), rules, current: RwLock::new(Arc::new(config)), stamps: Mutex::new(stamps(settings)) }))
    }

    /// The principal of a client certificate with subject `dn`.
    pub fn principal(&self, dn: &str) -> String {
        format!("User:{}", self.rules.apply(dn))
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Reads the files again if any changed; a configuration that does not load is logged and
    /// the previous one stays. Returns whether a new one took effect.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.settings);
        let mut seen = self.stamps.lock();
        if *seen == now {
            return false;
        }
        *seen = now;
        match build(&self.settings) {
            Ok(c) => {
                *self.current.write() = Arc::new(c);
                tracing::info!(files = ?files(&self.settings), "TLS certificate files changed: new connections use them");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS certificate files changed but do not load; the previous ones stay in use");
                false
            }
        }
    }

    /// Checks the files every `reload_interval_ms` for as long as the returned task runs.
    pub fn spawn_reloader(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        let period = Duration::from_millis(self.settings.reload_interval_ms.0.max(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(tls) = me.upgrade() else { break };
                tls.reload_if_changed();
            }
        })
    }
}
