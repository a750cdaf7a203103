//! The api's part of a trace: it continues the caller's W3C trace context (the sidecar's, in
//! the stack), records a server span per request and a client span per database statement,
//! and puts the trace id in the request's log lines and on `db_query_duration_seconds`
//! exemplars.
//!
//! The request's span context travels to the statements in a task-local, so the handlers
//! between them need no extra parameter.

use std::{
    borrow::Cow,
    future::Future,
    time::{Duration, SystemTime},
};

use http::{HeaderMap, StatusCode};
use traces::{Kind, Sampler, Span, SpanContext, SpanSink, TraceId, TraceParent, Value};

use crate::metrics::Operation;

tokio::task_local! {
    static CURRENT: SpanContext;
}

/// The sampled request's span context, inside [`Tracing::scope`].
pub fn current() -> Option<SpanContext> {
    CURRENT.try_with(|context| *context).ok()
}

/// Sampling and span export, shared by every request.
#[derive(Clone, Debug)]
pub struct Tracing {
    sampler: Sampler,
    sink: SpanSink,
}

/// What a request's trace context says.
#[derive(Clone, Copy, Debug)]
pub struct Incoming {
    /// The trace id for the log lines: the sampled span's, or an unsampled caller's.
    pub log_id: Option<TraceId>,
    /// The request's span, when it is sampled.
    pub span: Option<SpanContext>,
}

impl Tracing {
    /// Samples with `sampler`, exports to `sink`.
    pub fn new(sampler: Sampler, sink: SpanSink) -> Self {
        Self { sampler, sink }
    }

    /// Where spans go.
    pub fn sink(&self) -> &SpanSink {
        &self.sink
    }

    /// The decision for a request with `headers`.
    pub fn begin(&self, headers: &HeaderMap) -> Incoming {
        let traceparent = headers.get("traceparent").map(|v| v.as_bytes());
        let span = self.sampler.decide(traceparent).span;
        let log_id = span.map(|s| s.trace_id).or_else(|| {
            traceparent
                .and_then(TraceParent::parse)
                .map(|parent| parent.trace_id)
        });
        Incoming { log_id, span }
    }

    /// Runs `future` with `context` as the current span, for the statements it makes.
    pub async fn scope<F: Future>(context: SpanContext, future: F) -> F::Output {
        CURRENT.scope(context, future).await
    }

    /// Records a finished request's server span.
    pub fn request_span(&self, context: SpanContext, request: RequestSpan) {
        let mut attributes = vec![
            (
                "http.request.method",
                Value::Str(request.method.clone().into()),
            ),
            (
                "http.response.status_code",
                Value::Int(request.status.as_u16().into()),
            ),
        ];
        let name = match request.route {
            Some(route) => {
                attributes.push(("http.route", Value::Str(Cow::Borrowed(route))));
                format!("{} {route}", request.method)
            }
            None => request.method,
        };
        self.sink.record(Span {
            context,
            name: name.into(),
            kind: Kind::Server,
            start: request.start,
            end: request.start + request.elapsed,
            attributes,
            error: request.status.is_server_error(),
        });
    }
}

/// A finished request, for its span.
#[derive(Debug)]
pub struct RequestSpan {
    /// The method.
    pub method: String,
    /// The route template, when the path matched one.
    pub route: Option<&'static str>,
    /// The status sent.
    pub status: StatusCode,
    /// When it started.
    pub start: SystemTime,
    /// How long it took.
    pub elapsed: Duration,
}

/// A statement's client span under `parent`, named as OpenTelemetry's database conventions
/// say: the SQL operation and the table (`SELECT items`).
pub fn statement_span(
    parent: SpanContext,
    operation: Operation,
    start: SystemTime,
    elapsed: Duration,
    failed: bool,
) -> Span {
    let (sql, table) = match operation {
        Operation::Insert => ("INSERT", Some("items")),
        Operation::Select | Operation::List => ("SELECT", Some("items")),
        Operation::Update => ("UPDATE", Some("items")),
        Operation::Delete => ("DELETE", Some("items")),
        Operation::Ping => ("SELECT", None),
        Operation::Schema => ("CREATE", Some("items")),
    };
    let mut attributes = vec![
        ("db.system.name", Value::Str("postgresql".into())),
        ("db.operation.name", Value::Str(sql.into())),
        // The `operation` label of db_query_duration_seconds, to go from the span to the series.
        (
            "redside.db.operation",
            Value::Str(operation.as_str().into()),
        ),
    ];
    if let Some(table) = table {
        attributes.push(("db.collection.name", Value::Str(table.into())));
    }
    Span {
        context: parent.child(),
        name: match table {
            Some(table) => format!("{sql} {table}").into(),
            None => sql.into(),
        },
        kind: Kind::Client,
        start,
        end: start + elapsed,
        attributes,
        error: failed,
    }
}
