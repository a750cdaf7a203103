//! Route templates loaded from the upstream's OpenAPI document.

use crate::stub::{Stub, closed_port};
use crate::support::{Sidecar, total};

#[tokio::test]
async fn templates_come_from_the_upstream_openapi_document() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(
        &stub.url(),
        "openapi = { required = true }\n[[routes]]\ntemplate = \"/extra\"\n",
    )
    .await;
    testkit::http::get(&sidecar.url("/items/17")).await.unwrap();
    testkit::http::get(&sidecar.url("/users/3/orders"))
        .await
        .unwrap();
    testkit::http::get(&sidecar.url("/extra")).await.unwrap();
    let s = sidecar
        .scrape_until("3 requests", |s| total(s, "http_requests_total") == 3.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("handler", "/items/{item_id}")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("http_requests_total", &[("handler", "/users/{id}/orders")]),
        Some(1.0)
    );
    assert_eq!(
        s.value("http_requests_total", &[("handler", "/extra")]),
        Some(1.0)
    );

    let routes: serde_json::Value = serde_json::from_slice(
        &testkit::http::get(&sidecar.admin_url("/routes"))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    let sources: Vec<(String, String)> = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["template"].as_str().unwrap().to_owned(),
                r["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(sources.contains(&("/extra".into(), "config".into())));
    assert!(sources.contains(&("/items/{item_id}".into(), "openapi".into())));
}

#[tokio::test]
async fn optional_document_loads_in_the_background() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "openapi = { url_path = \"/openapi.json\" }\n").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let routes = testkit::http::get(&sidecar.admin_url("/routes"))
            .await
            .unwrap()
            .text();
        if routes.contains("/items/{item_id}") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "templates never loaded: {routes}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn required_document_that_cannot_be_fetched_stops_start_up() {
    let upstream = format!("http://{}", closed_port().await);
    let error = Sidecar::try_start(&upstream, "openapi = { required = true, attempts = 2 }\n")
        .await
        .err()
        .unwrap();
    let message = format!("{error:#}");
    assert!(
        message.contains("OpenAPI") && message.contains("openapi.json"),
        "{message}"
    );
}
