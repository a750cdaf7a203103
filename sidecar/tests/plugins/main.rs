//! Proxy-Wasm host tests: hand-written WAT modules through the real plugin layer (`host_abi`,
//! `faults`), and the real example plugins built by `plugins/build` in the real sidecar in front
//! of the real items API (`end_to_end`), and a plugin built with the SDK that faults on demand
//! in the real sidecar in front of a tiny real upstream (`fault_drill`); SDK-built plugins that
//! call out to a real auth service (`callouts`), count through shared queues in a singleton
//! service (`services`), and read trailers or reply late (`trailers`); an AssemblyScript plugin
//! next to a Rust one (`assemblyscript`).
#![allow(clippy::unwrap_used)]

mod assemblyscript;
mod callouts;
mod end_to_end;
mod fault_drill;
mod faults;
mod host_abi;
mod logs;
mod reload;
mod scripted;
mod services;
mod stack;
mod support;
mod trailers;
mod upstream;
