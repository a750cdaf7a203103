//! Bodies around plugins: collecting a body for a plugin that asked to see it (up to a limit;
//! past it the body streams on unobserved, its first bytes replayed), and the response body
//! wrapper that runs the end-of-request callbacks (`on_log` → `on_done` → `on_delete`) when the
//! body has been sent or dropped, as Envoy does when the stream is destroyed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// A boxed error, as `http-body` combinators want it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type the plugin layer takes and gives: a boxed streaming body. `Unsync` because
/// hyper only needs `Send`. The same type as a hyper/tower server's usual boxed body, so the
/// layer sits in a stack of such services without conversions.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes` whole (local responses, tests).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// What collecting found.
pub(crate) enum Collected {
    /// The whole body, within the limit.
    Complete {
        /// Data.
        data: Bytes,
        /// Trailers, if any.
        trailers: Option<HeaderMap>,
    },
    /// Over the limit: the original body, unchanged for the receiver.
    TooLarge(Body),
    /// Reading failed: the frames read before the error, and the error.
    Failed(VecDeque<Frame<Bytes>>, BoxError),
}

/// Reads `body` whole if it fits in `limit` bytes.
pub(crate) async fn collect(mut body: Body, limit: usize) -> Collected {
    if body.size_hint().lower() > limit as u64 {
        return Collected::TooLarge(body);
    }
    let mut seen: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut data = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Collected::Failed(seen, error),
        };
        if let Some(chunk) = frame.data_ref() {
            data.extend_from_slice(chunk);
        } else if let Some(t) = frame.trailers_ref() {
            trailers = Some(t.clone());
        }
        seen.push_back(frame);
        if data.len() > limit {
            return Collected::TooLarge(
                Prefixed {
                    prefix: seen,
                    rest: body,
                }
                .boxed_unsync(),
            );
        }
    }
    Collected::Complete {
        data: data.freeze(),
        trailers,
    }
}

/// A body of `data` then `trailers`.
pub(crate) fn rebuild(data: Bytes, trailers: Option<HeaderMap>) -> Body {
    let mut frames = VecDeque::new();
    if !data.is_empty() {
        frames.push_back(Frame::data(data));
    }
    if let Some(trailers) = trailers {
        frames.push_back(Frame::trailers(trailers));
    }
    Prefixed {
        prefix: frames,
        rest: empty(),
    }
    .boxed_unsync()
}

/// A body that replays the frames `read` and then fails with `error`, as the original did.
pub(crate) fn replay_failed(read: VecDeque<Frame<Bytes>>, error: BoxError) -> Body {
    let rest = http_body_util::StreamBody::new(futures_util::stream::once(async move {
        Err::<Frame<Bytes>, _>(error)
    }))
    .boxed_unsync();
    Prefixed { prefix: read, rest }.boxed_unsync()
}

/// Frames already read, then the rest of the body.
struct Prefixed {
    prefix: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.prefix.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .prefix
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + buffered);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + buffered);
        }
        hint
    }
}

/// A response body that reports its end: `on_end` is called once when the body ends or is
/// dropped, with the bytes sent and the trailers. Generic over the callback, so wrapping costs
/// one allocation (the body's box), not two.
pub(crate) struct Observed<F: FnOnce(u64, Option<HeaderMap>)> {
    inner: Body,
    sent: u64,
    trailers: Option<HeaderMap>,
    on_end: Option<F>,
}

impl<F: FnOnce(u64, Option<HeaderMap>) + Send + Unpin + 'static> Observed<F> {
    /// Wraps `inner`; `on_end` runs at the end of the stream or on drop, whichever is first.
    pub(crate) fn wrap(inner: Body, on_end: F) -> Body {
        Observed {
            inner,
            sent: 0,
            trailers: None,
            on_end: Some(on_end),
        }
        .boxed_unsync()
    }
}

impl<F: FnOnce(u64, Option<HeaderMap>)> Observed<F> {
    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent, self.trailers.take());
        }
    }
}

impl<F: FnOnce(u64, Option<HeaderMap>) + Unpin> http_body::Body for Observed<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    self.trailers = Some(trailers.clone());
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<F: FnOnce(u64, Option<HeaderMap>)> Drop for Observed<F> {
    fn drop(&mut self) {
        self.finish();
    }
}
