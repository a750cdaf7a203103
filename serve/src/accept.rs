//! Where [`serve`](crate::serve) gets its connections: straight from a listening socket, or
//! handed over by a [`Spreader`] that accepts for several single-threaded runtimes.
//!
//! Why hand connections over instead of letting every runtime accept on a clone of the socket:
//! with a shared socket, whichever thread wakes first takes the connection, so under load the
//! busiest thread (the one already awake) takes more than its share. Measured with 64 keep-alive
//! connections and two proxy workers: one worker spent 1.5 times the other's CPU while the other
//! sat idle part of the time (nginx avoids this with `EPOLLEXCLUSIVE`). One acceptor that deals
//! connections out in turn keeps the workers even; it costs one channel send per connection, not
//! per request.

use std::{future::Future, io, net::SocketAddr, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tracing::{debug, warn};

/// A source of accepted connections.
pub trait Accept {
    /// The next connection, or `None` when there will be no more.
    fn accept(&mut self) -> impl Future<Output = Option<io::Result<(TcpStream, SocketAddr)>>>;

    /// The address connections arrive on, for logs.
    fn local_addr(&self) -> Option<SocketAddr>;
}

impl Accept for TcpListener {
    async fn accept(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        Some(TcpListener::accept(self).await)
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        TcpListener::local_addr(self).ok()
    }
}

type Handed = (std::net::TcpStream, SocketAddr);

/// The connections a [`Spreader`] deals to one runtime. Use it inside that runtime: each
/// connection is registered with the runtime that awaits [`Accept::accept`].
#[derive(Debug)]
pub struct Handoff {
    connections: mpsc::UnboundedReceiver<Handed>,
    local: Option<SocketAddr>,
}

impl Accept for Handoff {
    async fn accept(&mut self) -> Option<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, remote) = self.connections.recv().await?;
        Some(TcpStream::from_std(stream).map(|stream| (stream, remote)))
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

/// Accepts on one socket and deals the connections to `n` [`Handoff`]s in turn.
#[derive(Debug)]
pub struct Spreader {
    listener: TcpListener,
    outputs: Vec<mpsc::UnboundedSender<Handed>>,
}

impl Spreader {
    /// A spreader over `listener` and its `n` handoffs (at least one).
    pub fn new(listener: TcpListener, n: usize) -> (Self, Vec<Handoff>) {
        let local = listener.local_addr().ok();
        let (outputs, handoffs) = (0..n.max(1))
            .map(|_| {
                let (send, connections) = mpsc::unbounded_channel();
                (send, Handoff { connections, local })
            })
            .unzip();
        (Self { listener, outputs }, handoffs)
    }

    /// Accepts until `stop` completes or every handoff is gone, then closes the socket, so the
    /// handoffs end once they have taken what was already dealt.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let Self { listener, outputs } = self;
        let mut stop = std::pin::pin!(stop);
        let mut turn = 0;
        loop {
            let (stream, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => { backoff(error).await; continue; }
                },
                () = &mut stop => return,
            };
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            // The next open handoff in turn; a handoff whose runtime is gone is skipped.
            let mut handed = (stream, remote);
            let mut delivered = false;
            for _ in 0..outputs.len() {
                let output = &outputs[turn];
                turn = (turn + 1) % outputs.len();
                match output.send(handed) {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(mpsc::error::SendError(back)) => handed = back,
                }
            }
            if !delivered {
                return debug!("every handoff is closed; stop accepting");
            }
        }
    }
}

/// Errors from `accept` that concern one connection are skipped; resource exhaustion (EMFILE)
/// is waited out, because spinning on it would starve the connections we already have.
pub(crate) async fn backoff(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        debug!(%error, "accept failed for one connection");
    } else {
        warn!(%error, "accept failed; backing off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
