//! Proxy-Wasm host tests: hand-written WAT modules through the real plugin layer (`host_abi`,
//! `faults`), and the real example plugins built by `plugins/build` in the real sidecar in front
//! of the real items API (`end_to_end`).
#![allow(clippy::unwrap_used)]

mod end_to_end;
mod faults;
mod host_abi;
mod logs;
mod reload;
mod stack;
mod support;
