//! Every way the upstream can fail: the status the client gets, the `x-sidecar-error` header,
//! the JSON body, and the counters. And the client's own failures, which are not the upstream's.

use std::time::Duration;

use tokio::{io::AsyncWriteExt, net::TcpStream};

use crate::stub::{Misbehaviour, Stub, blackhole_upstream, closed_port, raw_upstream};
use crate::support::{Sidecar, total};

/// Requests `/x` through `sidecar` and checks the sidecar-made response and its counters.
async fn assert_sidecar_error(sidecar: &Sidecar, path: &str, status: u16, error_type: &str) {
    let r = testkit::http::get(&sidecar.url(path)).await.unwrap();
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.headers["x-sidecar-error"], error_type);
    assert_eq!(r.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(json["type"], error_type);
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    let s = sidecar
        .scrape_until("1 request", |s| total(s, "http_requests_total") == 1.0)
        .await;
    let class = format!("{}xx", status / 100);
    assert_eq!(
        s.value(
            "http_requests_total",
            &[("handler", "none"), ("method", "GET"), ("status", &class)]
        ),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "sidecar_upstream_errors_total",
            &[
                ("handler", "none"),
                ("method", "GET"),
                ("error_type", error_type)
            ]
        ),
        Some(1.0)
    );
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 1.0);
    assert_eq!(s.value("http_requests_inprogress", &[]), Some(0.0));
}

#[tokio::test]
async fn refused_connection_gives_502_connect_refused() {
    let sidecar = Sidecar::start(&format!("http://{}", closed_port().await), "").await;
    assert_sidecar_error(&sidecar, "/x", 502, "connect_refused").await;
}

#[tokio::test]
async fn connect_timeout_gives_504_connect_timeout() {
    let (addr, _fillers, _listener) = blackhole_upstream().await;
    let sidecar = Sidecar::start(
        &format!("http://{addr}"),
        "[limits]\nconnect_timeout = \"200ms\"\n",
    )
    .await;
    assert_sidecar_error(&sidecar, "/x", 504, "connect_timeout").await;
}

#[tokio::test]
async fn upstream_that_never_answers_gives_504_response_timeout() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(
        &stub.url(),
        "[limits]\nresponse_header_timeout = \"300ms\"\n",
    )
    .await;
    assert_sidecar_error(&sidecar, "/hang", 504, "response_timeout").await;
}

#[tokio::test]
async fn upstream_closing_before_answering_gives_502_upstream_reset() {
    let (addr, _task) = raw_upstream(Misbehaviour::Close).await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), "").await;
    assert_sidecar_error(&sidecar, "/x", 502, "upstream_reset").await;
}

#[tokio::test]
async fn upstream_speaking_garbage_gives_502_protocol_error() {
    let (addr, _task) = raw_upstream(Misbehaviour::Garbage).await;
    let sidecar = Sidecar::start(&format!("http://{addr}"), "").await;
    assert_sidecar_error(&sidecar, "/x", 502, "protocol_error").await;
}

#[tokio::test]
async fn requests_past_the_concurrency_limit_get_503_overloaded_at_once() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[limits]\nmax_concurrent_requests = 1\n").await;
    let slow_url = sidecar.url("/slow/1500");
    let first = tokio::spawn(async move { testkit::http::get(&slow_url).await.unwrap() });
    sidecar
        .scrape_until("one request in flight", |s| {
            s.value("http_requests_inprogress", &[]) == Some(1.0)
        })
        .await;

    let started = std::time::Instant::now();
    let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["x-sidecar-error"], "overloaded");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "503 was queued behind the slow request"
    );
    assert_eq!(first.await.unwrap().status, 200);

    let s = sidecar
        .scrape_until("2 requests", |s| total(s, "http_requests_total") == 2.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("status", "5xx")]),
        Some(1.0)
    );
    assert_eq!(
        s.value(
            "sidecar_upstream_errors_total",
            &[("error_type", "overloaded")]
        ),
        Some(1.0)
    );
    // The permit is released with the response: the next request goes through.
    assert_eq!(
        testkit::http::get(&sidecar.url("/x")).await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn client_leaving_while_waiting_is_not_an_upstream_error() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let mut socket = TcpStream::connect(sidecar.proxy).await.unwrap();
    socket
        .write_all(b"GET /slow/800 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    sidecar
        .scrape_until("one request in flight", |s| {
            s.value("http_requests_inprogress", &[]) == Some(1.0)
        })
        .await;
    drop(socket);

    let s = sidecar
        .scrape_until("the abort recorded", |s| {
            s.value("sidecar_client_aborts_total", &[("handler", "none")]) == Some(1.0)
        })
        .await;
    assert_eq!(s.value("http_requests_inprogress", &[]), Some(0.0));
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);
    assert_eq!(total(&s, "http_requests_total"), 0.0);
}

#[tokio::test]
async fn client_leaving_mid_upload_is_not_an_upstream_error() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let mut socket = TcpStream::connect(sidecar.proxy).await.unwrap();
    socket
        .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut uploaded = stub.state.uploaded.subscribe();
    tokio::time::timeout(Duration::from_secs(5), uploaded.wait_for(|n| *n >= 10))
        .await
        .unwrap()
        .unwrap();
    drop(socket);

    let s = sidecar
        .scrape_until("the request to end", |s| {
            s.value("http_requests_inprogress", &[]) == Some(0.0)
                && total(s, "sidecar_client_aborts_total") + total(s, "http_requests_total") == 1.0
        })
        .await;
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);
    assert_eq!(s.sum("http_requests_total", &[("status", "5xx")]), 0.0);
}

/// Reads whatever the sidecar answers on a raw connection until it closes (at most 5 s).
async fn read_until_closed(socket: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn oversized_request_head_is_refused_before_reaching_the_upstream() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[limits]\nmax_request_header_bytes = 8192\n").await;
    let mut socket = TcpStream::connect(sidecar.proxy).await.unwrap();
    let huge = "a".repeat(20_000);
    let request = format!("GET /x HTTP/1.1\r\nhost: x\r\nx-big: {huge}\r\n\r\n");
    let _ = socket.write_all(request.as_bytes()).await;
    let answer = read_until_closed(&mut socket).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert_eq!(total(&sidecar.scrape().await, "http_requests_total"), 0.0);
}

#[tokio::test]
async fn client_too_slow_to_send_its_headers_is_cut_off() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[limits]\nheader_read_timeout = \"300ms\"\n").await;
    let mut socket = TcpStream::connect(sidecar.proxy).await.unwrap();
    socket
        .write_all(b"GET /x HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = read_until_closed(&mut socket).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "connection held open"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert_eq!(total(&sidecar.scrape().await, "http_requests_total"), 0.0);
}
