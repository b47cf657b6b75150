//! A connection's authentication: SaslHandshake and SaslAuthenticate (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER), session lifetimes and re-authentication (KIP-152, KIP-368).
//!
//! After a v1 handshake the exchange's tokens travel in SaslAuthenticate requests; after a v0
//! one (older clients) as bare size-prefixed frames, and a failure simply closes the connection.
//!
//! On a SASL listener nothing but ApiVersions and the SASL exchange is served before the client
//! has authenticated, and requests are capped at [`UNAUTHENTICATED_REQUEST_BYTES_MAX`] until
//! then. A failed exchange is answered SASL_AUTHENTICATION_FAILED (never saying why) and closes
//! the connection; the reason is logged.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};

use super::listeners::Listener;
use super::scram::{ScramMechanism, ScramServer};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::handlers::sb;

/// Largest request before a SASL client has authenticated (Kafka's `sasl.server.max.receive.size`).
pub const UNAUTHENTICATED_REQUEST_BYTES_MAX: u64 = 512 << 10;
/// The principal of a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A SASL mechanism Floe serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(ScramMechanism),
    OAuthBearer,
}

impl Mechanism {
    /// From its SASL name.
    pub fn parse(name: &str) -> Option<Mechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(Mechanism::Plain);
        }
        if name.eq_ignore_ascii_case("OAUTHBEARER") {
            return Some(Mechanism::OAuthBearer);
        }
        ScramMechanism::from_name(name).map(Mechanism::Scram)
    }

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Scram(m) => m.name(),
        }
    }
}

enum Exchange {
    /// No handshake yet (or the last exchange completed).
    Idle,
    /// A handshake chose the mechanism.
    Chosen(Mechanism),
    /// SCRAM: the server's first message was sent.
    ScramSent(Box<ScramServer>),
}

/// What the connection does with a request.
pub enum Step {
    /// Serve it.
    Dispatch(RequestKind),
    /// Answer with this, and go on.
    Reply(ResponseKind),
    /// Answer with this, then close (with the reason to log).
    ReplyAndClose(ResponseKind, String),
    /// Close without answering.
    Close(String),
}

/// A connection's authentication state.
pub struct Session {
    pub listener: Arc<Listener>,
    principal: Option<Arc<str>>,
    exchange: Exchange,
    /// When the SASL session ends (KIP-368), if it does.
    expires_ms: Option<i64>,
    /// A v0 SaslHandshake: the exchange's tokens come as bare frames, not SaslAuthenticate.
    raw_tokens: bool,
}

impl Session {
    /// A new connection on `listener`; `tls_principal` is a client certificate's principal.
    pub fn new(listener: Arc<Listener>, tls_principal: Option<String>) -> Session {
        let principal = if listener.protocol.sasl() { None } else { Some(Arc::from(tls_principal.as_deref().unwrap_or(ANONYMOUS))) };
        Session { listener, principal, exchange: Exchange::Idle, expires_ms: None, raw_tokens: false }
    }

    /// The principal requests are served for (`User:ANONYMOUS` until authenticated).
    pub fn principal(&self) -> Arc<str> {
        self.principal.clone().unwrap_or_else(|| Arc::from(ANONYMOUS))
    }

    /// The largest request this connection may send now.
    pub fn request_bytes_max(&self, configured: u64) -> u64 {
        if self.principal.is_none() {
            configured.min(UNAUTHENTICATED_REQUEST_BYTES_MAX)
        } else {
            configured
        }
    }

    /// Decides what happens to a request: the SASL exchange is answered here; anything else is
    /// served only once the connection has authenticated and while its session lasts.
    pub fn step(&mut self, b: &Broker, api: ApiKey, version: i16, req: RequestKind, now_ms: i64) -> Step {
        match req {
            RequestKind::SaslHandshake(r) => self.handshake(b, r, version),
            RequestKind::SaslAuthenticate(r) => self.authenticate(b, r, now_ms),
            RequestKind::ApiVersions(_) => Step::Dispatch(req),
            _ if self.principal.is_none() => Step::Close(format!("{api:?} before SASL authentication")),
            _ if self.expires_ms.is_some_and(|t| now_ms >= t) => Step::Close(format!("{api:?} after the SASL session expired without re-authentication")),
            _ => Step::Dispatch(req),
        }
    }

    fn handshake(&mut self, b: &Broker, r: SaslHandshakeRequest, version: i16) -> Step {
        let enabled = enabled(b);
        let mut resp = SaslHandshakeResponse::default();
        resp.mechanisms = enabled.iter().map(|m| sb(m.name())).collect();
        if !self.listener.protocol.sasl() {
            resp.error_code = BrokerError::IllegalSaslState(String::new()).code();
            return Step::Reply(ResponseKind::SaslHandshake(resp));
        }
        if !matches!(self.exchange, Exchange::Idle) {
            resp.error_code = BrokerError::IllegalSaslState(String::new()).code();
            return Step::ReplyAndClose(ResponseKind::SaslHandshake(resp), "a second SaslHandshake within one exchange".into());
        }
        match Mechanism::parse(&r.mechanism).filter(|m| enabled.contains(m)) {
            Some(m) => {
                self.exchange = Exchange::Chosen(m);
                self.raw_tokens = version == 0;
                Step::Reply(ResponseKind::SaslHandshake(resp))
            }
            None => {
                resp.error_code = BrokerError::UnsupportedSaslMechanism(String::new()).code();
                Step::ReplyAndClose(ResponseKind::SaslHandshake(resp), format!("SASL mechanism {:?} is not enabled", r.mechanism.as_str()))
            }
        }
    }

    fn authenticate(&mut self, b: &Broker, r: SaslAuthenticateRequest, now_ms: i64) -> Step {
        let failed = |e: BrokerError, reason: String| {
            let resp = SaslAuthenticateResponse::default().with_error_code(e.code()).with_error_message(Some(sb(&e.to_string())));
            Step::ReplyAndClose(ResponseKind::SaslAuthenticate(resp), reason)
        };
        match self.exchange(b, &r.auth_bytes, now_ms) {
            Exchanged::Continue(bytes) => Step::Reply(ResponseKind::SaslAuthenticate(SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()))),
            Exchanged::Done(bytes, lifetime_ms) => {
                let resp = SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()).with_session_lifetime_ms(lifetime_ms);
                Step::Reply(ResponseKind::SaslAuthenticate(resp))
            }
            Exchanged::Illegal(reason) => failed(BrokerError::IllegalSaslState(reason.clone()), reason),
            Exchanged::Failed(reason) => failed(BrokerError::SaslAuthenticationFailed, format!("SASL authentication failed: {reason}")),
        }
    }

    /// Whether the next frame is a bare SASL token (after a v0 SaslHandshake).
    pub fn expects_raw_token(&self) -> bool {
        self.raw_tokens && !matches!(self.exchange, Exchange::Idle)
    }

    /// A bare SASL token (SaslHandshake v0): the reply token, or why the connection closes.
    pub fn raw_token(&mut self, b: &Broker, token: &[u8], now_ms: i64) -> Result<Vec<u8>, String> {
        match self.exchange(b, token, now_ms) {
            Exchanged::Continue(bytes) | Exchanged::Done(bytes, _) => Ok(bytes),
            Exchanged::Illegal(reason) => Err(reason),
            Exchanged::Failed(reason) => Err(format!("SASL authentication failed: {reason}")),
        }
    }

    /// One step of the exchange the handshake chose.
    fn exchange(&mut self, b: &Broker, bytes: &[u8], now_ms: i64) -> Exchanged {
        let outcome = match std::mem::replace(&mut self.exchange, Exchange::Idle) {
            Exchange::Idle => return Exchanged::Illegal("SaslAuthenticate without a SaslHandshake".into()),
            Exchange::Chosen(Mechanism::Plain) => plain(b, bytes).map(|user| (user, Vec::new(), None)),
            Exchange::Chosen(Mechanism::OAuthBearer) => match &b.oauth {
                Some(v) => v.authenticate(bytes, now_ms).map(|g| (g.subject, Vec::new(), Some(g.expires_ms))),
                None => Err("OAUTHBEARER is not configured".into()),
            },
            Exchange::Chosen(Mechanism::Scram(m)) => match ScramServer::start(m, bytes, |u| b.users.get(u, m), b.users.decoy_key()) {
                Ok((server, first)) => {
                    self.exchange = Exchange::ScramSent(Box::new(server));
                    return Exchanged::Continue(first);
                }
                Err(e) => Err(e.0),
            },
            Exchange::ScramSent(server) => server.finish(bytes).map(|(u, last)| (u, last, None)).map_err(|e| e.0),
        };
        let metrics = &b.security_metrics;
        let (user, last, token_expires_ms) = match outcome {
            Ok(done) => done,
            Err(reason) => {
                metrics.authentication_failures.fetch_add(1, Relaxed);
                return Exchanged::Failed(reason);
            }
        };
        let principal: Arc<str> = Arc::from(format!("User:{user}"));
        if let Some(before) = self.principal.as_ref().filter(|before| **before != principal) {
            metrics.authentication_failures.fetch_add(1, Relaxed);
            return Exchanged::Failed(format!("re-authentication as {principal} on a connection of {before}"));
        }
        metrics.authentications.fetch_add(1, Relaxed);
        // KIP-368: the session ends with connections_max_reauth_ms, or with the token, whichever is first.
        let configured = b.settings.connections_max_reauth_ms.0.min(i64::MAX as u64) as i64;
        self.expires_ms = match ((configured > 0).then(|| now_ms.saturating_add(configured)), token_expires_ms) {
            (Some(a), Some(t)) => Some(a.min(t)),
            (a, t) => a.or(t),
        };
        let lifetime_ms = self.expires_ms.map_or(0, |t| (t - now_ms).max(1));
        self.principal = Some(principal);
        Exchanged::Done(last, lifetime_ms)
    }
}

/// The outcome of one step of an exchange.
enum Exchanged {
    /// Send this token and wait for the client's next.
    Continue(Vec<u8>),
    /// Authenticated: send this last token; the session lasts this long (0: for ever).
    Done(Vec<u8>, i64),
    /// Refused; the reason is logged, the client only told it failed.
    Failed(String),
    /// Out of order.
    Illegal(String),
}

/// The enabled mechanisms that Floe serves, in the configured order (OAUTHBEARER only with a JWKS).
fn enabled(b: &Broker) -> Vec<Mechanism> {
    b.settings.sasl_enabled_mechanisms.iter().filter_map(|m| Mechanism::parse(m)).filter(|m| *m != Mechanism::OAuthBearer || b.oauth.is_some()).collect()
}

/// PLAIN (RFC 4616): `authzid NUL user NUL password`, checked against the user's SCRAM
/// credential. An unknown user costs the same work as a known one.
fn plain(b: &Broker, msg: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(msg).map_err(|_| "a PLAIN message is not UTF-8".to_string())?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("a PLAIN message is not authzid NUL user NUL password".into());
    };
    if user.is_empty() || password.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Err("an empty user or password, or an authorization id other than the user".into());
    }
    b.users.check_password(user, password).map(|()| user.to_string())
}
