//! What reaches the upstream and what comes back: methods, headers, query strings, bodies.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request};
use tokio::sync::mpsc;

use crate::stub::Stub;
use crate::support::{ChannelBody, Sidecar, client, echoed, empty, full, send};

#[tokio::test]
async fn every_method_reaches_the_upstream_unchanged() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"] {
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(sidecar.url("/things/1"))
            .body(full("payload"))
            .unwrap();
        let response = send(req).await;
        assert_eq!(response.status, 200, "{method}");
        let echo = echoed(&response);
        assert_eq!(echo["method"], method);
        assert_eq!(echo["path"], "/things/1");
        assert_eq!(echo["body"], "payload");
    }
    let head = send(
        Request::head(sidecar.url("/things/1"))
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn query_string_is_forwarded_byte_for_byte() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let response = testkit::http::get(&sidecar.url("/search?q=a%20b&x=1&x=2&empty=&flag"))
        .await
        .unwrap();
    assert_eq!(echoed(&response)["query"], "q=a%20b&x=1&x=2&empty=&flag");
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_stripped_and_forwarding_headers_added() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let req = Request::get(sidecar.url("/h"))
        .header("host", "public.example:8443")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("upgrade", "websocket")
        .header("x-custom", "kept")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .unwrap();
    let echo = echoed(&send(req).await);
    let headers = echo["headers"].as_object().unwrap();
    // `te: trailers` is kept: it tells the upstream the sidecar takes trailers.
    assert_eq!(echo["headers"]["te"][0], "trailers");
    for gone in ["x-hop", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(
            !headers.contains_key(gone),
            "{gone} reached the upstream: {headers:?}"
        );
    }
    assert_eq!(echo["headers"]["x-custom"][0], "kept");
    assert_eq!(
        echo["headers"]["x-forwarded-for"][0],
        "203.0.113.9, 127.0.0.1"
    );
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "http");
    // Host passes through unchanged (documented choice).
    assert_eq!(echo["headers"]["host"][0], "public.example:8443");
    assert_eq!(echo["version"], "HTTP/1.1");
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let response = testkit::http::get(&sidecar.url("/hop")).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["x-visible"], "1");
    assert!(
        response.headers.get("x-secret").is_none(),
        "{:?}",
        response.headers
    );
    assert!(
        response.headers.get("keep-alive").is_none(),
        "{:?}",
        response.headers
    );
}

#[tokio::test]
async fn request_body_streams_to_the_upstream_before_the_client_finishes() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut uploaded = stub.state.uploaded.subscribe();
    let req = Request::post(sidecar.url("/upload"))
        .body(ChannelBody(rx))
        .unwrap();
    let pending = tokio::spawn(client::<ChannelBody>().request(req));

    // The first chunk must reach the upstream while the client still holds the rest: a proxy
    // that buffered the body whole would never let it through.
    tx.send(Bytes::from(vec![1u8; 1000])).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), uploaded.wait_for(|n| *n >= 1000))
        .await
        .expect("first chunk did not reach the upstream before the body ended")
        .unwrap();

    // Then 64 MiB more, streamed.
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    for _ in 0..64 {
        tx.send(chunk.clone()).await.unwrap();
    }
    drop(tx);
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, (1000 + 64 * (1u64 << 20)).to_string());
}

#[tokio::test]
async fn response_body_streams_to_the_client_before_the_upstream_finishes() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let response = client::<crate::support::TestBody>()
        .request(
            Request::get(sidecar.url("/download"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    // The first chunk arrives while the upstream is still holding back the second.
    let first = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("first chunk did not arrive before the upstream finished")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "first-chunk;");
    stub.state.release_download.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second-chunk");
}

#[tokio::test]
async fn large_response_body_arrives_whole() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let response = testkit::http::get(&sidecar.url("/big/10000000"))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 10_000_000);
    assert_eq!(response.headers["content-length"], "10000000");
}
