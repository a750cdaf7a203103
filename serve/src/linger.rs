//! Lingering close, as nginx does it (`lingering_close`): a connection closed right after an
//! answer the client has not finished sending for (a 413 for a body still on its way, a 431)
//! is not just closed. Closing a socket with unread bytes makes the kernel send a reset, and a
//! reset discards the answer before a client that writes its whole request before reading
//! (Python's `urllib` and `requests`) ever reads it: it sees `BrokenPipeError` instead.
//!
//! So when a connection that has answered ends while the client may still be sending (bytes
//! are waiting, or its side is still open), [`Lingering`] sends the end of stream, then reads
//! and discards what the client still sends, bounded in time and bytes, and only then closes.
//! A client that has closed its side, the usual end of a keep-alive connection, costs nothing. A connection closed by the header-read timeout (a slowloris
//! client) closes at once: lingering would only hand it more time.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::{Socket, head_timeout::HeadClock};

/// How long, at the most, a closed connection keeps draining.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// How long the client may stay silent while we drain.
pub const LINGER_IDLE: Duration = Duration::from_secs(1);
/// How many bytes a closed connection drains at the most.
pub const LINGER_BYTES: u64 = 16 << 20;

/// A server-side connection that lingers when it is dropped after an answer.
#[derive(Debug)]
pub(crate) struct Lingering {
    socket: Option<Socket>,
    /// Something was written: a client still sending may be waiting to read it.
    answered: bool,
    /// Whether the header-read timeout closed the connection.
    clock: HeadClock,
}

impl Lingering {
    pub(crate) fn new(socket: Socket, clock: HeadClock) -> Self {
        Self {
            socket: Some(socket),
            answered: false,
            clock,
        }
    }

    fn socket(&mut self) -> Pin<&mut Socket> {
        Pin::new(
            self.socket
                .as_mut()
                .expect("the socket is only taken on drop"),
        )
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.get_mut().socket().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = this.socket().poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.answered = true;
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().socket().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().socket().poll_shutdown(cx)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        // Only bytes arriving after an answer turn the close into a reset that loses the
        // answer; a client that has closed its side sends none.
        if !self.answered || self.clock.ran_out() || !may_still_send(socket.stream()) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(socket.into_stream()));
        }
    }
}

/// Whether the client may still send: bytes are waiting, or its side is still open (the rest
/// of a body may be on its way). Peeks, reads nothing.
fn may_still_send(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
    match rustix::net::recv(stream, &mut probe, flags) {
        Ok((n, _)) => n > 0,
        Err(error) => error == rustix::io::Errno::AGAIN,
    }
}

/// Ends our side of the stream, then drains the client's until it ends, stays silent for
/// [`LINGER_IDLE`], or passes [`LINGER_TIME`] or [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.shutdown().await;
    let drain = async {
        let mut scratch = vec![0u8; 64 * 1024];
        let mut drained = 0u64;
        while drained < LINGER_BYTES {
            match tokio::time::timeout(LINGER_IDLE, stream.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => drained += n as u64,
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
}
