//! gRPC streams through the real sidecar: `plugins/grpc-watch` (built with the public SDK), a
//! service plugin, opens `grpc.health.v1.Health/Watch` on tonic's health service and follows
//! the status it streams: initial metadata, each message, cancellation. A method the server
//! does not have ends with trailing metadata and the status; a cluster that is down with
//! UNAVAILABLE.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use testkit::scrape::Scrape;
use tonic_health::ServingStatus;

use crate::grpc_callouts::health_service;
use crate::scripted::{closed_port, echo_upstream};
use crate::sidecar::{Sidecar, callouts, dist, faults};

fn toml(dir: &Path, health: SocketAddr, config: &str) -> String {
    std::fs::copy(dist("grpc-watch"), dir.join("grpc-watch.wasm")).unwrap();
    format!(
        r#"
[[clusters]]
name = "health"
address = "{health}"
connect_timeout_ms = 200

[[plugins]]
name = "grpc-watch"
kind = "service"
path = "grpc-watch.wasm"
configuration = "{config}"
"#
    )
}

fn value(scrape: &Scrape, name: &str) -> f64 {
    scrape.value(name, &[]).unwrap_or(0.0)
}

async fn start(
    health: SocketAddr,
    config: &str,
) -> (Sidecar, crate::scripted::Server, tempfile::TempDir) {
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar =
        Sidecar::start(upstream.addr, dir.path(), &toml(dir.path(), health, config)).await;
    (sidecar, upstream, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_follows_status_changes_until_the_plugin_cancels_it() {
    let (health, reporter) = health_service().await;
    let (sidecar, _upstream, _dir) = start(health.addr, "health Watch redside.Items 3").await;

    let scrape = sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 1.0)
        .await;
    assert_eq!(value(&scrape, "grpc_watch_status"), 1.0, "SERVING");
    assert_eq!(value(&scrape, "grpc_watch_initial_metadata"), 1.0);

    reporter
        .set_service_status("redside.Items", ServingStatus::NotServing)
        .await;
    let scrape = sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 2.0)
        .await;
    assert_eq!(value(&scrape, "grpc_watch_status"), 2.0, "NOT_SERVING");

    // The third message makes the plugin cancel the stream: nothing more arrives.
    reporter
        .set_service_status("redside.Items", ServingStatus::Serving)
        .await;
    sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 3.0)
        .await;
    reporter
        .set_service_status("redside.Items", ServingStatus::NotServing)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = sidecar.scrape().await;
    assert_eq!(value(&scrape, "grpc_watch_messages_total"), 3.0);
    assert_eq!(value(&scrape, "grpc_watch_status"), 1.0);
    assert_eq!(
        value(&scrape, "grpc_watch_closes_total"),
        0.0,
        "no close after a cancel"
    );
    assert_eq!(faults(&scrape, "grpc-watch"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_closes_with_its_trailing_status_and_a_down_cluster_with_unavailable() {
    // tonic answers an unknown method trailers-only, with grpc-status 12 UNIMPLEMENTED.
    let (health, _reporter) = health_service().await;
    let (sidecar, _upstream, _dir) = start(health.addr, "health Nope redside.Items 0").await;
    // The host counts a stream's end before the plugin's callback, but one scrape is not a
    // snapshot: wait for both.
    let scrape = sidecar
        .scrape_until(|s| {
            value(s, "grpc_watch_closes_total") == 1.0
                && callouts(s, "grpc-watch", "health", "response") == 1.0
        })
        .await;
    assert_eq!(value(&scrape, "grpc_watch_close_status"), 12.0);
    assert_eq!(value(&scrape, "grpc_watch_trailing_status"), 12.0);
    assert_eq!(value(&scrape, "grpc_watch_messages_total"), 0.0);

    let down = closed_port().await;
    let (sidecar, _upstream, _dir) = start(down, "health Watch redside.Items 0").await;
    let scrape = sidecar
        .scrape_until(|s| {
            value(s, "grpc_watch_closes_total") == 1.0
                && callouts(s, "grpc-watch", "health", "refused") == 1.0
        })
        .await;
    assert_eq!(
        value(&scrape, "grpc_watch_close_status"),
        14.0,
        "UNAVAILABLE"
    );
    assert_eq!(faults(&scrape, "grpc-watch"), 0.0);
}
