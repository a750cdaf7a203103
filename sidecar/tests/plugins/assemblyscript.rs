//! A plugin in a second language: `plugins/as-status`, written in AssemblyScript with
//! `@solo-io/proxy-runtime` 0.1.8 and built by `plugins/build`, in the real sidecar next to a
//! Rust plugin, and its linear memory over thousands of requests. The runtime's known trap on an
//! empty plugin configuration is the host's own test (`wasm-host/tests/host/assemblyscript.rs`).

use crate::scripted::{echo_upstream, get};
use crate::sidecar::{Sidecar, faults};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assemblyscript_plugin_counts_status_classes_next_to_a_rust_plugin() {
    let upstream = echo_upstream().await;
    let toml = r#"
[[plugins]]
name = "as-status"
path = "as-status.wasm"
configuration = "tag=tagged"

[[plugins]]
name = "drill"
path = "fault-drill.wasm"
"#;
    let sidecar = Sidecar::start(upstream.addr, toml).await;
    for path in ["/items", "/items/1", "/items/2", "/missing", "/missing"] {
        let (status, headers, _) = get(&sidecar.url(path), &[]).await;
        let expected = if path == "/missing" { 404 } else { 200 };
        assert_eq!(status, expected, "{path}");
        assert_eq!(headers["x-as-status"], "tagged", "{path}");
    }
    let scrape = sidecar.scrape().await;
    for (class, expected) in [
        ("1xx", 0.0),
        ("2xx", 3.0),
        ("3xx", 0.0),
        ("4xx", 2.0),
        ("5xx", 0.0),
    ] {
        assert_eq!(
            scrape.value("as_responses_total", &[("class", class)]),
            Some(expected),
            "{class}"
        );
    }
    assert_eq!(scrape.value("drill_requests_seen_total", &[]), Some(5.0));
    let faults: f64 = scrape
        .series("sidecar_plugin_faults_total")
        .iter()
        .map(|s| s.value)
        .sum();
    assert_eq!(faults, 0.0);
}

/// Requests through the sidecar, `concurrency` at a time, each answered 200.
async fn send(sidecar: &Sidecar, requests: usize, concurrency: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let url = sidecar.url("/items");
        let count = requests / concurrency + usize::from(worker < requests % concurrency);
        tasks.spawn(async move {
            for _ in 0..count {
                assert_eq!(get(&url, &[]).await.0, 200);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Linear memory of as-status's one instance once `answered` responses have been counted.
async fn memory_after(sidecar: &Sidecar, answered: usize) -> f64 {
    let scrape = sidecar
        .scrape_until(|s| {
            s.value("as_responses_total", &[("class", "2xx")]) == Some(answered as f64)
        })
        .await;
    scrape
        .value("sidecar_plugin_memory_bytes", &[("plugin", "as-status")])
        .expect("as-status's memory gauge")
}

/// Runtime 0.1.8's own per-request entry points leaked each request's context (~34 bytes): its
/// `getContext` downcast holds one reference too many under AssemblyScript 0.14 (see
/// plugins/as-status/assembly/streams.ts): 6,000 requests leaked ~200 KB, three pages or more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assemblyscript_plugin_memory_stays_flat_over_thousands_of_requests() {
    const PAGE: f64 = 65536.0;
    let upstream = echo_upstream().await;
    // One instance, so the gauge is the memory of the instance that saw every request.
    let toml = r#"
[[plugins]]
name = "as-status"
path = "as-status.wasm"
configuration = "count"
instances = 1
"#;
    let sidecar = Sidecar::start(upstream.addr, toml).await;
    send(&sidecar, 300, 4).await;
    let warm = memory_after(&sidecar, 300).await;
    send(&sidecar, 6000, 4).await;
    let after = memory_after(&sidecar, 6300).await;
    assert!(
        after <= warm + PAGE,
        "as-status's linear memory grew from {warm} to {after} bytes over 6,000 requests"
    );
    assert_eq!(faults(&sidecar.scrape().await, "as-status"), 0.0);
}
