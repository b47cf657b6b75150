//! Named Kafka listeners as Kafka configures them: `NAME://host:port`, a security protocol per name, an advertised address per name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::settings::Settings;

/// How a listener's connections are secured (Kafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// From Kafka's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`), any case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections speak TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL before anything else.
    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// A listener as configured, before it is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// The listener's name, upper case (`PLAINTEXT`, `INTERNAL`…).
    pub name: String,
    pub protocol: SecurityProtocol,
    /// host:port to bind (an empty host binds every interface).
    pub bind: String,
    /// host:port given to clients that connect here; unset: the bound address.
    pub advertised: Option<String>,
}

/// Splits `NAME://host:port`.
fn name_and_address(entry: &str) -> Result<(String, String), String> {
    let (name, addr) = entry.trim().split_once("://").ok_or_else(|| format!("listener {entry:?} is not NAME://host:port"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("listener {entry:?} has no valid name"));
    }
    if addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return Err(format!("listener {entry:?} has no port"));
    }
    Ok((name.to_ascii_uppercase(), addr.to_string()))
}

/// The listeners to bind: `listeners` with their protocols and advertised addresses, or, when
/// `listeners` is empty, one PLAINTEXT listener on `kafka_listen` advertised as
/// `advertised_listener`.
pub fn specs(s: &Settings) -> Result<Vec<ListenerSpec>, String> {
    if s.listeners.is_empty() {
        if !s.advertised_listeners.is_empty() {
            return Err("advertised_listeners needs listeners".into());
        }
        return Ok(vec![ListenerSpec {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: s.kafka_listen.clone(),
            advertised: s.advertised_listener.clone(),
        }]);
    }
    let map: BTreeMap<String, SecurityProtocol> = s
        .listener_security_protocol_map
        .iter()
        .map(|(k, v)| SecurityProtocol::parse(v).map(|p| (k.to_ascii_uppercase(), p)).ok_or_else(|| format!("{v:?} is not a security protocol")))
        .collect::<Result<_, _>>()?;
    let mut advertised = BTreeMap::new();
    for entry in &s.advertised_listeners {
        let (name, addr) = name_and_address(entry)?;
        if advertised.insert(name.clone(), addr).is_some() {
            return Err(format!("advertised listener {name} is given twice"));
        }
    }
    let mut out: Vec<ListenerSpec> = Vec::new();
    for entry in &s.listeners {
        let (name, bind) = name_and_address(entry)?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener {name} is given twice"));
        }
        let protocol = match map.get(&name).copied().or_else(|| SecurityProtocol::parse(&name)) {
            Some(p) => p,
            None => return Err(format!("listener {name} has no security protocol: name it after one or map it in listener_security_protocol_map")),
        };
        let advertised = advertised.remove(&name);
        out.push(ListenerSpec { name, protocol, bind, advertised });
    }
    if let Some(name) = advertised.keys().next() {
        return Err(format!("advertised listener {name} names no listener"));
    }
    Ok(out)
}

/// A bound listener: its name, protocol and the address clients that connect to it are given.
#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub protocol: SecurityProtocol,
    pub advertised: (String, i32),
}

impl Listener {
    /// A listener for a spec bound at `bound`.
    pub fn new(spec: &ListenerSpec, bound: std::net::SocketAddr) -> Arc<Listener> {
        let advertised = spec.advertised.clone().unwrap_or_else(|| bound.to_string());
        Arc::new(Listener { name: spec.name.clone(), protocol: spec.protocol, advertised: crate::broker::split_host_port(&advertised) })
    }

    /// `NAME://host:port` as clients are told.
    pub fn advertised_url(&self) -> String {
        let (h, p) = &self.advertised;
        if h.contains(':') {
            format!("{}://[{h}]:{p}", self.name)
        } else {
            format!("{}://{h}:{p}", self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listeners: &[&str], advertised: &[&str], map: &[(&str, &str)]) -> Settings {
        Settings {
            listeners: listeners.iter().map(|s| s.to_string()).collect(),
            advertised_listeners: advertised.iter().map(|s| s.to_string()).collect(),
            listener_security_protocol_map: map.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Settings::default()
        }
    }

    #[test]
    fn names_map_to_protocols_and_advertised_addresses() {
        let s = settings(
            &["INTERNAL://0.0.0.0:9093", "sasl_ssl://127.0.0.1:9094", "EXTERNAL://:9092"],
            &["INTERNAL://floe:9093", "EXTERNAL://localhost:9092"],
            &[("INTERNAL", "SASL_PLAINTEXT"), ("external", "SSL")],
        );
        let l = specs(&s).expect("valid");
        let got: Vec<_> = l.iter().map(|l| (l.name.as_str(), l.protocol, l.bind.as_str(), l.advertised.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                ("INTERNAL", SecurityProtocol::SaslPlaintext, "0.0.0.0:9093", Some("floe:9093")),
                ("SASL_SSL", SecurityProtocol::SaslSsl, "127.0.0.1:9094", None),
                ("EXTERNAL", SecurityProtocol::Ssl, ":9092", Some("localhost:9092")),
            ]
        );
    }

    #[test]
    fn the_single_listener_flags_still_work() {
        let s = Settings { kafka_listen: "127.0.0.1:19092".into(), advertised_listener: Some("broker:9092".into()), ..Settings::default() };
        let l = specs(&s).expect("valid");
        assert_eq!((l[0].name.as_str(), l[0].protocol, l[0].advertised.as_deref()), ("PLAINTEXT", SecurityProtocol::Plaintext, Some("broker:9092")));
    }

    #[test]
    fn mistakes_are_named() {
        for (s, want) in [
            (settings(&["INTERNAL://127.0.0.1:9093"], &[], &[]), "no security protocol"),
            (settings(&["PLAINTEXT://127.0.0.1"], &[], &[]), "no port"),
            (settings(&["127.0.0.1:9092"], &[], &[]), "NAME://host:port"),
            (settings(&["PLAINTEXT://127.0.0.1:1", "PLAINTEXT://127.0.0.1:2"], &[], &[]), "twice"),
            (settings(&["PLAINTEXT://127.0.0.1:1"], &["SSL://x:1"], &[]), "names no listener"),
            (settings(&["X://127.0.0.1:1"], &[], &[("X", "TLS")]), "not a security protocol"),
            (settings(&[], &["SSL://x:1"], &[]), "needs listeners"),
        ] {
            let e = specs(&s).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
    }
}
