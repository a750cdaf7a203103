//! The sidecar's part of a trace: read the caller's W3C `traceparent`, decide (follow a
//! parent's decision, or sample a new trace at the configured ratio), send `traceparent` on to
//! the upstream with the sidecar's own span as the parent, and record that span when the
//! request ends. `tracestate` goes on untouched, unless its `traceparent` was malformed.
//!
//! An unsampled request costs a header lookup and allocates nothing: its `traceparent`, if
//! any, goes on as it came (the trace is not recorded here, so the caller's span stays the
//! parent).

use std::{borrow::Cow, time::SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use traces::{Kind, Sampler, Span, SpanContext, SpanSink, Value};

/// `traceparent`.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Sampling and span export, shared by every worker.
#[derive(Clone, Debug)]
pub(crate) struct Tracing {
    sampler: Sampler,
    sink: SpanSink,
}

/// A sampled request's span, until the request ends.
#[derive(Debug)]
pub(crate) struct Traced {
    /// Its ids.
    pub context: SpanContext,
    start: SystemTime,
}

/// How a traced request ended.
#[derive(Debug)]
pub(crate) struct Ending<'a> {
    /// The `handler` label (route template or `none`).
    pub route: &'a str,
    /// The `method` label.
    pub method: &'static str,
    /// The status sent, `None` when the client went away first.
    pub status: Option<StatusCode>,
    /// The sidecar answered for a failed upstream, or the body broke off.
    pub error_type: Option<&'static str>,
    /// From the request headers to the end of the response body.
    pub elapsed: std::time::Duration,
}

impl Tracing {
    /// Samples with `sampler`, exports to `sink`.
    pub(crate) fn new(sampler: Sampler, sink: SpanSink) -> Self {
        Self { sampler, sink }
    }

    /// Decides for a request with `headers` and rewrites its trace headers for the upstream:
    /// a sampled request gets `traceparent` naming the sidecar's span; a malformed
    /// `traceparent` and its `tracestate` are removed.
    pub(crate) fn begin(&self, headers: &mut HeaderMap) -> Option<Traced> {
        let decision = self
            .sampler
            .decide(headers.get(TRACEPARENT).map(HeaderValue::as_bytes));
        if decision.malformed {
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
        }
        let context = decision.span?;
        if let Ok(value) = HeaderValue::from_bytes(&context.traceparent()) {
            headers.insert(TRACEPARENT, value);
        }
        Some(Traced {
            context,
            start: SystemTime::now(),
        })
    }

    /// Records the span of a traced request that ended.
    pub(crate) fn end(&self, traced: &Traced, ending: &Ending<'_>) {
        if !self.sink.is_enabled() {
            return;
        }
        let mut attributes = vec![
            (
                "http.request.method",
                Value::Str(Cow::Borrowed(ending.method)),
            ),
            (
                "http.route",
                Value::Str(Cow::Owned(ending.route.to_owned())),
            ),
        ];
        if let Some(status) = ending.status {
            attributes.push((
                "http.response.status_code",
                Value::Int(status.as_u16().into()),
            ));
        }
        if let Some(error_type) = ending.error_type {
            attributes.push(("error.type", Value::Str(Cow::Borrowed(error_type))));
        }
        self.sink.record(Span {
            context: traced.context,
            name: Cow::Owned(format!("{} {}", ending.method, ending.route)),
            kind: Kind::Server,
            start: traced.start,
            end: traced.start + ending.elapsed,
            attributes,
            error: ending.error_type.is_some() || ending.status.is_none_or(|s| s.is_server_error()),
        });
    }
}
