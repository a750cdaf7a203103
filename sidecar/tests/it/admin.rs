//! The admin listener: health, readiness, the route table, reload, and that its own traffic
//! never shows up in the RED family.

use crate::stub::{Stub, closed_port};
use crate::support::{Sidecar, total};

#[tokio::test]
async fn admin_traffic_is_never_counted() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    for path in ["/metrics", "/healthz", "/readyz", "/routes", "/nope"] {
        testkit::http::get(&sidecar.admin_url(path)).await.unwrap();
    }
    let s = sidecar.scrape().await;
    assert_eq!(total(&s, "http_requests_total"), 0.0);
    assert!(s.series("http_requests_total").is_empty());
    assert_eq!(
        s.value("http_request_duration_highr_seconds_count", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn readyz_follows_the_upstream() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    assert_eq!(
        testkit::http::get(&sidecar.admin_url("/readyz"))
            .await
            .unwrap()
            .status,
        200
    );

    let down = Sidecar::start(&format!("http://{}", closed_port().await), "").await;
    assert_eq!(
        testkit::http::get(&down.admin_url("/healthz"))
            .await
            .unwrap()
            .status,
        200
    );
    let r = testkit::http::get(&down.admin_url("/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    assert!(r.text().contains("unreachable"), "{}", r.text());
}

#[tokio::test]
async fn routes_page_lists_the_table() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/a/{x}\"\n[metrics]\nmax_handlers = 1\n[[routes]]\ntemplate = \"/b\"\n").await;
    let r = testkit::http::get(&sidecar.admin_url("/routes"))
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["routes"][0]["template"], "/a/{x}");
    assert_eq!(json["routes"][0]["source"], "config");
    assert_eq!(json["routes"][0]["over_cap"], false);
    assert_eq!(json["routes"][1]["template"], "/b");
    assert_eq!(json["routes"][1]["over_cap"], true);

    // A template past the cap reports `none` and counts an overflow.
    testkit::http::get(&sidecar.url("/b")).await.unwrap();
    let s = sidecar
        .scrape_until("1 request", |s| total(s, "http_requests_total") == 1.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("handler", "none")]),
        Some(1.0)
    );
    assert_eq!(s.value("sidecar_route_overflow_total", &[]), Some(1.0));
}

#[tokio::test]
async fn reload_swaps_the_route_table_and_a_bad_file_keeps_the_old_one() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/old/{id}\"\n").await;

    std::fs::write(
        &sidecar.config_path,
        "[[routes]]\ntemplate = \"/new/{id}\"\n",
    )
    .unwrap();
    let r = testkit::http::post(&sidecar.admin_url("/reload"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    testkit::http::get(&sidecar.url("/new/1")).await.unwrap();
    testkit::http::get(&sidecar.url("/old/1")).await.unwrap();
    let s = sidecar
        .scrape_until("2 requests", |s| total(s, "http_requests_total") == 2.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("handler", "/new/{id}")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("http_requests_total", &[("handler", "none")]),
        Some(1.0)
    );

    std::fs::write(&sidecar.config_path, "[[routes]]\ntemplat = \"/broken\"\n").unwrap();
    let r = testkit::http::post(&sidecar.admin_url("/reload"), "")
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    assert!(r.text().contains("templat"), "{}", r.text());
    let routes = testkit::http::get(&sidecar.admin_url("/routes"))
        .await
        .unwrap();
    assert!(routes.text().contains("/new/{id}"), "{}", routes.text());
}
