//! A Proxy-Wasm host for hyper/tower servers: plugins built with any Proxy-Wasm SDK (ABI
//! 0.2.0/0.2.1) run on wasmtime, see every request that goes through the layer, and define
//! metrics that appear in the server's Prometheus registry. The host knows nothing of the
//! server it runs in: it takes `Request<Body>`, gives `Response<Body>`, and reads two request
//! extensions the server may insert, [`RouteTemplate`] and `serve::Peer`. One response extension
//! goes the other way: [`BrokenBody`], on the 502 that replaces a response whose body broke off
//! while plugins were buffering it.
//!
//! # Interface
//! - **Load a plugin set**: [`WasmRuntime::new`] once per process (engine, hostcalls, metrics
//!   registered into the given registry; [`CompileOptions`] say where modules are compiled and
//!   cached, and a binary that has a child process compile them answers that child's call with
//!   [`compile_into_cache`]), then [`PluginSet::load`] with [`PluginConfig`]s (the
//!   `[[plugins]]` entries of a TOML file; [`PluginSet::resolve`] makes their paths relative to
//!   it) and [`WasmRuntime::set_clusters`] with the [`ClusterConfig`]s HTTP and gRPC callouts
//!   may target
//!   (on reload too, through [`PluginSet::runtime`]).
//! - **Run a request through it**: [`PluginLayer`], a tower layer over any
//!   `Service<Request<Body>, Response = Response<Body>, Error = Infallible>` ([`Body`], [`full`],
//!   [`empty`]).
//! - **Scrape its metrics**: encode the registry given to [`WasmRuntime::new`]; plugin-defined
//!   families are a collector there, the host's own are `sidecar_plugin_*`.
//!   [`WasmRuntime::retain_metrics`] drops the families of plugins no longer loaded.
//! - **Reload**: [`PluginSet::reload`], or [`PluginSet::prepare`] then [`PluginSet::commit`] to
//!   load everything before anything changes; in-flight requests finish on the old plugins.
//!
//! [`test_support`] reaches below the interface, for tests and benchmarks only: the loaded
//! plugins themselves (the reload tests compare them by identity) and one plugin's callbacks
//! driven by hand (the `plugin_callback` benchmark).
//!
//! # Modules
//! - `abi`: the ABI's enumerations, exact numbering.
//! - `config`: a `[[plugins]]` entry.
//! - `runtime`: engine, linker, epoch ticker, shared data and metrics, built once; loads plugins.
//! - `compile`: where modules are compiled (a child process, through the compiled-module cache,
//!   or a thread of this one).
//! - `plugin`: one compiled plugin and its pool of warm instances; faults and backoff.
//! - `instance`: one instance's store, exports and lifecycle; every guest call.
//! - `host`: the hostcalls, one file per family (with `unsupported` and `wasi`); `memory`,
//!   `pairs`, `properties` their data formats; `state` what hostcalls can see; `stream` one
//!   request inside one plugin.
//! - `metrics`: plugin-defined metrics, their names, and the host's own `sidecar_plugin_*`.
//! - `filter`: the tower layer that calls plugins around each request; `body` the body type and
//!   the buffering of bodies for plugins that asked for them; `set`: the live plugin set and its
//!   reload.
//! - `limits`: memory limit and CPU deadline; `shared_data`: `proxy_*_shared_data`; `queues`:
//!   shared queues; `cluster` and `callout`: HTTP callouts to `[[clusters]]`; `grpc_call` and
//!   `grpc_stream`: unary gRPC callouts and gRPC streams to the same clusters, over h2c.

// What is not reachable from here is `pub(crate)`, so the interface stays what this page says
// and dead code shows.
#![warn(unreachable_pub)]

use std::sync::Arc;

mod abi;
mod body;
mod callout;
mod cluster;
mod compile;
mod config;
mod filter;
mod grpc_call;
mod grpc_stream;
mod host;
mod instance;
mod limits;
mod memory;
mod metrics;
mod pairs;
mod plugin;
mod properties;
mod queues;
mod runtime;
mod set;
mod shared_data;
mod state;
mod stream;
pub mod test_support;

pub use body::{Body, BoxError, empty, full};
pub use cluster::ClusterConfig;
pub use compile::{ChildCommand, CompileOptions, compile_into_cache};
pub use config::{LabelConvention, PluginConfig, PluginKind, TagRegex};
pub use filter::{PluginLayer, PluginService};
pub use runtime::WasmRuntime;
pub use set::{PluginSet, PreparedReload};

/// On the 502 the [`PluginLayer`] answers when the inner service's response body failed while
/// plugins were buffering it (nothing had reached the client yet, so a clean error can still
/// replace it): the body's error, for the server to classify and answer in its own way.
#[derive(Clone, Debug)]
pub struct BrokenBody(pub Arc<BoxError>);

/// The route template a request matched (e.g. `/items/{id}`), which plugins read as the
/// `route_name` property. The server inserts it into the request's extensions before the
/// [`PluginLayer`], only when a template matched; the layer takes it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate(pub Arc<str>);
