//! The REST catalog's token and credential vending, over HTTP on loopback: `/v1/config` needs the
//! token too, and credentials go only to an authenticated caller that asks for them.

use std::collections::HashMap;
use std::sync::Arc;

use floe_catalog::server::{serve, ServerConfig};
use floe_catalog::store::MemoryStore;
use floe_catalog::Catalog;
use object_store::memory::InMemory;
use serde_json::{json, Value};

async fn start(token: Option<&str>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let catalog = Arc::new(Catalog::open(Arc::new(MemoryStore::default()), Arc::new(InMemory::new()), "s3://bucket/warehouse", "warehouse").expect("catalog"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = ServerConfig {
        client_properties: HashMap::from([("s3.endpoint".to_string(), "http://127.0.0.1:9000".to_string())]),
        vended_credentials: HashMap::from([("s3.secret-access-key".to_string(), "s3cr3t".to_string())]),
        token: token.map(str::to_string),
        oauth: None,
        access: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(catalog, config, listener, async {
        let _ = stopped.await;
    }));
    (format!("http://{addr}"), stop)
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test]
async fn config_needs_the_token_and_never_carries_credentials() {
    let (base, _stop) = start(Some("t0k")).await;
    assert_eq!(get(&format!("{base}/v1/config"), &[]).await.0, 401);
    assert_eq!(get(&format!("{base}/v1/config"), &[("Authorization", "Bearer wrong")]).await.0, 401);
    assert_eq!(get(&format!("{base}/v1/config"), &[("Authorization", "Bearer t0k-and-more")]).await.0, 401);
    let (status, body) = get(&format!("{base}/v1/config"), &[("Authorization", "Bearer t0k")]).await;
    assert_eq!(status, 200);
    assert!(body.contains("s3.endpoint") && !body.contains("s3cr3t"), "{body}");
}

#[tokio::test]
async fn credentials_go_only_to_an_authenticated_caller_that_asks() {
    let auth = ("Authorization", "Bearer t0k");
    let (base, _stop) = start(Some("t0k")).await;
    let client = reqwest::Client::new();
    let ok = |r: reqwest::Response| async move { assert!(r.status().is_success(), "{}", r.status()) };
    ok(client
        .post(format!("{base}/v1/namespaces"))
        .header(auth.0, auth.1)
        .header("Content-Type", "application/json")
        .body(json!({"namespace": ["lake"]}).to_string())
        .send()
        .await
        .expect("ns"))
    .await;
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]});
    let created = client
        .post(format!("{base}/v1/namespaces/lake/tables"))
        .header(auth.0, auth.1)
        .header("Content-Type", "application/json")
        .body(json!({"name": "t", "schema": schema}).to_string())
        .send()
        .await
        .expect("create");
    assert!(!created.text().await.expect("body").contains("s3cr3t"), "not asked: not vended");
    let table = format!("{base}/v1/namespaces/lake/tables/t");
    let (_, plain) = get(&table, &[auth]).await;
    let config = |body: &str| serde_json::from_str::<Value>(body).expect("json")["config"].clone();
    assert_eq!(config(&plain).get("s3.secret-access-key"), None);
    assert_eq!(config(&plain)["s3.endpoint"], "http://127.0.0.1:9000");
    let (_, vended) = get(&table, &[auth, ("X-Iceberg-Access-Delegation", "vended-credentials")]).await;
    assert_eq!(config(&vended)["s3.secret-access-key"], "s3cr3t");
}

#[tokio::test]
async fn without_a_token_nothing_is_vended_even_when_asked() {
    let (base, _stop) = start(None).await;
    let client = reqwest::Client::new();
    client
        .post(format!("{base}/v1/namespaces"))
        .header("Content-Type", "application/json")
        .body(json!({"namespace": ["lake"]}).to_string())
        .send()
        .await
        .expect("ns");
    let schema = json!({"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": true, "type": "long"}]});
    client
        .post(format!("{base}/v1/namespaces/lake/tables"))
        .header("Content-Type", "application/json")
        .body(json!({"name": "t", "schema": schema}).to_string())
        .send()
        .await
        .expect("create");
    let (status, body) = get(&format!("{base}/v1/namespaces/lake/tables/t"), &[("X-Iceberg-Access-Delegation", "vended-credentials")]).await;
    assert_eq!(status, 200);
    assert!(!body.contains("s3cr3t"), "{body}");
}
