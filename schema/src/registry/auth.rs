//! Who may use the registry: an injected [`Authenticator`] checks each request's `Authorization` header (HTTP Basic, as confluent-kafka's `basic.auth.user.info` sends it, or Bearer), and writes need write access.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What an authenticated caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Look schemas up, list subjects, check compatibility.
    Read,
    /// Also register, delete and change compatibility.
    ReadWrite,
}

/// Checks credentials (the broker implements it with its users and token keys).
pub trait Authenticator: Send + Sync {
    /// The caller's principal and access for an `Authorization` header value, or `None` when
    /// the credentials are wrong (or of a kind not accepted).
    fn authenticate(&self, authorization: &str) -> Option<(String, Access)>;
}

fn refuse(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({"error_code": code, "message": message}).to_string();
    let mut r = (status, [(header::CONTENT_TYPE, super::server::CONTENT_TYPE)], body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"floe-schema-registry\""));
    }
    r
}

/// Whether a request changes the registry (lookups and compatibility checks are POSTs that do not).
fn writes(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST if path.starts_with("/compatibility/") => false,
        // POST /subjects/{subject} looks a schema up; POST /subjects/{subject}/versions registers.
        Method::POST => !(path.starts_with("/subjects/") && path.matches('/').count() == 2),
        _ => true,
    }
}

/// The middleware: 401 without valid credentials, 403 for a write without write access.
pub async fn layer(State(auth): State<Arc<dyn Authenticator>>, req: Request, next: Next) -> Response {
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some((principal, access)) = (!given.is_empty()).then(|| auth.authenticate(given)).flatten() else {
        return refuse(StatusCode::UNAUTHORIZED, 40101, "Unauthorized: give valid credentials (HTTP Basic or a Bearer token)");
    };
    if access == Access::Read && writes(req.method(), req.uri().path()) {
        tracing::info!(principal, method = %req.method(), path = req.uri().path(), "schema registry write refused: read-only access");
        return refuse(StatusCode::FORBIDDEN, 40301, "Forbidden: this principal may only read the registry");
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_compatibility_checks_are_reads() {
        assert!(!writes(&Method::POST, "/subjects/orders-value"));
        assert!(!writes(&Method::POST, "/compatibility/subjects/orders-value/versions/latest"));
        assert!(writes(&Method::POST, "/subjects/orders-value/versions"));
        assert!(writes(&Method::DELETE, "/subjects/orders-value"));
        assert!(writes(&Method::PUT, "/config"));
        assert!(!writes(&Method::GET, "/schemas/ids/1"));
    }
}
