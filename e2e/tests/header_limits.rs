//! The header-count limits of the two processes agree: whatever the sidecar accepts, it can
//! forward to the api, although it adds `x-forwarded-for` and `x-forwarded-proto` on the way.
//! A request with 100 header fields (hyper's limit, which the sidecar keeps) gets the api's
//! answer through the sidecar; one with 101 gets the sidecar's own 431.
//!
//! Needs `cargo build --workspace --bins`, `plugins/build` and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use e2e::stack::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /items` on `addr` with `fields` header fields in all (Host included); the status line.
async fn status_with_fields(addr: &str, fields: usize) -> String {
    let mut head = format!("GET /items HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for n in 0..fields - 2 {
        head.push_str(&format!("x-filler-{n}: {n}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_sidecar_accepts_the_api_accepts_after_the_forwarding_headers() {
    let stack = Stack::start(&testkit::Postgres::shared().create_database())
        .await
        .unwrap();
    let proxy = stack.proxy_url.trim_start_matches("http://").to_owned();
    for fields in [99, 100] {
        assert_eq!(
            status_with_fields(&proxy, fields).await,
            "HTTP/1.1 200 OK",
            "{fields} fields through the sidecar"
        );
    }
    assert_eq!(
        status_with_fields(&proxy, 101).await,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "past the sidecar's limit"
    );
    // The api's own limit leaves room for the proxy's additions, and no more.
    assert_eq!(
        status_with_fields(&stack.api_addr, api::MAX_HEADERS).await,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        status_with_fields(&stack.api_addr, api::MAX_HEADERS + 1).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
}
