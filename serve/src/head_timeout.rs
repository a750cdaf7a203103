//! The slowloris guard: a connection gets `header_read_timeout` to send each request head, from
//! when it opens and from when the previous response is done, to when the head is in.
//!
//! Why not hyper's own header-read timeout: it boxes a sleep for every request and makes the
//! connection go once more round its read loop after each head, whatever the timer behind it;
//! measured at 0.1 to 0.15 µs per request in the sidecar. Here the connection keeps one
//! [`Deadline`]: the service call disarms it (a head arrived), dropping the response body arms it
//! again (the connection waits for the next head), and the connection's future checks it on
//! every poll. A connection past its deadline is closed without an answer, as nginx does for its
//! `client_header_timeout`.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::deadlines::Deadline;

/// One connection's request-head deadline.
#[derive(Clone, Debug)]
pub(crate) struct HeadClock {
    deadline: Arc<Deadline>,
    timeout: Duration,
}

impl HeadClock {
    /// A clock already waiting for the connection's first head.
    pub(crate) fn start(deadline: Deadline, timeout: Duration) -> Self {
        deadline.arm_after(timeout);
        Self {
            deadline: Arc::new(deadline),
            timeout,
        }
    }

    /// A request head is in.
    pub(crate) fn head_arrived(&self) {
        self.deadline.disarm();
    }

    /// Whether the connection is past its deadline (it is being closed for it).
    pub(crate) fn ran_out(&self) -> bool {
        self.deadline.is_due()
    }

    /// The connection now waits for the next head.
    fn waiting(&self) {
        self.deadline.arm_after(self.timeout);
    }
}

/// Why a connection ended with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("no complete request head within the header-read timeout")]
    HeadTimeout,
}

pin_project! {
    /// A connection that is dropped once its [`HeadClock`] runs out.
    pub(crate) struct Guarded<C> {
        #[pin]
        connection: C,
        clock: HeadClock,
        registered: bool,
    }
}

impl<C> Guarded<C> {
    /// `connection`, under `clock`. Poll it from one task: it keeps the first waker.
    pub(crate) fn new(connection: C, clock: HeadClock) -> Self {
        Self {
            connection,
            clock,
            registered: false,
        }
    }
}

impl<C: Future<Output = Result<(), hyper::Error>>> Future for Guarded<C> {
    type Output = Result<(), ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if !*this.registered {
            this.clock.deadline.register(cx.waker());
            *this.registered = true;
        }
        if this.clock.deadline.is_due() {
            return Poll::Ready(Err(ConnError::HeadTimeout));
        }
        this.connection.poll(cx).map_err(ConnError::Http)
    }
}

pin_project! {
    /// A response body that starts the wait for the next head when the connection is done
    /// with it.
    pub(crate) struct ConnBody<B> {
        #[pin]
        inner: B,
        clock: HeadClock,
    }

    impl<B> PinnedDrop for ConnBody<B> {
        fn drop(this: Pin<&mut Self>) {
            this.project().clock.waiting();
        }
    }
}

impl<B> ConnBody<B> {
    pub(crate) fn new(inner: B, clock: HeadClock) -> Self {
        Self { inner, clock }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for ConnBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
