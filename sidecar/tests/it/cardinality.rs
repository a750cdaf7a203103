//! A flood of random paths leaves the number of series and the memory flat.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;

use crate::stub::Stub;
use crate::support::client;

const FLOOD: usize = 100_000;
const WORKERS: usize = 16;

fn series_count(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter(|l| l.starts_with("http_") || l.starts_with("sidecar_"))
        .count()
}

/// A deterministic pseudo-random sequence (xorshift), so a failure can be replayed.
fn random_path(state: &mut u64) -> String {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    match *state % 3 {
        0 => format!("/items/{:x}", *state),
        1 => format!("/{:x}/{:x}", *state, state.rotate_left(17)),
        _ => format!("/flood/{:x}?q={:x}", *state >> 8, *state),
    }
}

async fn hammer(base: Arc<String>, count: usize, seed: u64) {
    let client = client::<Empty<Bytes>>();
    let mut state = seed | 1;
    for _ in 0..count {
        let uri = format!("{base}{}", random_path(&mut state));
        let response = client
            .request(Request::get(uri).body(Empty::new()).unwrap())
            .await
            .unwrap();
        response.into_body().collect().await.unwrap();
    }
}

async fn flood(base: &Arc<String>, total: usize, round: u64) {
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        set.spawn(hammer(
            base.clone(),
            total / WORKERS,
            round * 1000 + worker as u64 + 1,
        ));
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// Resident and peak memory of process `pid`, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_path_flood_leaves_series_and_memory_flat() {
    // The real binary, so its memory is measured alone.
    let stub = Stub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(&config, "[[routes]]\ntemplate = \"/items/{id}\"\n").unwrap();
    let (port, admin_port) = (testkit::free_port(), testkit::free_port());
    let mut process = testkit::Process::spawn(
        env!("CARGO_BIN_EXE_sidecar"),
        &[],
        [
            ("SIDECAR_LISTEN", format!("127.0.0.1:{port}")),
            ("SIDECAR_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}")),
            ("SIDECAR_UPSTREAM", stub.url()),
            ("SIDECAR_CONFIG", config.display().to_string()),
            ("RUST_LOG", "warn".into()),
        ],
    );
    let metrics = format!("http://127.0.0.1:{admin_port}/metrics");
    process
        .wait_ready(&metrics, std::time::Duration::from_secs(20))
        .await
        .unwrap();
    let base = Arc::new(format!("http://127.0.0.1:{port}"));

    // Warm up: every series that will ever exist appears in the first few requests.
    flood(&base, 2_000, 0).await;
    let before = testkit::http::get(&metrics).await.unwrap().text();
    let (rss_before, _) = memory_kib(process.id());

    flood(&base, FLOOD, 1).await;

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        let text = testkit::http::get(&metrics).await.unwrap().text();
        let scrape = testkit::Scrape::parse(&text).unwrap();
        if scrape.sum("http_requests_total", &[]) == (2_000 + FLOOD) as f64 {
            break scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every request was recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let after_text = testkit::http::get(&metrics).await.unwrap().text();
    assert_eq!(
        series_count(&after_text),
        series_count(&before),
        "series count changed:\n{after_text}"
    );
    let handlers: std::collections::BTreeSet<&str> = after
        .series("http_requests_total")
        .iter()
        .map(|s| s.labels["handler"].as_str())
        .collect();
    assert_eq!(
        handlers.into_iter().collect::<Vec<_>>(),
        ["/items/{id}", "none"]
    );

    // Generous bound: a per-path leak over 100 000 distinct paths would show as tens of MiB.
    let (rss_after, peak) = memory_kib(process.id());
    let grown = rss_after.saturating_sub(rss_before);
    eprintln!(
        "sidecar RSS {rss_before} KiB -> {rss_after} KiB (peak {peak} KiB) over {FLOOD} random paths"
    );
    assert!(
        grown < 16 * 1024,
        "sidecar RSS grew by {grown} KiB over {FLOOD} requests"
    );
}
