//! Proxy-Wasm plugins in the real sidecar: the real example plugins built by `plugins/build`
//! in front of the real items API (`end_to_end`), and a plugin built with the SDK that faults
//! on demand in front of a tiny real upstream (`fault_drill`); SDK-built plugins that call out
//! to a real auth service (`callouts`), count through shared queues in a singleton service
//! (`services`), and read trailers or reply late (`trailers`); an AssemblyScript plugin next
//! to a Rust one (`assemblyscript`). The host alone (WAT modules, faults, reload) is tested in
//! `wasm-host/tests/host/`.
#![allow(clippy::unwrap_used)]

mod assemblyscript;
mod callouts;
mod end_to_end;
mod fault_drill;
mod scripted;
mod services;
mod stack;
mod trailers;
mod upstream;
