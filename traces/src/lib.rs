//! Traces for both processes: W3C trace context in, a sampling decision, spans recorded and
//! exported over OTLP/HTTP.
//!
//! - [`context`]: `traceparent` parsed and written; trace and span ids.
//! - [`sampler`]: follow the parent's decision, or sample new traces at a ratio.
//! - [`span`]: a finished span and its OTLP protobuf form (the official definitions, from
//!   `opentelemetry-proto`).
//! - [`export`]: the bounded queue and the batching export task; drops are counted.
//! - [`tls`]: the roots an `https://` endpoint is verified against, and the connector.
//! - [`settings`]: the shared flags and the standard `OTEL_*` environment variables.

pub mod context;
pub mod export;
pub mod sampler;
pub mod settings;
pub mod span;
pub mod tls;

pub use context::{SpanId, TraceId, TraceParent};
pub use export::{Compression, Export, SpanSink};
pub use sampler::{Decision, Sampler, SpanContext};
pub use settings::{Settings, SettingsError, TracingArgs};
pub use span::{Kind, Span, Value};
pub use tls::Roots;
