//! Proxy-Wasm plugins in the real sidecar (`sidecar`: in-process, on 127.0.0.1:0): a plugin
//! built with the SDK that faults on demand in front of a tiny real upstream (`fault_drill`);
//! SDK-built plugins that call out to a real auth service (`callouts`) or a real gRPC health
//! service (`grpc_callouts`, and a stream from it: `grpc_streams`), count through shared
//! queues in a singleton service (`services`), and read trailers or reply late (`trailers`); an
//! AssemblyScript plugin next to a Rust one (`assemblyscript`). The host alone (WAT modules,
//! faults, reload) is tested in `wasm-host/tests/host/`; the example plugins in front of the
//! real items API in `e2e/tests/in_process/plugins.rs`.
#![allow(clippy::unwrap_used)]

mod assemblyscript;
mod callouts;
mod fault_drill;
mod grpc_callouts;
mod grpc_streams;
mod scripted;
mod services;
mod sidecar;
mod trailers;
mod upstream;
