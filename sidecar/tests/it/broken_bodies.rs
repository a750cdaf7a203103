//! Response bodies that break: at once (nothing has reached the client yet: a 502 instead of
//! an empty reply), later (the client sees an incomplete message, counted as `body_error`), or
//! by going silent (cut at `response_body_idle_timeout`, counted as `body_timeout`). With a
//! plugin buffering the response, nothing has reached the client when the body breaks: a 502
//! (or 504) and its error type, never an empty reply.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stub::scripted_upstream;
use crate::support::{Sidecar, total};

/// Answers each request with `first`, then after `pause` with `then`, then closes (or, when
/// `then` is `None`, keeps the connection open and silent).
async fn upstream(first: &'static str, pause: Duration, then: Option<&'static str>) -> SocketAddr {
    let (addr, _task) = scripted_upstream(move |mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(first.as_bytes()).await;
        tokio::time::sleep(pause).await;
        match then {
            Some(rest) => {
                let _ = stream.write_all(rest.as_bytes()).await;
            }
            None => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    })
    .await;
    addr
}

async fn error_count(sidecar: &Sidecar, error_type: &str) -> f64 {
    let scrape = sidecar
        .scrape_until("1 request", |s| total(s, "http_requests_total") == 1.0)
        .await;
    scrape
        .value(
            "sidecar_upstream_errors_total",
            &[("error_type", error_type)],
        )
        .unwrap_or(-1.0)
}

#[tokio::test]
async fn a_body_that_breaks_in_what_came_with_the_head_is_a_502_not_an_empty_reply() {
    let addr = upstream(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n",
        Duration::ZERO,
        Some(""),
    )
    .await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), "").await;
    let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.headers["x-sidecar-error"], "protocol_error");
    assert_eq!(error_count(&sidecar, "protocol_error").await, 1.0);
}

#[tokio::test]
async fn a_body_cut_short_by_a_close_is_never_a_clean_answer() {
    // Whether the close is seen before the head leaves (a 502) or after (an incomplete body)
    // depends on when the upstream's FIN arrives; either way it is counted as the upstream's.
    let addr = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
        Duration::ZERO,
        Some(""),
    )
    .await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), "").await;
    match testkit::http::get(&sidecar.url("/x")).await {
        Ok(r) => {
            assert_eq!(r.status, 502, "{}", r.text());
            assert_eq!(error_count(&sidecar, "upstream_reset").await, 1.0);
        }
        Err(_) => assert_eq!(error_count(&sidecar, "body_error").await, 1.0),
    }
}

#[tokio::test]
async fn a_body_that_breaks_after_the_head_went_out_is_incomplete_and_counted() {
    let addr = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
        Duration::from_millis(200),
        Some(""),
    )
    .await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), "").await;
    let result = testkit::http::get(&sidecar.url("/x")).await;
    assert!(
        result.is_err(),
        "the client sees an incomplete body: {result:?}"
    );
    assert_eq!(error_count(&sidecar, "body_error").await, 1.0);
}

#[tokio::test]
async fn a_body_that_goes_silent_is_cut_at_the_idle_timeout() {
    let addr = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
        Duration::ZERO,
        None,
    )
    .await;
    let sidecar = Sidecar::start(
        &format!("http://{addr}"),
        "[limits]\nresponse_body_idle_timeout = \"300ms\"\n",
    )
    .await;
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        testkit::http::get(&sidecar.url("/x")),
    )
    .await
    .expect("cut long before the upstream's 30 s of silence");
    assert!(
        result.is_err(),
        "the client sees an incomplete body: {result:?}"
    );
    assert_eq!(error_count(&sidecar, "body_timeout").await, 1.0);
}

/// A plugin that buffers every response body (the example `items-business`, built by
/// `plugins/build`), and an idle timeout short enough for a test.
fn buffering_plugin() -> String {
    let wasm = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../plugins/dist/items-business.wasm"
    );
    assert!(
        std::path::Path::new(wasm).exists(),
        "{wasm} missing: run plugins/build"
    );
    format!(
        "[limits]\nresponse_body_idle_timeout = \"300ms\"\n\n[[plugins]]\nname = \"buffering\"\npath = \"{wasm}\"\nresponse_body = true\n"
    )
}

#[tokio::test]
async fn a_body_that_breaks_while_a_plugin_buffers_it_is_a_502() {
    for (rest, error_type) in [("", "upstream_reset"), ("zz\r\n", "protocol_error")] {
        let addr = upstream(
            if rest.is_empty() {
                "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b"
            } else {
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nonly ten b\r\n"
            },
            Duration::from_millis(200),
            Some(rest),
        )
        .await;
        let sidecar = Sidecar::start(&format!("http://{addr}"), &buffering_plugin()).await;
        let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
        assert_eq!(r.status, 502, "{error_type}: {}", r.text());
        assert_eq!(r.headers["x-sidecar-error"], error_type);
        assert_eq!(error_count(&sidecar, error_type).await, 1.0);
        let scrape = sidecar.scrape().await;
        assert_eq!(scrape.sum("http_requests_total", &[("status", "5xx")]), 1.0);
        assert_eq!(total(&scrape, "sidecar_plugin_faults_total"), 0.0);
    }
}

#[tokio::test]
async fn a_body_that_goes_silent_while_a_plugin_buffers_it_is_a_504() {
    let addr = upstream(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b",
        Duration::ZERO,
        None,
    )
    .await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), &buffering_plugin()).await;
    let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.headers["x-sidecar-error"], "response_timeout");
    assert_eq!(error_count(&sidecar, "response_timeout").await, 1.0);
}
