//! The example plugins built by `plugins/build`, in the real sidecar, in front of the real items
//! API on a real PostgreSQL: the business series after known traffic, a faulty plugin that
//! changes no response, and a reload under load that loses no request.

use std::path::Path;
use std::time::Duration;

use http::Method;

use crate::stack::{Sidecar, both_plugins, call, id_of, start_api};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugins_report_business_and_slo_series_with_exact_values() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(api.addr, dir.path(), &both_plugins(dir.path(), 60_000)).await;
    let items = sidecar.url("/items");
    let post =
        |json: &'static str, agent: &'static str| call(Method::POST, &items, agent, Some(json));

    let (status, first) = post(r#"{"nom":"cheap","prix":5}"#, "curl/8.5.0").await;
    assert_eq!(status, 201);
    assert_eq!(
        post(
            r#"{"nom":"mid","prix":10.5}"#,
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
        )
        .await
        .0,
        201
    );
    let (_, third) = post(r#"{"nom":"high","prix":75.25}"#, "wrk/4.2").await;
    assert_eq!(
        post(r#"{"nom":"lux","prix":150}"#, "Googlebot/2.1").await.0,
        201
    );
    assert_eq!(post(r#"{"nom":"","prix":3}"#, "curl/8.5.0").await.0, 422);
    let (first, third) = (id_of(&first), id_of(&third));
    let first_url = sidecar.url(&format!("/items/{first}"));
    assert_eq!(
        call(
            Method::PUT,
            &first_url,
            "curl/8.5.0",
            Some(r#"{"nom":"cheap2","prix":6}"#)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            Method::PUT,
            &sidecar.url("/items/999999"),
            "x",
            Some(r#"{"nom":"n","prix":1}"#)
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            Method::DELETE,
            &sidecar.url(&format!("/items/{third}")),
            "x",
            None
        )
        .await
        .0,
        204
    );
    let (status, list) = call(Method::GET, &items, "x", None).await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Vec<serde_json::Value>>(&list)
                .unwrap()
                .len()
        ),
        (200, 3)
    );

    let scrape = sidecar
        .scrape_until(|s| {
            s.sum("latency_slo_requests_total", &[]) >= 9.0
                && s.sum("business_item_mutations_total", &[]) >= 8.0
        })
        .await;
    for (band, count) in [
        ("0-10", 1.0),
        ("10-50", 1.0),
        ("50-100", 1.0),
        ("100+", 1.0),
    ] {
        assert_eq!(
            scrape.value("business_items_created_total", &[("price_band", band)]),
            Some(count),
            "{band}"
        );
    }
    assert_eq!(
        scrape.value("business_revenue_cents_total", &[]),
        Some(24_075.0),
        "500 + 1050 + 7525 + 15000"
    );
    assert_eq!(
        scrape.value("business_item_price_cents_count", &[]),
        Some(4.0)
    );
    assert_eq!(
        scrape.value("business_item_price_cents_sum", &[]),
        Some(24_075.0)
    );
    assert_eq!(
        scrape.value("business_item_price_cents_bucket", &[("le", "1000.0")]),
        Some(1.0),
        "buckets from the TOML"
    );
    assert_eq!(
        scrape.value("business_item_price_cents_bucket", &[("le", "10000.0")]),
        Some(3.0)
    );
    let mutations = |method: &str, outcome: &str| {
        scrape.value(
            "business_item_mutations_total",
            &[("method", method), ("outcome", outcome)],
        )
    };
    assert_eq!(mutations("POST", "success"), Some(4.0));
    assert_eq!(mutations("POST", "client_error"), Some(1.0));
    assert_eq!(mutations("PUT", "success"), Some(1.0));
    assert_eq!(mutations("PUT", "client_error"), Some(1.0));
    assert_eq!(mutations("DELETE", "success"), Some(1.0));
    assert_eq!(mutations("DELETE", "server_error"), Some(0.0));

    let agents = |agent: &str| scrape.value("client_requests_total", &[("agent", agent)]);
    assert_eq!(agents("curl"), Some(3.0));
    assert_eq!(agents("browser"), Some(1.0));
    assert_eq!(agents("load_test"), Some(1.0));
    assert_eq!(agents("bot"), Some(1.0));
    assert_eq!(agents("other"), Some(3.0));
    let slo = |route: &str, result: &str| {
        scrape.value(
            "latency_slo_requests_total",
            &[("route", route), ("result", result)],
        )
    };
    assert_eq!(
        slo("/items", "good"),
        Some(6.0),
        "five POSTs and one GET, all under a minute"
    );
    assert_eq!(slo("/items/{id}", "good"), Some(3.0));
    assert_eq!(slo("/items", "bad"), Some(0.0));
    assert_eq!(scrape.sum("sidecar_plugin_faults_total", &[]), 0.0);
    assert!(
        scrape.sum(
            "sidecar_plugin_callbacks_total",
            &[("plugin", "items-business")]
        ) > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_over_the_threshold_counts_as_bad() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    // A zero threshold: every request is slower than 0 ms.
    let sidecar = Sidecar::start(api.addr, dir.path(), &both_plugins(dir.path(), 0)).await;
    assert_eq!(
        call(Method::GET, &sidecar.url("/items"), "x", None).await.0,
        200
    );
    let scrape = sidecar
        .scrape_until(|s| s.sum("latency_slo_requests_total", &[]) >= 1.0)
        .await;
    assert_eq!(
        scrape.value(
            "latency_slo_requests_total",
            &[("route", "/items"), ("result", "bad")]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_plugin_changes_no_response() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let trap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm-host/tests/wat/trap.wat");
    let toml = format!(
        "[[plugins]]\nname = \"faulty\"\npath = {:?}\ninstances = 1\n",
        trap.display().to_string()
    );
    let sidecar = Sidecar::start(api.addr, dir.path(), &toml).await;
    let direct = |path: &str| format!("http://{}{path}", api.addr);

    let (status, created) = call(
        Method::POST,
        &sidecar.url("/items"),
        "x",
        Some(r#"{"nom":"kept","prix":1.5}"#),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = id_of(&created);
    for _ in 0..5 {
        let through = call(
            Method::GET,
            &sidecar.url(&format!("/items/{id}")),
            "x",
            None,
        )
        .await;
        let straight = call(Method::GET, &direct(&format!("/items/{id}")), "x", None).await;
        assert_eq!(through, straight);
        assert_eq!(
            call(Method::GET, &sidecar.url("/items/0"), "x", None)
                .await
                .0,
            404
        );
    }
    let scrape = sidecar.scrape().await;
    let traps = scrape.value(
        "sidecar_plugin_faults_total",
        &[("plugin", "faulty"), ("kind", "trap")],
    );
    assert!(traps.unwrap_or(0.0) >= 1.0, "{traps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_no_request() {
    let api = start_api().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(api.addr, dir.path(), &both_plugins(dir.path(), 60_000)).await;
    let url = sidecar.url("/items");
    let load = tokio::spawn(async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            let batch = (0..4).map(|_| call(Method::GET, &url, "wrk/4.2", None));
            statuses.extend(
                futures_util::future::join_all(batch)
                    .await
                    .into_iter()
                    .map(|(s, _)| s),
            );
        }
        statuses
    });
    let admin_reload = format!("http://{}/reload", sidecar.admin);
    for threshold in [1_000, 2_000] {
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&sidecar.config_path, both_plugins(dir.path(), threshold)).unwrap();
        let reply = testkit::http::post(&admin_reload, "").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let statuses = load.await.unwrap();
    assert_eq!(statuses.len(), 800);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    let scrape = sidecar
        .scrape_until(|s| {
            s.value("client_requests_total", &[("agent", "load_test")]) == Some(800.0)
        })
        .await;
    assert_eq!(
        scrape.value(
            "sidecar_plugin_reloads_total",
            &[("plugin", "client-slo"), ("result", "ok")]
        ),
        Some(3.0)
    );
    assert_eq!(
        scrape.value(
            "sidecar_plugin_reloads_total",
            &[("plugin", "items-business"), ("result", "ok")]
        ),
        Some(1.0),
        "an unchanged plugin keeps its warm instances"
    );
}
