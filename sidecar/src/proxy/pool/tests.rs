//! The pool against raw upstreams on 127.0.0.1:0.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::BodyExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

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
        assert_eq!(body_text(pool.send(get()).await.unwrap()).await, "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced() {
    let (upstream, accepted) = upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", 1).await;
    let pool = pool(&upstream);
    for _ in 0..3 {
        assert_eq!(body_text(pool.send(get()).await.unwrap()).await, "ok");
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
    let mut body = pool.send(get()).await.unwrap().into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hello");
    drop(body);
    let _second = pool.send(get()).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert!(pool.lock().is_empty());
}

#[tokio::test]
async fn a_refused_connect_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let pool = pool(&Upstream::parse(&url).unwrap());
    assert!(matches!(pool.send(get()).await, Err(SendError::Connect(_))));
}
