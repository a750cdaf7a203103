//! The RED family after known traffic: exact series, labels and values.

use hyper::{Method, Request};

use crate::stub::Stub;
use crate::support::{Sidecar, full, send, total};

const ROUTES: &str = "[[routes]]\ntemplate = \"/items\"\n[[routes]]\ntemplate = \"/items/{id}\"\n";

#[tokio::test]
async fn known_traffic_gives_exact_red_series() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), ROUTES).await;

    let mut item_bytes = 0usize;
    for id in 1..=3 {
        let r = testkit::http::get(&sidecar.url(&format!("/items/{id}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        item_bytes += r.body.len();
    }
    let posted = send(
        Request::post(sidecar.url("/items"))
            .body(full("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(posted.status, 200);
    let missing = testkit::http::get(&sidecar.url("/status/404"))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let brewed = send(
        Request::builder()
            .method(Method::from_bytes(b"BREW").unwrap())
            .uri(sidecar.url("/items/9"))
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(brewed.status, 200);

    let s = sidecar
        .scrape_until("6 requests recorded", |s| {
            total(s, "http_requests_total") == 6.0
        })
        .await;
    let get_item = [("handler", "/items/{id}"), ("method", "GET")];
    assert_eq!(
        s.value(
            "http_requests_total",
            &[get_item[0], get_item[1], ("status", "2xx")]
        ),
        Some(3.0)
    );
    assert_eq!(
        s.value(
            "http_requests_total",
            &[("handler", "/items"), ("method", "POST"), ("status", "2xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "http_requests_total",
            &[("handler", "none"), ("method", "GET"), ("status", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "http_requests_total",
            &[
                ("handler", "/items/{id}"),
                ("method", "_OTHER"),
                ("status", "2xx")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(s.series("http_requests_total").len(), 4);
    for sample in s.series("http_requests_total") {
        let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["handler", "method", "status"]);
    }

    // Per-route histogram: the contract's buckets, `le` printed the Python way.
    assert_eq!(
        s.value("http_request_duration_seconds_count", &get_item),
        Some(3.0)
    );
    assert_eq!(
        s.value(
            "http_request_duration_seconds_bucket",
            &[get_item[0], get_item[1], ("le", "+Inf")]
        ),
        Some(3.0)
    );
    let les: Vec<String> = s
        .series("http_request_duration_seconds_bucket")
        .into_iter()
        .filter(|x| x.labels["handler"] == "/items/{id}" && x.labels["method"] == "GET")
        .map(|x| x.labels["le"].clone())
        .collect();
    assert_eq!(
        les,
        [
            "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5",
            "5.0", "7.5", "10.0", "+Inf"
        ]
    );
    assert!(
        s.value("http_request_duration_seconds_sum", &get_item)
            .unwrap()
            > 0.0
    );

    // The unlabelled high-resolution histogram: 21 bounds + Inf, every request.
    assert_eq!(
        s.series("http_request_duration_highr_seconds_bucket").len(),
        22
    );
    assert_eq!(
        s.value("http_request_duration_highr_seconds_count", &[]),
        Some(6.0)
    );
    assert_eq!(
        s.value(
            "http_request_duration_highr_seconds_bucket",
            &[("le", "60.0")]
        ),
        Some(6.0)
    );

    // Nothing in flight any more; the gauge has no labels by default.
    assert_eq!(s.value("http_requests_inprogress", &[]), Some(0.0));
    assert_eq!(s.series("http_requests_inprogress")[0].labels.len(), 0);

    // Body sizes actually transferred.
    assert_eq!(
        s.value("http_request_size_bytes_sum", &[("handler", "/items")]),
        Some(5.0)
    );
    assert_eq!(
        s.value("http_request_size_bytes_count", &[("handler", "/items")]),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "http_request_size_bytes_count",
            &[("handler", "/items/{id}")]
        ),
        Some(4.0)
    );
    let id_bytes = s
        .value(
            "http_response_size_bytes_sum",
            &[("handler", "/items/{id}")],
        )
        .unwrap();
    assert_eq!(id_bytes as usize, item_bytes + brewed.body.len());

    // Own metrics.
    assert_eq!(
        s.value(
            "sidecar_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);
    assert!(
        s.has_family("process_resident_memory_bytes") || s.has_family("process_cpu_seconds"),
        "{:?}",
        s.families
    );
}

#[tokio::test]
async fn raw_status_mode_keeps_the_code() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[metrics]\nstatus = \"raw\"\n").await;
    testkit::http::get(&sidecar.url("/status/201"))
        .await
        .unwrap();
    testkit::http::get(&sidecar.url("/status/503"))
        .await
        .unwrap();
    let s = sidecar
        .scrape_until("2 requests", |s| total(s, "http_requests_total") == 2.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("status", "201")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("http_requests_total", &[("status", "503")]),
        Some(1.0)
    );
}

#[tokio::test]
async fn upstream_500_is_counted_as_5xx_but_not_as_a_sidecar_error() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let r = testkit::http::get(&sidecar.url("/status/500"))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert!(r.headers.get("x-sidecar-error").is_none());
    let s = sidecar
        .scrape_until("1 request", |s| total(s, "http_requests_total") == 1.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("status", "5xx")]),
        Some(1.0)
    );
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);
}

#[tokio::test]
async fn inprogress_counts_requests_in_flight_and_can_carry_labels() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(
        &stub.url(),
        &format!("{ROUTES}[metrics]\ninprogress_labels = true\n"),
    )
    .await;
    let slow_url = sidecar.url("/slow/400");
    let pending = tokio::spawn(async move { testkit::http::get(&slow_url).await.unwrap() });
    sidecar
        .scrape_until("one request in flight", |s| {
            s.value(
                "http_requests_inprogress",
                &[("handler", "none"), ("method", "GET")],
            ) == Some(1.0)
        })
        .await;
    assert_eq!(pending.await.unwrap().status, 200);
    sidecar
        .scrape_until("no request in flight", |s| {
            s.value(
                "http_requests_inprogress",
                &[("handler", "none"), ("method", "GET")],
            ) == Some(0.0)
        })
        .await;
}

#[tokio::test]
async fn trailing_slash_variant_takes_the_template() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), ROUTES).await;
    testkit::http::get(&sidecar.url("/items/")).await.unwrap();
    let s = sidecar
        .scrape_until("1 request", |s| total(s, "http_requests_total") == 1.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("handler", "/items")]),
        Some(1.0)
    );
}
