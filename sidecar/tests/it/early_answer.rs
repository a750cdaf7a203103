//! An upstream that answers before it has read the request body (a 413 for a body too large)
//! and closes: its kernel resets the connection while the sidecar is still sending. The
//! client gets the upstream's answer, counted as the upstream's status, not as a 502.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stub::scripted_upstream;
use crate::support::{Sidecar, total};

/// Reads each request head and 256 KiB, answers 413 and closes with the rest unread (a reset).
async fn answers_early_and_closes() -> SocketAddr {
    let (addr, _task) = scripted_upstream(|mut stream| async move {
        // The head and some of the body: the sidecar is busy sending the rest when the answer
        // and the reset come.
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() < 256 << 10 {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let answer = "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\n\
                      content-length: 21\r\nconnection: close\r\n\r\n{\"error\":\"too large\"}";
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await;
    addr
}

#[tokio::test]
async fn an_early_answer_reaches_a_client_that_writes_its_whole_body_first() {
    let upstream = answers_early_and_closes().await;
    let sidecar = Sidecar::start(
        &format!("http://{upstream}"),
        "[[routes]]\ntemplate = \"/items\"\n",
    )
    .await;
    for attempt in 0..10 {
        let answer = testkit::http::post_whole_then_read(sidecar.proxy, "/items", 2 << 20)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error:#}"));
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: {answer:?}"
        );
        assert!(answer.ends_with("{\"error\":\"too large\"}"), "{answer:?}");
    }
    let scrape = sidecar
        .scrape_until("10 answers counted", |s| {
            total(s, "http_requests_total") >= 10.0
        })
        .await;
    let items = [("handler", "/items"), ("method", "POST")];
    assert_eq!(
        scrape.value(
            "http_requests_total",
            &[items[0], items[1], ("status", "4xx")]
        ),
        Some(10.0)
    );
    assert_eq!(total(&scrape, "sidecar_upstream_errors_total"), 0.0);
}
