//! The upstream's response body as the client receives it: read straight from the upstream
//! connection, which goes back where it came from (a [`ConnHome`]: the worker's pool) once the
//! body has been read to the end.
//!
//! Two guards: what the upstream sends at once with its head is read before the response is
//! handed to the client (a body that breaks right away, a `Content-Length` longer than what
//! came before the close, is then a 502 instead of an empty reply), and a body that stays
//! silent for the idle timeout fails (Envoy's stream idle timeout), so a stalled upstream
//! can't hold the client forever.

use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serve::Deadline;

use super::{
    conn::{BodyPiece, Conn},
    framing::Decoder,
};
use crate::body::BoxError;

/// Bytes read ahead before the response goes to the client, at the most.
const READ_AHEAD: usize = 64 * 1024;

/// The upstream sent no response body bytes for the idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no response body bytes for {0:?}")]
pub(crate) struct BodyIdleTimeout(pub Duration);

/// Where a connection goes once its response body has been read to the end.
pub(super) trait ConnHome {
    /// Takes `conn` back (or closes it, if it can't carry another request).
    fn give_back(&self, conn: Conn);
}

/// A response body being read from its connection.
pub(super) struct UpstreamBody<H> {
    /// `None` once the body ended or failed.
    conn: Option<(Conn, H)>,
    decoder: Decoder,
    /// Frames read ahead, handed out first.
    ahead: VecDeque<Frame<Bytes>>,
    /// Re-armed at every piece; `None` once the body ended.
    idle: Option<(Deadline, Duration)>,
}

impl<H: ConnHome> UpstreamBody<H> {
    pub(super) fn new(
        conn: Conn,
        home: H,
        decoder: Decoder,
        idle: Option<(Deadline, Duration)>,
    ) -> Self {
        if let Some((deadline, timeout)) = &idle {
            deadline.arm_after(*timeout);
        }
        Self {
            conn: Some((conn, home)),
            decoder,
            ahead: VecDeque::new(),
            idle,
        }
    }

    /// Reads what has already arrived (up to [`READ_AHEAD`] bytes) without waiting, so that a
    /// body that fails at once fails before anything has been sent to the client.
    pub(super) fn read_ahead(&mut self) -> Result<(), BoxError> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read = 0;
        while read < READ_AHEAD {
            match self.poll_upstream(&mut cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    read += frame.data_ref().map_or(0, Bytes::len);
                    let trailers = frame.is_trailers();
                    self.ahead.push_back(frame);
                    if trailers {
                        break;
                    }
                }
                Poll::Ready(Some(Err(error))) => return Err(error),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        Ok(())
    }

    fn poll_upstream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some((conn, _)) = self.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let piece = match conn.poll_body(cx, &mut self.decoder) {
            Poll::Ready(piece) => piece,
            Poll::Pending => {
                if let Some((deadline, timeout)) = &self.idle
                    && deadline.poll_due(cx).is_ready()
                {
                    let timeout = *timeout;
                    self.end();
                    return Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(timeout)))));
                }
                return Poll::Pending;
            }
        };
        if let Some((deadline, timeout)) = &self.idle {
            deadline.arm_after(*timeout);
        }
        Poll::Ready(match piece {
            Some(Ok(BodyPiece::Data(data))) => {
                if self.decoder.is_done() {
                    self.give_back();
                }
                Some(Ok(Frame::data(data)))
            }
            Some(Ok(BodyPiece::Trailers(trailers))) => Some(Ok(Frame::trailers(trailers))),
            Some(Err(error)) => {
                self.end();
                Some(Err(error))
            }
            None => {
                self.give_back();
                None
            }
        })
    }

    /// The body is read to its end: the connection goes back to the pool.
    fn give_back(&mut self) {
        if let Some((conn, home)) = self.conn.take() {
            home.give_back(conn);
        }
        self.idle = None;
    }

    /// The body failed: the connection is closed.
    fn end(&mut self) {
        self.conn = None;
        self.idle = None;
    }
}

impl<H: ConnHome + Unpin> http_body::Body for UpstreamBody<H> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = this.ahead.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        this.poll_upstream(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty() && self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        let ahead: u64 = (self.ahead.iter())
            .filter_map(|frame| frame.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        // Trailers read ahead must not turn into a `Content-Length` response, which has none.
        let trailers = self.ahead.iter().any(Frame::is_trailers);
        match self.decoder {
            Decoder::Length(left) => SizeHint::with_exact(left + ahead),
            Decoder::Done if !trailers => SizeHint::with_exact(ahead),
            _ => {
                let mut hint = SizeHint::default();
                hint.set_lower(ahead);
                hint
            }
        }
    }
}
