//! Graceful shutdown of one accept loop's connections: tell each to finish its in-flight request
//! and close, then wait for them all.
//!
//! hyper-util's `GracefulShutdown` does the same with a `watch` channel whose change-future it
//! polls on every poll of every connection; each of those polls takes the channel's waiter lock.
//! A connection here registers its waker once and, per poll, reads one atomic flag.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use futures_util::task::AtomicWaker;
use hyper::{
    body::Incoming,
    rt::{Read, Write},
    server::conn::{http1, http2},
    service::HttpService,
};
use pin_project_lite::pin_project;
use tokio::sync::mpsc;

/// A connection that can be asked to finish its in-flight requests and close. (hyper-util's
/// `GracefulConnection` is sealed and leaves out HTTP/1 connections that allow upgrades.)
pub(crate) trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<I, B, S> GracefulConnection for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, B, S, E> GracefulConnection for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: Read + Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<BoxError>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        http2::Connection::graceful_shutdown(self);
    }
}

/// The connections of one accept loop.
pub(crate) struct Drain {
    shared: Arc<Shared>,
    /// Every watched connection holds a clone; `closed` sees the last one go.
    live: mpsc::Sender<()>,
    closed: mpsc::Receiver<()>,
}

struct Shared {
    stopping: AtomicBool,
    connections: Mutex<Vec<Weak<AtomicWaker>>>,
}

impl Drain {
    pub(crate) fn new() -> Self {
        let (live, closed) = mpsc::channel(1);
        Self {
            shared: Arc::new(Shared {
                stopping: AtomicBool::new(false),
                connections: Mutex::new(Vec::new()),
            }),
            live,
            closed,
        }
    }

    /// A handle that watches connections for this drain from another task.
    pub(crate) fn watcher(&self) -> Watcher {
        Watcher {
            shared: Arc::clone(&self.shared),
            live: self.live.clone(),
        }
    }

    /// Tells every connection to finish and close; completes when they all have.
    pub(crate) async fn shutdown(self) {
        let Self {
            shared,
            live,
            mut closed,
        } = self;
        shared.stopping.store(true, Ordering::Release);
        let wakers: Vec<_> = shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .filter_map(|waker| waker.upgrade())
            .collect();
        for waker in wakers {
            waker.wake();
        }
        drop(live);
        // Nothing is ever sent: `None` once every connection's sender is gone.
        let _ = closed.recv().await;
    }
}

/// Watches connections for a [`Drain`]; the drain's shutdown waits for every clone to go.
#[derive(Clone)]
pub(crate) struct Watcher {
    shared: Arc<Shared>,
    live: mpsc::Sender<()>,
}

impl Watcher {
    /// `connection`, told to shut down gracefully when [`Drain::shutdown`] is called. Poll it
    /// from one task: it keeps the first waker it is polled with.
    pub(crate) fn watch<C: GracefulConnection>(self, connection: C) -> Watched<C> {
        let waker = Arc::new(AtomicWaker::new());
        {
            let mut connections = self
                .shared
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Forget closed connections now and then: amortised, the list stays within twice
            // the number open.
            if connections.len() >= 64 && connections.len().is_power_of_two() {
                connections.retain(|waker| waker.strong_count() > 0);
            }
            connections.push(Arc::downgrade(&waker));
        }
        Watched {
            connection,
            waker,
            shared: self.shared,
            _live: self.live,
            state: State::Fresh,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    Watching,
    Told,
}

pin_project! {
    /// A connection under a [`Drain`].
    pub(crate) struct Watched<C> {
        #[pin]
        connection: C,
        waker: Arc<AtomicWaker>,
        shared: Arc<Shared>,
        _live: mpsc::Sender<()>,
        state: State,
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = Result<(), hyper::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if *this.state != State::Told {
            if *this.state == State::Fresh {
                // Before the first look at the flag, so a shutdown after it still wakes us.
                this.waker.register(cx.waker());
                *this.state = State::Watching;
            }
            if this.shared.stopping.load(Ordering::Acquire) {
                this.connection.as_mut().graceful_shutdown();
                *this.state = State::Told;
            }
        }
        this.connection.poll(cx)
    }
}
