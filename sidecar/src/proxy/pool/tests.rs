//! The pool against raw upstreams on 127.0.0.1:0.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;
use crate::body::BoxError;

/// A raw HTTP/1 upstream: answers each request head with `response`, then keeps the
/// connection for the next request, or closes it after `per_connection` answers.
async fn upstream(response: &'static [u8], per_connection: usize) -> (Upstream, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                for _ in 0..per_connection {
                    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                        let mut chunk = [0u8; 1024];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.clear();
                    if socket.write_all(response).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (Upstream::parse(&url).unwrap(), accepted)
}

fn pool(upstream: &Upstream) -> Pool {
    Pool::new(upstream, Duration::from_secs(1), Duration::from_secs(60))
}

fn get() -> Request<Body> {
    Request::builder()
        .uri("/x")
        .header("host", "test")
        .body(crate::body::empty())
        .unwrap()
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (upstream, accepted) = upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        usize::MAX,
    )
    .await;
    let pool = pool(&upstream);
    for _ in 0..3 {
        assert_eq!(body_text(pool.send(get(), None).await.unwrap()).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    let (upstream, accepted) = upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 1).await;
    let pool = pool(&upstream);
    for _ in 0..3 {
        assert_eq!(body_text(pool.send(get(), None).await.unwrap()).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_connection_whose_body_was_dropped_half_read_is_not_reused() {
    // Announces 10 bytes, sends 5: the body can't end, so the connection can't be reused.
    let (upstream, accepted) = upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello",
        usize::MAX,
    )
    .await;
    let pool = pool(&upstream);
    let mut body = pool.send(get(), None).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hello");
    drop(body);
    let _second = pool.send(get(), None).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert!(pool.lock().is_empty());
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let pool = pool(&Upstream::parse(&url).unwrap());
    assert!(matches!(
        pool.send(get(), None).await,
        Err(SendError::Connect(_))
    ));
}

#[tokio::test]
async fn chunked_response_with_trailers_is_decoded_and_the_connection_reused() {
    let (upstream, accepted) = upstream(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 42\r\n\r\n",
        usize::MAX,
    )
    .await;
    let pool = pool(&upstream);
    for _ in 0..2 {
        let collected = pool
            .send(get(), None)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.trailers().unwrap()["x-sum"], "42");
        assert_eq!(&collected.to_bytes()[..], b"hello world");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_not_sent() {
    let (upstream, _) = upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        usize::MAX,
    )
    .await;
    let request = Request::post("/x")
        .header("content-length", "3")
        .body(crate::body::full("hello"))
        .unwrap();
    let result = pool(&upstream).send(request, None).await;
    assert!(
        matches!(
            result,
            Err(SendError::Exchange(ExchangeError::RequestBody(_)))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_answer_before_the_whole_body_is_returned_and_the_connection_dropped() {
    // Answers 413 as soon as the head is in, without reading a body that never ends.
    let (upstream, accepted) = upstream(
        b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
        usize::MAX,
    )
    .await;
    let pool = pool(&upstream);
    let request = Request::post("/x")
        .header("content-length", "1000000")
        .body(Body::new(Endless))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), pool.send(request, None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        pool.lock().is_empty(),
        "a connection with a half-sent body is not reused"
    );
    assert_eq!(body_text(pool.send(get(), None).await.unwrap()).await, "");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

/// A request body whose bytes never come.
struct Endless;

impl http_body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        std::task::Poll::Pending
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (upstream, accepted) = upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        usize::MAX,
    )
    .await;
    let pool = Pool::new(&upstream, Duration::from_secs(1), Duration::from_millis(80));
    assert_eq!(body_text(pool.send(get(), None).await.unwrap()).await, "ok");
    assert_eq!(pool.lock().len(), 1, "kept for the next request");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(pool.lock().is_empty(), "closed by the reaper");
    assert_eq!(body_text(pool.send(get(), None).await.unwrap()).await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
