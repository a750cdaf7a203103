//! The RED layer: the outermost service of the proxy stack. It routes the request (the
//! `handler` label; when a template matched, a [`RouteTemplate`] extension for the plugin host),
//! starts the clock when the request headers have arrived, and stops it when the response body
//! ends, counting body bytes both ways.
//!
//! For a gRPC call the recorded status is the HTTP equivalent of its `grpc-status`
//! ([`crate::grpc`]), so error ratios count calls that failed under HTTP 200.
//!
//! It also starts the sidecar's part of a trace ([`crate::trace`]): the `traceparent` sent
//! upstream, the span recorded when the request ends, the exemplar of a sampled request.
//!
//! Measurement ends in exactly one place, [`Recording`]'s drop: at the end of the response body,
//! or when the body or the response future is dropped early (the client went away). So
//! `http_requests_inprogress` goes down exactly once per request.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Instant;
use tower::{Layer, Service};
use wasm_host::RouteTemplate;

use crate::{
    body::{Body, BoxError, ClientBodyError, caused_by},
    error::ProxyError,
    grpc::{CallStatus, status::Code},
    metrics::{self, Metrics, Outcome, Started, WorkerMetrics, method_label},
    proxy::BodyIdleTimeout,
    routes::Routes,
    trace::{Ending, Traced, Tracing},
};

/// Wraps a service in [`Red`].
#[derive(Clone, Debug)]
pub(crate) struct RedLayer {
    metrics: Metrics,
    routes: Routes,
    tracing: Tracing,
}

impl RedLayer {
    /// Records into `metrics`, labelling with `routes`, tracing with `tracing`.
    pub(crate) fn new(metrics: Metrics, routes: Routes, tracing: Tracing) -> Self {
        Self {
            metrics,
            routes,
            tracing,
        }
    }
}

impl<S> Layer<S> for RedLayer {
    type Service = Red<S>;
    /// Each stack built (one per proxy worker) records into a shard of its own.
    fn layer(&self, inner: S) -> Red<S> {
        Red {
            inner,
            worker: Arc::new(RedWorker {
                metrics: self.metrics.worker(),
                routes: self.routes.clone(),
                tracing: self.tracing.clone(),
            }),
        }
    }
}

/// Records the RED family around `S`.
#[derive(Clone, Debug)]
pub(crate) struct Red<S> {
    inner: S,
    /// One per worker: the stack is cloned for every connection, and a clone should touch no
    /// count another core writes.
    worker: Arc<RedWorker>,
}

#[derive(Debug)]
struct RedWorker {
    metrics: WorkerMetrics,
    routes: Routes,
    tracing: Tracing,
}

impl<S> Service<Request<Incoming>> for Red<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<RedBody>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let worker = &*self.worker;
        let trace = (worker.tracing.begin(request.headers_mut()))
            .map(|traced| Box::new((worker.tracing.clone(), traced)));
        let method = method_label(request.method());
        let (series, templated) = worker.routes.lookup(request.uri().path(), |lookup| {
            if lookup.overflow {
                worker.metrics.route_overflowed();
            }
            (
                worker.metrics.start(lookup.handler, method),
                lookup.templated,
            )
        });
        // The worker's own copy of the label: cloning it touches no shared count.
        let route = templated.then(|| RouteTemplate(series.handler().clone()));
        let size = SizeTally {
            bytes: 0,
            series: series.clone(),
        };
        let recording = Recording {
            metrics: worker.metrics.clone(),
            series,
            outcome: Some(Outcome {
                status: None,
                error: None,
                body_error: None,
                elapsed: Default::default(),
                response_bytes: 0,
                trace: None,
            }),
            started,
            grpc: None,
            trace,
        };
        let (mut parts, body) = request.into_parts();
        if let Some(route) = route {
            parts.extensions.insert(route);
        }
        let body = if http_body::Body::is_end_stream(&body) {
            // No body (a GET, usually): nothing to count or to fail; no allocation either.
            drop(size);
            crate::body::empty()
        } else {
            Body::new(RequestBody { inner: body, size })
        };
        ResponseFuture {
            inner: self.inner.call(Request::from_parts(parts, body)),
            recording: Some(recording),
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Red`]: hands the recording over to the response body.
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<RedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(response) = ready!(this.inner.poll(cx));
        let mut recording = this
            .recording
            .take()
            .expect("ResponseFuture polled after completion");
        if let Some(outcome) = recording.outcome.as_mut() {
            outcome.status = Some(response.status());
            outcome.error = response.extensions().get::<ProxyError>().copied();
        }
        recording.grpc = response.extensions().get::<CallStatus>().cloned();
        Poll::Ready(Ok(response.map(|inner| RedBody { inner, recording })))
    }
}

/// One request's measurement; recorded when dropped.
struct Recording {
    metrics: WorkerMetrics,
    series: Started,
    outcome: Option<Outcome>,
    started: Instant,
    /// A gRPC call's status: its HTTP equivalent is the recorded status (the wire says 200).
    grpc: Option<CallStatus>,
    /// A sampled request's span; boxed so that unsampled requests carry one pointer, not the
    /// span's ids and clock.
    trace: Option<Box<(Tracing, Traced)>>,
}

impl Recording {
    fn finish(&mut self) {
        if let Some(mut outcome) = self.outcome.take() {
            outcome.elapsed = self.started.elapsed();
            // A plain HTTP answer to a gRPC call (an error page) keeps its own status; no
            // code yet means the client went away before the call ended.
            if let Some(grpc) = self.grpc.as_ref().filter(|grpc| grpc.is_grpc()) {
                outcome.status = Some(grpc.code().unwrap_or(Code::CANCELLED).http_status());
                if let Some(idle) = grpc.broken() {
                    outcome.body_error = Some(if idle {
                        metrics::BODY_TIMEOUT
                    } else {
                        metrics::BODY_ERROR
                    });
                }
            }
            if let Some((tracing, traced)) = self.trace.as_deref() {
                outcome.trace = Some(traced.context.trace_id);
                let error_type = match outcome.error {
                    Some(error) if error.is_upstream() => Some(error.error_type()),
                    _ => outcome.body_error,
                };
                tracing.end(
                    traced,
                    &Ending {
                        route: self.series.handler(),
                        method: self.series.method(),
                        status: outcome.status,
                        error_type,
                        elapsed: outcome.elapsed,
                    },
                );
            }
            self.metrics.finish(&self.series, outcome);
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The response body as sent to the client: counts bytes, ends the measurement.
pub(crate) struct RedBody {
    inner: Body,
    recording: Recording,
}

impl http_body::Body for RedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(data), Some(outcome)) =
                    (frame.data_ref(), this.recording.outcome.as_mut())
                {
                    outcome.response_bytes += data.len() as u64;
                }
            }
            Some(Err(error)) => {
                if let Some(outcome) = this.recording.outcome.as_mut() {
                    let idle = caused_by::<BodyIdleTimeout>(error.as_ref());
                    outcome.body_error = Some(if idle {
                        metrics::BODY_TIMEOUT
                    } else {
                        metrics::BODY_ERROR
                    });
                }
                this.recording.finish();
            }
            None => this.recording.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's request body: counts bytes and marks its errors as the client's.
struct RequestBody {
    inner: Incoming,
    size: SizeTally,
}

/// Observes the request size once, when the request body is done with.
struct SizeTally {
    bytes: u64,
    series: Started,
}

impl Drop for SizeTally {
    fn drop(&mut self) {
        self.series.request_size(self.bytes);
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.size.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => Poll::Ready(Some(Err(Box::new(ClientBodyError(error))))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
