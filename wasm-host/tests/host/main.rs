//! The Proxy-Wasm host alone, with no proxy: hand-written WAT modules (`tests/wat/`) through
//! the real plugin layer in front of an in-process tower upstream (`host_abi`, `faults`),
//! reloads of the plugin set (`reload`), where modules are compiled (`compile`), and an
//! AssemblyScript plugin's known load failure (`assemblyscript`). Plugins in the whole sidecar are `sidecar/tests/plugins/`.
#![allow(clippy::unwrap_used)]

mod assemblyscript;
mod compile;
mod faults;
mod host_abi;
mod logs;
mod reload;
mod support;
