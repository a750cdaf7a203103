//! Service plugins and shared queues through the real sidecar: `plugins/queue-tally` (built
//! with the public SDK) runs as a filter on every worker enqueueing each request's path, and
//! as a singleton service (`kind = "service"`, root context only) that drains the queue and
//! publishes the count as a gauge on its tick; restarted after a fault like any plugin; and
//! the queue's bound, with drops counted.

use crate::scripted::{echo_upstream, get};
use crate::sidecar::{Sidecar, faults};

fn toml(service_config: &str, extra: &str) -> String {
    format!(
        r#"
[[plugins]]
name = "tally-filter"
path = "queue-tally.wasm"
configuration = "filter tally"

[[plugins]]
name = "tally"
kind = "service"
path = "queue-tally.wasm"
configuration = "{service_config}"
{extra}
"#
    )
}

fn gauge(scrape: &testkit::scrape::Scrape) -> f64 {
    scrape.value("tally_events", &[]).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_singleton_counts_what_filters_enqueue_and_survives_a_fault() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, &toml("service", "")).await;

    // Ticks run with no traffic at all: the gauge is published at 0.
    sidecar.scrape_until(|s| gauge(s) == 0.0).await;

    // 12 requests from 4 clients at once: the proxy's workers all enqueue into one queue.
    let clients = (0..4).map(|c| {
        let url = sidecar.url(&format!("/client/{c}"));
        tokio::spawn(async move {
            for _ in 0..3 {
                assert_eq!(get(&url, &[]).await.0, 200);
            }
        })
    });
    for client in futures_util::future::join_all(clients).await {
        client.unwrap();
    }
    let scrape = sidecar.scrape_until(|s| gauge(s) == 12.0).await;
    // The service is never attached to requests.
    assert_eq!(
        scrape.value(
            "sidecar_plugin_callbacks_total",
            &[
                ("plugin", "tally"),
                ("callback", "proxy_on_request_headers")
            ]
        ),
        Some(0.0)
    );
    assert!(
        scrape
            .value(
                "sidecar_plugin_callbacks_total",
                &[("plugin", "tally"), ("callback", "proxy_on_queue_ready")]
            )
            .unwrap()
            >= 1.0
    );

    // An item that makes the service panic: the instance is replaced, re-registers the queue
    // (same id, the filters keep theirs) and counts again from its own zero.
    assert_eq!(get(&sidecar.url("/x"), &[("x-tally", "trap")]).await.0, 200);
    sidecar
        .scrape_until(|s| {
            s.value(
                "sidecar_plugin_faults_total",
                &[("plugin", "tally"), ("kind", "trap")],
            ) == Some(1.0)
        })
        .await;
    for _ in 0..3 {
        assert_eq!(get(&sidecar.url("/after"), &[]).await.0, 200);
    }
    sidecar.scrape_until(|s| gauge(s) == 3.0).await;
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.value("sidecar_plugin_queue_drops_total", &[("plugin", "tally")]),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_what_does_not_fit() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, &toml("service-hold", "queue_capacity = 4")).await;
    for _ in 0..10 {
        assert_eq!(get(&sidecar.url("/items"), &[]).await.0, 200);
    }
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.value("sidecar_plugin_queue_drops_total", &[("plugin", "tally")]),
        Some(6.0)
    );
    assert_eq!(
        faults(&scrape, "tally") + faults(&scrape, "tally-filter"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_worker_service_starts_every_instance_without_traffic() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(
        upstream.addr,
        &toml("service", "singleton = false\ninstances = 3"),
    )
    .await;
    // Three root contexts configured and ticking, before any request.
    let configured = [("plugin", "tally"), ("callback", "proxy_on_configure")];
    let ticks = [("plugin", "tally"), ("callback", "proxy_on_tick")];
    let scrape = sidecar
        .scrape_until(|s| s.value("sidecar_plugin_callbacks_total", &ticks) >= Some(6.0))
        .await;
    assert_eq!(
        scrape.value("sidecar_plugin_callbacks_total", &configured),
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_service_stops_its_ticks() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, &toml("service", "")).await;
    let ticks = [("plugin", "tally"), ("callback", "proxy_on_tick")];
    sidecar
        .scrape_until(|s| s.value("sidecar_plugin_callbacks_total", &ticks) >= Some(3.0))
        .await;

    // Only the filter is left.
    let filter_only = toml("service", "");
    let filter_only = &filter_only[..filter_only.find("\n[[plugins]]\nname = \"tally\"").unwrap()];
    sidecar.reload(filter_only).await;
    let tick_count =
        |s: &testkit::scrape::Scrape| s.value("sidecar_plugin_callbacks_total", &ticks);
    // A tick already under way may still land; after that, none (the period is 20 ms).
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let before = tick_count(&sidecar.scrape().await);
    assert!(before >= Some(3.0), "{before:?}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(tick_count(&sidecar.scrape().await), before);
}
