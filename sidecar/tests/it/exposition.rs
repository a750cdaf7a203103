//! `/metrics` as scrapers of every kind expect it: the format each asks for, a classic text
//! that promtool accepts, and closed label sets present at 0 before anything went wrong.

use std::collections::BTreeSet;

use testkit::{Scrape, http::Response};

use crate::stub::Stub;
use crate::support::Sidecar;

fn content_type(response: &Response) -> &str {
    response.headers["content-type"].to_str().unwrap()
}

/// Every series of a scrape, by name and labels; values move between two scrapes.
fn series(scrape: &Scrape) -> BTreeSet<String> {
    (scrape.samples.iter())
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect()
}

#[tokio::test]
async fn metrics_follow_the_accept_header_and_the_classic_text_passes_promtool() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/items/{id}\"\n").await;
    for path in ["/items/1", "/items/2", "/other"] {
        assert_eq!(
            testkit::http::get(&sidecar.url(path)).await.unwrap().status,
            200
        );
    }
    let url = sidecar.admin_url("/metrics");

    let openmetrics = testkit::http::scrape(&url).await.unwrap();
    assert_eq!(
        content_type(&openmetrics),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.text().ends_with("# EOF\n"));

    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let classic = match accept {
            None => testkit::http::get(&url).await.unwrap(),
            Some(accept) => testkit::http::get_accepting(&url, accept).await.unwrap(),
        };
        assert_eq!(
            content_type(&classic),
            "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        let text = classic.text();
        assert!(!text.contains("# EOF"), "{accept:?}");
        assert!(
            text.contains("# TYPE http_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE sidecar_build_info gauge\n"), "{text}");
        testkit::promtool::check_metrics(&text).unwrap();
        // The same series, whichever the format.
        assert_eq!(
            series(&Scrape::parse(&text).unwrap()),
            series(&Scrape::parse(&openmetrics.text()).unwrap()),
            "{accept:?}"
        );
    }
}

#[tokio::test]
async fn every_upstream_error_type_is_zero_before_the_first_failure() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/items/{id}\"\n").await;
    assert_eq!(
        testkit::http::get(&sidecar.url("/items/1"))
            .await
            .unwrap()
            .status,
        200
    );
    let scrape = sidecar.scrape().await;
    let route = [("handler", "/items/{id}"), ("method", "GET")];
    for error_type in [
        "connect_refused",
        "connect_timeout",
        "response_timeout",
        "upstream_reset",
        "protocol_error",
        "overloaded",
        "body_error",
        "body_timeout",
    ] {
        let labels = [route[0], route[1], ("error_type", error_type)];
        assert_eq!(
            scrape.value("sidecar_upstream_errors_total", &labels),
            Some(0.0),
            "{error_type}"
        );
    }
    let types = scrape.series("sidecar_upstream_errors_total").len();
    assert_eq!(
        types, 8,
        "one series per upstream error type, the client's own excluded"
    );
    assert_eq!(
        scrape.value("sidecar_client_aborts_total", &route),
        Some(0.0)
    );
}
