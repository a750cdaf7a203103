//! A finished span as the processes record it, and its OTLP protobuf form.

use std::{borrow::Cow, time::SystemTime};

use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::{self as otlp, ResourceSpans, ScopeSpans, span::SpanKind, status::StatusCode},
};

use crate::sampler::SpanContext;

/// The span kinds the processes record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Handling a request that came in.
    Server,
    /// A call out (the sidecar's upstream leg, the api's statements).
    Client,
}

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(Cow<'static, str>),
    /// An integer.
    Int(i64),
}

/// One finished span.
#[derive(Clone, Debug)]
pub struct Span {
    /// Its ids and its parent's.
    pub context: SpanContext,
    /// What it did: `GET /items/{id}`, `SELECT items`.
    pub name: Cow<'static, str>,
    /// Server or client.
    pub kind: Kind,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Semantic-convention attributes (`http.route`, `db.operation.name`, ...).
    pub attributes: Vec<(&'static str, Value)>,
    /// It failed (a 5xx, a failed statement).
    pub error: bool,
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn key_value(key: &str, value: Value) -> KeyValue {
    let value = match value {
        Value::Str(text) => any_value::Value::StringValue(text.into_owned()),
        Value::Int(n) => any_value::Value::IntValue(n),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

impl Span {
    fn into_otlp(self) -> otlp::Span {
        otlp::Span {
            trace_id: self.context.trace_id.0.to_vec(),
            span_id: self.context.span_id.0.to_vec(),
            parent_span_id: self
                .context
                .parent
                .map(|p| p.0.to_vec())
                .unwrap_or_default(),
            // Bit 0 of the W3C trace flags: sampled (every span we export is).
            flags: 1,
            name: self.name.into_owned(),
            kind: match self.kind {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            } as i32,
            start_time_unix_nano: nanos(self.start),
            end_time_unix_nano: nanos(self.end),
            attributes: (self.attributes.into_iter())
                .map(|(key, value)| key_value(key, value))
                .collect(),
            status: self.error.then(|| otlp::Status {
                code: StatusCode::Error as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// One export request: `spans` from the service `service_name`.
pub fn export_request(service_name: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![key_value(
                    "service.name",
                    Value::Str(service_name.to_owned().into()),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "redside".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                spans: spans.into_iter().map(Span::into_otlp).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::sampler::Sampler;

    #[test]
    fn a_span_encodes_with_its_ids_kind_times_and_attributes() {
        let context = Sampler::new(1.0).decide(None).span.unwrap().child();
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let span = Span {
            context,
            name: "SELECT items".into(),
            kind: Kind::Client,
            start,
            end: start + std::time::Duration::from_millis(2),
            attributes: vec![("db.operation.name", Value::Str("select".into()))],
            error: true,
        };
        let bytes = export_request("api", vec![span]).encode_to_vec();
        let decoded = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let resource = &decoded.resource_spans[0];
        let service = &resource.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let span = &resource.scope_spans[0].spans[0];
        assert_eq!(span.trace_id, context.trace_id.0);
        assert_eq!(span.parent_span_id, context.parent.unwrap().0);
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.start_time_unix_nano, 1_500_000_000);
        assert_eq!(span.end_time_unix_nano, 1_502_000_000);
        assert_eq!(span.attributes[0].key, "db.operation.name");
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
    }
}
