//! Which HTTP version a new connection speaks, from its first bytes: HTTP/2 with prior
//! knowledge (what gRPC clients and `curl --http2-prior-knowledge` do) opens with a fixed
//! 24-byte preface (RFC 9113 §3.4); anything else is HTTP/1.
//!
//! The bytes are peeked, not read, so the chosen server reads the connection from its start:
//! no rewinding wrapper sits under every later read of an HTTP/1 connection (hyper-util's
//! `auto` server reads and rewinds). It costs one `recv(MSG_PEEK)` per connection.

use std::{io, time::Duration};

use tokio::net::TcpStream;

/// The HTTP/2 connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Waits for the connection's first bytes and decides. A connection whose first bytes are a
/// strict prefix of the preface is looked at again shortly, so a client that sends the
/// preface in pieces still gets HTTP/2; the caller bounds the whole wait.
///
/// # Errors
/// The peek failed (the connection reset).
pub(crate) async fn protocol(stream: &TcpStream) -> io::Result<Protocol> {
    let mut seen = [0u8; PREFACE.len()];
    loop {
        let n = stream.peek(&mut seen).await?;
        if n == 0 || seen[..n] != PREFACE[..n] {
            // Closed at once, or not the preface: hyper's HTTP/1 server answers (or not) as
            // it would have without us.
            return Ok(Protocol::Http1);
        }
        if n == PREFACE.len() {
            return Ok(Protocol::Http2);
        }
        // Peeking again now would see the same bytes: the socket stays readable.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    async fn sniff_after_writing(pieces: &[&[u8]]) -> Protocol {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for piece in pieces {
                client.write_all(&piece).await.unwrap();
                client.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            client
        });
        let protocol = protocol(&server).await.unwrap();
        drop(writer.await.unwrap());
        protocol
    }

    #[tokio::test]
    async fn the_preface_means_http2_even_in_pieces() {
        assert_eq!(sniff_after_writing(&[PREFACE]).await, Protocol::Http2);
        assert_eq!(
            sniff_after_writing(&[&PREFACE[..3], &PREFACE[3..10], &PREFACE[10..]]).await,
            Protocol::Http2
        );
    }

    #[tokio::test]
    async fn anything_else_is_http1() {
        assert_eq!(
            sniff_after_writing(&[b"GET / HTTP/1.1\r\n"]).await,
            Protocol::Http1
        );
        // Starts like the preface, then is not it.
        assert_eq!(
            sniff_after_writing(&[b"PRI * HTTP/1.1"]).await,
            Protocol::Http1
        );
        assert_eq!(sniff_after_writing(&[b"P", b"OST"]).await, Protocol::Http1);
    }
}
