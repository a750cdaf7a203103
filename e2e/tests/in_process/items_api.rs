//! End to end in front of the real items API (over a throwaway PostgreSQL database): route
//! templates come from the API's own `/openapi.json`, and the RED series carry them.

use std::time::Duration;

use clap::Parser;
use hyper::Method;
use tokio::{net::TcpListener, sync::oneshot};

use testkit::Scrape;

use crate::stack::Sidecar;

#[tokio::test]
async fn sidecar_in_front_of_the_items_api_labels_requests_with_its_openapi_templates() {
    let database_url =
        tokio::task::spawn_blocking(|| testkit::Postgres::shared().create_database())
            .await
            .unwrap();
    let config = api::Config::try_parse_from(["api", "--database-url", &database_url]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let api = tokio::spawn(api::run(config, listener, async {
        let _ = api_stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !testkit::http::get(&format!("http://{api_addr}/healthz"))
        .await
        .is_ok_and(|r| r.status == 200)
    {
        assert!(!api.is_finished(), "api stopped during start-up");
        assert!(
            tokio::time::Instant::now() < deadline,
            "api never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start(api_addr, dir.path(), "openapi = { required = true }\n").await;
    let created = testkit::http::post(&sidecar.url("/items"), r#"{"nom":"lampe","prix":12.5}"#)
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    let id = serde_json::from_slice::<serde_json::Value>(&created.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let fetched = testkit::http::get(&sidecar.url(&format!("/items/{id}")))
        .await
        .unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&fetched.body).unwrap()["nom"],
        "lampe"
    );
    assert_eq!(
        testkit::http::get(&sidecar.url("/items/987654"))
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        testkit::http::get(&sidecar.url("/items"))
            .await
            .unwrap()
            .status,
        200
    );
    let deleted = testkit::http::send(Method::DELETE, &sidecar.url(&format!("/items/{id}")), None)
        .await
        .unwrap();
    assert!(deleted.status.is_success(), "{}", deleted.status);

    let s = sidecar
        .scrape_until(|s| total(s, "http_requests_total") == 5.0)
        .await;
    let count = |handler: &str, method: &str, status: &str| {
        s.value(
            "http_requests_total",
            &[("handler", handler), ("method", method), ("status", status)],
        )
    };
    assert_eq!(count("/items", "POST", "2xx"), Some(1.0));
    assert_eq!(count("/items/{id}", "GET", "2xx"), Some(1.0));
    assert_eq!(count("/items/{id}", "GET", "4xx"), Some(1.0));
    assert_eq!(count("/items", "GET", "2xx"), Some(1.0));
    assert_eq!(count("/items/{id}", "DELETE", "2xx"), Some(1.0));
    assert_eq!(
        s.value(
            "http_request_duration_seconds_count",
            &[("handler", "/items/{id}"), ("method", "GET")]
        ),
        Some(2.0)
    );
    assert!(
        s.value("http_request_size_bytes_sum", &[("handler", "/items")])
            .unwrap()
            > 20.0
    );
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);

    sidecar.stop().await.unwrap();
    let _ = stop_api.send(());
    api.await.unwrap().unwrap();
}

/// The sum of a counter over all its series (0 when absent).
fn total(scrape: &Scrape, name: &str) -> f64 {
    scrape.sum(name, &[])
}
