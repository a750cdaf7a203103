//! A TCP stream whose sends, and receives into initialised buffers, are plain system calls.
//!
//! Why: glibc's `send` and `recv` are thread-cancellation points. In a multi-threaded process
//! each call switches the thread's cancellation type on and off around the system call (two
//! atomic read-modify-write loops), which perf put at 1 % of the sidecar's CPU
//! (`__pthread_enable_asynccancel`, `__pthread_disable_asynccancel`); nginx's single-threaded
//! worker processes skip it. rustix issues the system call itself. Reads into buffers that may
//! be uninitialised (hyper's) still go through tokio: reading into them without zeroing them
//! first takes `unsafe`, which this workspace forbids.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use rustix::net::{RecvFlags, SendFlags};
use tokio::{
    io::{AsyncRead, AsyncWrite, Interest, ReadBuf},
    net::TcpStream,
};

/// A connected TCP stream.
#[derive(Debug)]
pub struct Socket(TcpStream);

impl Socket {
    /// Wraps `stream`.
    pub fn new(stream: TcpStream) -> Self {
        Self(stream)
    }

    /// The stream itself.
    pub fn into_stream(self) -> TcpStream {
        self.0
    }

    /// The stream, for readiness checks and addresses.
    pub fn stream(&self) -> &TcpStream {
        &self.0
    }

    /// Receives into `buf`; `Ok(0)` is the end of the stream.
    pub fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let len = buf.len();
            let mut received = None;
            let attempt = self.0.try_io(Interest::READABLE, || {
                let (n, _) = rustix::net::recv(&self.0, &mut *buf, RecvFlags::empty())?;
                received = Some(n);
                // Less than asked for: the socket is drained. Telling tokio so (as its own
                // reads do) saves the system call that would only find it empty.
                if n > 0 && n < len {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            match (received, attempt) {
                (Some(n), _) => return Poll::Ready(Ok(n)),
                (None, Err(error)) if error.kind() != io::ErrorKind::WouldBlock => {
                    return Poll::Ready(Err(error));
                }
                // Not readable after all: tokio has cleared the readiness; wait again.
                (None, _) => {}
            }
        }
    }

    /// Sends from `buf`; returns how many bytes went.
    pub fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_io(Interest::WRITABLE, || {
                // NOSIGNAL: a peer that went away is an error here, not a SIGPIPE.
                Ok(rustix::net::send(&self.0, buf, SendFlags::NOSIGNAL)?)
            }) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_send(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::future::poll_fn;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair() -> (Socket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, client) = tokio::join!(listener.accept(), client);
        (Socket::new(accepted.unwrap().0), client.unwrap())
    }

    #[tokio::test]
    async fn sends_and_receives_both_ways_and_sees_the_end() {
        let (socket, mut peer) = pair().await;
        peer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 64];
        let n = poll_fn(|cx| socket.poll_recv(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        let sent = poll_fn(|cx| socket.poll_send(cx, b"world")).await.unwrap();
        assert_eq!(sent, 5);
        let mut got = [0u8; 5];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"world");
        // A short read cleared the readiness: the next bytes must still wake the reader.
        let later = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            peer.write_all(b"again").await.unwrap();
            peer
        });
        let n = poll_fn(|cx| socket.poll_recv(cx, &mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"again");
        drop(later.await.unwrap());
        let n = poll_fn(|cx| socket.poll_recv(cx, &mut buf)).await.unwrap();
        assert_eq!(n, 0, "end of stream");
    }

    #[tokio::test]
    async fn a_large_send_fills_the_socket_and_resumes() {
        let (socket, mut peer) = pair().await;
        let data = vec![7u8; 8 << 20];
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).await.unwrap();
            all
        });
        let mut socket = socket;
        socket.write_all(&data).await.unwrap();
        socket.shutdown().await.unwrap();
        drop(socket);
        assert_eq!(reader.await.unwrap(), data);
    }
}
