//! The sidecar's integration tests: one binary, real servers on 127.0.0.1:0.

#![allow(clippy::unwrap_used)]

mod admin;
mod broken_bodies;
mod cardinality;
mod early_answer;
mod exposition;
mod failures;
mod forwarding;
mod grpc;
mod grpc_reflection;
mod http2;
mod openapi;
mod otel_names;
mod process;
mod red;
mod semantics;
mod shutdown;
mod smuggling;
mod stub;
mod support;
mod tracing;
mod tracing_tls;
mod websocket;
mod websocket_h2;
