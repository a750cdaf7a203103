//! Request heads the sidecar must not forward as they came (RFC 9112 §3.2, §3.2.2) and
//! statuses no client can use (RFC 9110 §15): each gets the RFC's answer, and nothing
//! ambiguous reaches the upstream.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::stub::{Stub, scripted_upstream};
use crate::support::{Sidecar, total};

/// Sends `head` on a fresh connection and reads the response head and its body.
async fn exchange(proxy: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    testkit::http::read_response(&mut stream).await.unwrap()
}

#[tokio::test]
async fn a_head_without_one_host_is_refused_and_never_forwarded() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    for head in [
        "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /echo HTTP/1.1\r\n\r\n",
    ] {
        let answer = exchange(sidecar.proxy, head).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{head:?}: {answer}");
        assert!(
            answer.contains("x-sidecar-error: invalid_request"),
            "{answer}"
        );
    }
    // HTTP/1.0 needs no Host: the upstream's authority is used.
    let answer = exchange(sidecar.proxy, "GET /echo HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let s = sidecar
        .scrape_until("3 requests", |s| total(s, "http_requests_total") == 3.0)
        .await;
    assert_eq!(
        s.value("http_requests_total", &[("status", "4xx")]),
        Some(2.0)
    );
    assert_eq!(total(&s, "sidecar_upstream_errors_total"), 0.0);
    assert_eq!(
        stub.hits(),
        1,
        "only the HTTP/1.0 request reached the upstream"
    );
}

#[tokio::test]
async fn an_absolute_form_target_wins_over_host() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let answer = exchange(
        sidecar.proxy,
        "GET http://target.test:81/echo?q=1 HTTP/1.1\r\nHost: other.test\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echoed["path"], "/echo");
    assert_eq!(echoed["query"], "q=1");
    assert_eq!(
        echoed["headers"]["host"],
        serde_json::json!(["target.test:81"])
    );
}

#[tokio::test]
async fn connect_is_refused_with_405() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let answer = exchange(
        sidecar.proxy,
        "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.contains("x-sidecar-error: method_not_allowed"),
        "{answer}"
    );
    assert_eq!(stub.hits(), 0);
}

/// Answers every request with `status` and an empty body.
async fn answers_with(status: u16) -> SocketAddr {
    let (addr, _task) = scripted_upstream(move |mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let head = format!("HTTP/1.1 {status} Odd\r\ncontent-length: 0\r\n\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
    })
    .await;
    addr
}

#[tokio::test]
async fn statuses_above_599_are_the_upstreams_protocol_error() {
    for status in [600, 999] {
        let upstream = answers_with(status).await;
        let sidecar = Sidecar::start(&format!("http://{upstream}"), "").await;
        let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
        assert_eq!(r.status, 502, "{status}");
        assert_eq!(r.headers["x-sidecar-error"], "protocol_error");
    }
    let upstream = answers_with(599).await;
    let sidecar = Sidecar::start(&format!("http://{upstream}"), "").await;
    let r = testkit::http::get(&sidecar.url("/x")).await.unwrap();
    assert_eq!(r.status, 599);
}
