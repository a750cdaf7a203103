//! The Proxy-Wasm host: plugins built with any Proxy-Wasm SDK (ABI 0.2.0/0.2.1) run inside the
//! sidecar on wasmtime, see every proxied request, and define metrics that appear on `/metrics`.
//!
//! - [`abi`]: the ABI's enumerations, exact numbering.
//! - [`config`]: a `[[plugins]]` entry of the sidecar's TOML file.
//! - [`runtime`]: engine, linker, epoch ticker, shared data and metrics, built once; loads plugins.
//! - [`plugin`]: one compiled plugin and its pool of warm instances; faults and backoff.
//! - [`instance`]: one instance's store, exports and lifecycle; every guest call.
//! - [`host`]: the hostcalls, one file per family (with [`unsupported`] and [`wasi`]); [`memory`],
//!   [`pairs`], [`properties`] their data formats; [`state`] what hostcalls can see; [`stream`]
//!   one request inside one plugin.
//! - [`metrics`]: plugin-defined metrics, their names, and the host's own `sidecar_plugin_*`.
//! - [`filter`]: the tower layer that calls plugins around each request; [`body`] buffers
//!   bodies for plugins that asked for them; [`set`]: the live plugin set and its reload.
//! - [`limits`]: memory limit and CPU deadline; [`shared_data`]: `proxy_*_shared_data`;
//!   [`queues`]: shared queues; [`cluster`] and [`callout`]: HTTP callouts to `[[clusters]]`.

pub mod abi;
pub mod body;
pub mod callout;
pub mod cluster;
pub mod config;
pub mod filter;
pub mod host;
pub mod instance;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod pairs;
pub mod plugin;
pub mod properties;
pub mod queues;
pub mod runtime;
pub mod set;
pub mod shared_data;
pub mod state;
pub mod stream;

pub use cluster::ClusterConfig;
pub use config::{PluginConfig, PluginKind};
pub use filter::{PluginLayer, PluginService};
pub use runtime::WasmRuntime;
pub use set::PluginSet;

// The stubs and the WASI subset moved in with the other hostcalls; their old paths still work.
pub use host::{unsupported, wasi};
