//! `floe table-topic status`: each Table Topic's status from a node's admin listener, as a human
//! table or JSON, optionally waiting until a table has caught up with its topic.

use std::time::Duration;

use floe_table_topic::Status;

/// How long one request to the admin listener may take.
const REQUEST_TIMEOUT_MS: u64 = 5_000;

/// A client for the admin listener, each request bounded by a timeout.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().timeout(Duration::from_millis(REQUEST_TIMEOUT_MS)).build()?)
}

/// Statuses from the admin listener at `admin` (all, or `topic`'s).
pub async fn fetch(client: &reqwest::Client, admin: &str, topic: Option<&str>) -> anyhow::Result<Vec<Status>> {
    fetch_or_starting(client, admin, topic).await?.ok_or_else(|| anyhow::anyhow!("{}'s table is starting", topic.unwrap_or("the topic")))
}

/// As [`fetch`]; `None` while the topic's table is enabled but not started yet (503).
async fn fetch_or_starting(client: &reqwest::Client, admin: &str, topic: Option<&str>) -> anyhow::Result<Option<Vec<Status>>> {
    let base = admin.trim_end_matches('/');
    let url = match topic {
        Some(t) => format!("{base}/v1/table-topics/{t}"),
        None => format!("{base}/v1/table-topics"),
    };
    let resp = client.get(&url).send().await.map_err(|e| anyhow::anyhow!("cannot reach the admin listener at {base}: {e}"))?;
    let code = resp.status();
    let body = resp.text().await?;
    if code == reqwest::StatusCode::SERVICE_UNAVAILABLE && topic.is_some() {
        return Ok(None);
    }
    if !code.is_success() {
        anyhow::bail!("{}", body.trim());
    }
    Ok(Some(match topic {
        Some(_) => vec![serde_json::from_str(&body)?],
        None => serde_json::from_str(&body)?,
    }))
}

fn state(s: &Status) -> &'static str {
    if s.paused.is_some() {
        "paused"
    } else if s.last_error.is_some() {
        "retrying"
    } else {
        "running"
    }
}

fn ago(now_ms: i64, at_ms: i64) -> String {
    if at_ms == 0 {
        return "never".into();
    }
    format!("{:.1}s ago", (now_ms - at_ms).max(0) as f64 / 1000.0)
}

/// The statuses as a table, one row per topic, with the reason under a paused or failing one.
pub fn render(statuses: &[Status], now_ms: i64) -> String {
    let header = ["TOPIC", "TABLE", "STATE", "LAG", "FRESHNESS", "COMMITS", "RECORDS", "INVALID", "LAST COMMIT", "OFFSETS"];
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            vec![
                s.topic.clone(),
                s.table.clone(),
                state(s).into(),
                s.lag_records.to_string(),
                format!("{:.1}s", s.freshness_seconds(now_ms)),
                s.commits.to_string(),
                s.committed_records.to_string(),
                s.invalid_records.to_string(),
                ago(now_ms, s.last_commit_ms),
                s.offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let mut lines = super::render::lines(&header, &rows).into_iter();
    let mut out = lines.next().unwrap_or_default() + "\n";
    for (l, s) in lines.zip(statuses) {
        out += &(l + "\n");
        if let Some(why) = s.paused.as_ref().or(s.last_error.as_ref()) {
            out += &format!("  └ {why}\n");
        }
    }
    out
}

/// Polls until `topic`'s table has committed everything its log held (lag 0 after at least one
/// commit), printing progress to stderr; an error after `timeout`.
pub async fn wait(client: &reqwest::Client, admin: &str, topic: &str, timeout: Duration) -> anyhow::Result<Status> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let Some(found) = fetch_or_starting(client, admin, Some(topic)).await? else {
            // Enabled by its config, not started yet: it starts within a reconcile interval.
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("{topic}'s table did not start within {}s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let s = found.into_iter().next().ok_or_else(|| anyhow::anyhow!("{topic}: no status"))?;
        if s.lag_records == 0 && s.commits > 0 && s.paused.is_none() {
            return Ok(s);
        }
        if let Some(why) = &s.paused {
            anyhow::bail!("{topic} is paused: {why}");
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{topic}: still {} records behind after {}s", s.lag_records, timeout.as_secs());
        }
        eprintln!("{topic}: {} records committed, {} to go", s.committed_records, s.lag_records);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_table_shows_its_reason_and_columns_line_up() {
        let running = Status {
            topic: "orders".into(),
            table: "default.orders".into(),
            commits: 3,
            committed_records: 1200,
            last_commit_ms: 9_000,
            offsets: [(0, 600), (1, 600)].into(),
            ..Default::default()
        };
        let paused = Status {
            topic: "t".into(),
            table: "default.t".into(),
            lag_records: 5,
            caught_up_ms: 4_000,
            paused: Some("paused at partition 0 offset 7: not JSON".into()),
            ..Default::default()
        };
        let out = render(&[running, paused], 10_000);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].starts_with("orders  default.orders  running  0"), "{out}");
        assert!(lines[1].ends_with("1.0s ago     0:600,1:600"), "{out}");
        assert!(lines[2].contains("paused") && lines[2].contains("6.0s"), "6 s behind since it last caught up: {out}");
        assert_eq!(lines[3], "  └ paused at partition 0 offset 7: not JSON");
        let col = lines[0].find("LAG").expect("LAG");
        assert_eq!(&lines[2][col..col + 1], "5", "{out}");
    }
}
