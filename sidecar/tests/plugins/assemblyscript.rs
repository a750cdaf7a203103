//! A plugin in a second language: `plugins/as-status`, written in AssemblyScript with
//! `@solo-io/proxy-runtime` 0.1.8 and built by `plugins/build`, in the real sidecar next to a
//! Rust plugin. The runtime's known trap on an empty plugin configuration is the host's own
//! test (`wasm-host/tests/host/assemblyscript.rs`).

use crate::scripted::{echo_upstream, get};
use crate::sidecar::{Sidecar, dist};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assemblyscript_plugin_counts_status_classes_next_to_a_rust_plugin() {
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["as-status", "fault-drill"] {
        std::fs::copy(dist(name), dir.path().join(format!("{name}.wasm"))).unwrap();
    }
    let toml = r#"
[[plugins]]
name = "as-status"
path = "as-status.wasm"
configuration = "tag=tagged"

[[plugins]]
name = "drill"
path = "fault-drill.wasm"
"#;
    let sidecar = Sidecar::start(upstream.addr, dir.path(), toml).await;
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
