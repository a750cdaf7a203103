//! One gRPC call in flight: its status as the RED layer reads it ([`CallStatus`]), the call
//! itself, counted as handled when its last part goes ([`Call`]), and its bodies, which count
//! messages and read the status from the trailers ([`Counted`]). A response stream the upstream
//! breaks off ends, for the client, with `grpc-status` 14 in trailers rather than a reset
//! stream (which gRPC clients read as INTERNAL): the client and the metrics then agree.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tokio::time::Instant;

use super::{
    messages::MessageCounter,
    metrics::{CallSeries, GrpcMetrics},
    status::{Code, GRPC_MESSAGE, GRPC_STATUS},
};
use crate::{
    body::{Body, BoxError, caused_by},
    proxy::BodyIdleTimeout,
};

/// A call's final gRPC status, for the RED layer: set when the response ends.
#[derive(Clone, Debug, Default)]
pub(crate) struct CallStatus(Arc<AtomicU8>);

const UNSET: u8 = u8::MAX;
/// Marks a code derived from the HTTP status of a response that carried none.
const DERIVED: u8 = 0x80;
/// Marks a response stream the upstream broke off (0x20: by going silent past the idle timeout).
const BROKEN: u8 = 0x40;
const BROKEN_IDLE: u8 = 0x20;
const FLAGS: u8 = DERIVED | BROKEN | BROKEN_IDLE;

impl CallStatus {
    pub(super) fn new() -> Self {
        Self(Arc::new(AtomicU8::new(UNSET)))
    }

    pub(super) fn set(&self, code: Code) {
        self.0.store(code.0, Relaxed);
    }

    pub(super) fn set_derived(&self, code: Code) {
        self.0.store(code.0 | DERIVED, Relaxed);
    }

    fn set_broken(&self, code: Code, idle: bool) {
        self.0.store(
            code.0 | BROKEN | if idle { BROKEN_IDLE } else { 0 },
            Relaxed,
        );
    }

    /// Whether the upstream broke the response stream off, and if so whether by going silent:
    /// still an upstream error in the RED family, though the client got a gRPC status.
    pub(crate) fn broken(&self) -> Option<bool> {
        let v = self.0.load(Relaxed);
        (v != UNSET && v & BROKEN != 0).then_some(v & BROKEN_IDLE != 0)
    }
    /// The code, once the call has ended.
    pub(crate) fn code(&self) -> Option<Code> {
        Some(self.0.load(Relaxed))
            .filter(|&c| c != UNSET)
            .map(|c| Code(c & !FLAGS))
    }

    /// Whether the code is one a gRPC peer sent (or the sidecar made, or the client's hang-up),
    /// rather than derived from a plain HTTP answer, whose own status then stands.
    pub(crate) fn is_grpc(&self) -> bool {
        self.0.load(Relaxed) & DERIVED == 0
    }
}

/// One gRPC call in flight. Counted as handled when the last part of it goes: usually the
/// response body at its end.
pub(super) struct Call {
    pub(super) metrics: GrpcMetrics,
    pub(super) series: CallSeries,
    pub(super) started: Instant,
    pub(super) received: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) status: CallStatus,
}

impl Drop for Call {
    fn drop(&mut self) {
        // A response that ended without a status (dropped by the client): cancelled.
        let code = self.status.code().unwrap_or_else(|| {
            self.status.set(Code::CANCELLED);
            Code::CANCELLED
        });
        (self.metrics).finish(&self.series, code, self.started.elapsed());
    }
}

/// A call's request or response body: counts its messages; the response's trailers give the
/// status.
pub(super) struct Counted {
    pub(super) inner: Body,
    pub(super) counter: MessageCounter,
    pub(super) call: Arc<Call>,
    pub(super) incoming: bool,
    /// The status trailers have been sent in place of the upstream's error.
    pub(super) ended: bool,
}

/// The trailers that end a response stream the upstream broke off.
fn broken_off(idle: bool) -> Frame<Bytes> {
    let mut trailers = HeaderMap::new();
    trailers.insert(
        GRPC_STATUS,
        HeaderValue::from(u16::from(Code::UNAVAILABLE.0)),
    );
    trailers.insert(
        GRPC_MESSAGE,
        HeaderValue::from_static(if idle {
            "upstream went silent mid-stream"
        } else {
            "upstream connection lost mid-stream"
        }),
    );
    Frame::trailers(trailers)
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let n = this.counter.feed(data);
                    if n > 0 {
                        let (series, total) = if this.incoming {
                            (&this.call.series.received, &this.call.received)
                        } else {
                            (&this.call.series.sent, &this.call.sent)
                        };
                        series.inc_by(n);
                        if total.fetch_add(n, Relaxed) + n > 1 {
                            GrpcMetrics::learn_streaming(&this.call.series, this.incoming);
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && !this.incoming
                {
                    this.call
                        .status
                        .set(Code::from_headers(trailers).unwrap_or(Code::UNKNOWN));
                }
            }
            // The upstream broke the stream: the call ends as unavailable, in trailers.
            Some(Err(error)) if !this.incoming => {
                let idle = caused_by::<BodyIdleTimeout>(error.as_ref());
                this.call.status.set_broken(Code::UNAVAILABLE, idle);
                this.ended = true;
                return Poll::Ready(Some(Ok(broken_off(idle))));
            }
            // The response ended without trailers: no status, which clients read as unknown.
            None if !this.incoming && this.call.status.code().is_none() => {
                this.call.status.set(Code::UNKNOWN);
            }
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
