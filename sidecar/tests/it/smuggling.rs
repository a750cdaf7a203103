//! Request smuggling probes (RFC 9112 §6.1, §5.2, §7.1, §2.2): a request whose framing two
//! parsers could read differently is refused with a 400 and never reaches the upstream; one the
//! RFC lets a recipient repair is forwarded normalised, and nothing after an ambiguous message
//! is read as a request.

use std::net::SocketAddr;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::stub::Stub;
use crate::support::Sidecar;

/// Writes `raw` and reads until the sidecar closes the connection (or 5 s pass).
async fn send_raw(proxy: SocketAddr, raw: &str) -> String {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(raw.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    for (what, raw) in [
        (
            "two different Content-Lengths",
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        ),
        (
            "obs-fold",
            "GET /echo HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n",
        ),
        (
            "a chunk size that is not hex",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "a transfer coding other than chunked last",
            "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
    ] {
        let answer = send_raw(sidecar.proxy, raw).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{what}: expected a 400, got {answer:?}"
        );
    }
    assert_eq!(stub.hits(), 0, "nothing ambiguous reached the upstream");
}

#[tokio::test]
async fn what_the_rfc_lets_a_recipient_repair_is_forwarded_normalised() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    // Bare LF line endings (RFC 9112 §2.2 allows a recipient to accept them) go upstream as
    // CRLF: the stub, a strict parser, reads one well-formed request.
    let answer = send_raw(
        sidecar.proxy,
        "GET /echo HTTP/1.1\nHost: x\nConnection: close\n\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains(r#""path":"/echo""#), "{answer}");
    // A chunked body reaches the upstream with one framing, its size known.
    let answer = send_raw(
        sidecar.proxy,
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains(r#""body":"hello""#), "{answer}");
    // Content-Length and Transfer-Encoding together (§6.1): the chunked framing wins, the
    // Content-Length is not forwarded, and the connection is closed after the answer, so what
    // follows the chunked body is never read as a request of its own.
    let answer = send_raw(
        sidecar.proxy,
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(!answer.contains("content-length\":"), "{answer}");
    assert!(!answer.contains("/smuggled"), "{answer}");
    assert_eq!(
        stub.hits(),
        3,
        "the smuggled request never reached the upstream"
    );
}
