//! `[metrics] names = "otel"`: after known traffic, the RED measurements are exposed under the
//! OpenTelemetry semantic conventions' names and labels (with exemplars), and the contract's
//! families are gone; with the default names, no `http_server_*` family appears.

use hyper::Request;
use testkit::Scrape;

use crate::stub::Stub;
use crate::support::{Sidecar, empty, full, send};
use crate::tracing::{PARENT, TRACE, settings};

const ROUTES: &str = "[[routes]]\ntemplate = \"/items\"\n[[routes]]\ntemplate = \"/items/{id}\"\n\
    [[routes]]\ntemplate = \"/status/{code}\"\n[[routes]]\ntemplate = \"/slow/{ms}\"\n";

const DURATION: &str = "http_server_request_duration_seconds";
/// The semantic conventions' advised boundaries for `http.server.request.duration`.
const OTEL_BUCKETS: [&str; 15] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0", "2.5", "5.0",
    "7.5", "10.0", "+Inf",
];
/// The contract's RED families the otel names replace.
const REPLACED: [&str; 4] = [
    "http_requests",
    "http_request_duration_seconds",
    "http_request_duration_highr_seconds",
    "http_requests_inprogress",
];

/// Three GETs of `/items/{id}` (one of them traced), a POST of `/items`, two 404s and a
/// 300 ms request: what both tests send.
async fn known_traffic(sidecar: &Sidecar) {
    for id in 1..=2 {
        let r = testkit::http::get(&sidecar.url(&format!("/items/{id}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let traced = send(
        Request::get(sidecar.url("/items/3"))
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(traced.status, 200);
    let posted = send(
        Request::post(sidecar.url("/items"))
            .body(full("hello"))
            .unwrap(),
    )
    .await;
    assert_eq!(posted.status, 200);
    for _ in 0..2 {
        let r = testkit::http::get(&sidecar.url("/status/404"))
            .await
            .unwrap();
        assert_eq!(r.status, 404);
    }
    let slow = testkit::http::get(&sidecar.url("/slow/300")).await.unwrap();
    assert_eq!(slow.status, 200);
}

fn labels<'a>(route: &'a str, method: &'a str, code: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("http_route", route),
        ("http_request_method", method),
        ("http_response_status_code", code),
    ]
}

#[tokio::test]
async fn the_otel_names_carry_the_semantic_conventions_labels_and_replace_the_red_families() {
    let stub = Stub::start().await;
    let file = format!("[metrics]\nnames = \"otel\"\n{ROUTES}");
    let sidecar = Sidecar::start_traced(&stub.url(), &file, settings(0.0, None)).await;
    known_traffic(&sidecar).await;

    let s = sidecar
        .scrape_until("7 requests timed", |s| {
            s.sum(&format!("{DURATION}_count"), &[]) == 7.0
        })
        .await;
    let count =
        |route, method, code| s.value(&format!("{DURATION}_count"), &labels(route, method, code));
    assert_eq!(count("/items/{id}", "GET", "200"), Some(3.0));
    assert_eq!(count("/items", "POST", "200"), Some(1.0));
    assert_eq!(count("/status/{code}", "GET", "404"), Some(2.0));
    assert_eq!(count("/slow/{ms}", "GET", "200"), Some(1.0));
    assert_eq!(s.series(&format!("{DURATION}_count")).len(), 4);
    for sample in s.series(&format!("{DURATION}_count")) {
        let names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "http_request_method",
                "http_response_status_code",
                "http_route"
            ]
        );
    }

    // The 300 ms request: in the buckets from 0.5 up, and in the sum.
    let slow = labels("/slow/{ms}", "GET", "200");
    let bucket = |le| {
        let mut with_le = slow.to_vec();
        with_le.push(("le", le));
        s.value(&format!("{DURATION}_bucket"), &with_le)
    };
    assert_eq!(bucket("0.25"), Some(0.0));
    assert_eq!(bucket("0.5"), Some(1.0));
    let sum = s.value(&format!("{DURATION}_sum"), &slow).unwrap();
    assert!((0.3..2.0).contains(&sum), "{sum}");
    let les: Vec<&str> = (s.series(&format!("{DURATION}_bucket")).into_iter())
        .filter(|b| b.labels["http_route"] == "/slow/{ms}")
        .map(|b| b.labels["le"].as_str())
        .collect();
    assert_eq!(les, OTEL_BUCKETS);

    assert_eq!(
        s.value(
            "http_server_active_requests",
            &[("http_request_method", "GET")]
        ),
        Some(0.0)
    );
    for family in REPLACED {
        assert!(!s.has_family(family), "{family} is still exposed");
    }
    // No counterpart under these labels: the size histograms keep their names.
    assert!(s.has_family("http_response_size_bytes"));

    // The traced request's exemplar, on the otel family's bucket.
    let (_, found) = testkit::scrape::exemplars_until(&sidecar.admin_url("/metrics")).await;
    let [exemplar] = found.as_slice() else {
        panic!("one exemplar: {found:#?}")
    };
    assert!(
        exemplar.series.starts_with(&format!("{DURATION}_bucket{{")),
        "{exemplar:?}"
    );
    for (name, value) in labels("/items/{id}", "GET", "200") {
        assert!(exemplar.has_label(name, value), "{exemplar:?}");
    }
    assert_eq!(exemplar.trace_id, TRACE);
    assert!(exemplar.value > 0.0 && exemplar.value <= exemplar.le().unwrap());
}

#[tokio::test]
async fn active_requests_count_the_requests_in_flight_by_method() {
    let stub = Stub::start().await;
    let file = format!("[metrics]\nnames = \"otel\"\n{ROUTES}");
    let sidecar = Sidecar::start(&stub.url(), &file).await;
    let url = sidecar.url("/slow/800");
    let pending = tokio::spawn(async move { testkit::http::get(&url).await });
    let active = [("http_request_method", "GET")];
    sidecar
        .scrape_until("one GET in flight", |s| {
            s.value("http_server_active_requests", &active) == Some(1.0)
        })
        .await;
    assert_eq!(pending.await.unwrap().unwrap().status, 200);
    let s = sidecar
        .scrape_until("none in flight", |s| {
            s.value("http_server_active_requests", &active) == Some(0.0)
        })
        .await;
    assert_eq!(
        s.value(
            &format!("{DURATION}_count"),
            &labels("/slow/{ms}", "GET", "200")
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_the_default_names_no_otel_family_appears() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start_traced(&stub.url(), ROUTES, settings(0.0, None)).await;
    known_traffic(&sidecar).await;
    let s: Scrape = sidecar
        .scrape_until("7 requests counted", |s| {
            s.sum("http_requests_total", &[]) == 7.0
        })
        .await;
    for family in REPLACED {
        assert!(s.has_family(family), "{family} is missing");
    }
    for family in [DURATION, "http_server_active_requests"] {
        assert!(!s.has_family(family), "{family} is exposed");
    }
    assert_eq!(
        s.value(
            "http_request_duration_seconds_count",
            &[("handler", "/items/{id}"), ("method", "GET")]
        ),
        Some(3.0)
    );
    let (_, found) = testkit::scrape::exemplars_until(&sidecar.admin_url("/metrics")).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .series
            .starts_with("http_request_duration_seconds_bucket{")
    );
}
