//! Configuration: four command-line flags (with environment fallbacks) for what differs between
//! deployments, and a TOML file for routes, limits, metric options and plugins.
//!
//! ```toml
//! openapi = { url_path = "/openapi.json", required = false }
//! grpc_reflection = { required = false }   # gRPC method labels from the upstream's reflection
//!
//! [[routes]]
//! template = "/items/{id}"
//!
//! [limits]
//! connect_timeout = "2s"          # durations: "250ms", "5s", "1m", or an integer of milliseconds
//! response_header_timeout = "30s"
//!
//! [metrics]
//! names = "prometheus"            # or "otel": the OpenTelemetry semantic conventions' names
//! status = "grouped"              # or "raw"
//!
//! [protocols]
//! upstream = "auto"               # HTTP/2 to the upstream when the client speaks it
//! ```
//!
//! Every key is optional; unknown keys are rejected with the key's name and position.
//!
//! The parts: `cli` (the flags), `upstream` (the `--upstream` URL), `file` (the TOML file, its
//! reading and validation) with its `limits`, `metrics` and `protocols` sections, [`duration`]
//! (the humane durations the file uses), and `error`; what the rest of the crate uses is
//! re-exported here. This file assembles them into [`Config`].

use std::path::PathBuf;

mod cli;
pub(crate) mod duration;
mod error;
mod file;
mod limits;
mod metrics;
mod protocols;
mod upstream;

pub use cli::Cli;
pub use error::ConfigError;
pub(crate) use file::{FileConfig, GrpcReflectionConfig, OpenApiConfig};
pub(crate) use limits::LimitsConfig;
pub(crate) use metrics::{MetricNames, MetricsConfig, StatusMode};
pub(crate) use protocols::{ProtocolsConfig, UpstreamProtocol};
pub(crate) use upstream::Upstream;

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where requests go.
    pub(crate) upstream: Upstream,
    /// The TOML file, re-read on reload. `None`: reload keeps the routes given at start-up.
    pub(crate) config_path: Option<PathBuf>,
    /// The file's contents (defaults when there is no file).
    pub(crate) file: FileConfig,
    /// Sampling and span export (flags and `OTEL_*` variables; see `traces::TracingArgs`).
    pub tracing: traces::Settings,
    /// Where compiled plugins are cached (`--wasm-cache-dir`); `None`: compiled at each start.
    pub(crate) wasm_cache_dir: Option<PathBuf>,
    /// The command that compiles plugins in a child process (the binary sets itself); `None`:
    /// compiled on a thread of this process, which keeps ~11 MiB more (`wasm_host::compile`).
    pub plugin_compiler: Option<wasm_host::ChildCommand>,
}

impl Config {
    /// Builds the configuration from the flags, reading the TOML file when one is named.
    ///
    /// # Errors
    /// A bad upstream URL, an unreadable file, or invalid TOML (naming the key).
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        let upstream = Upstream::parse(&cli.upstream)?;
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Ok(Self {
            upstream,
            config_path: cli.config.clone(),
            file,
            tracing: traces::Settings::default(),
            wasm_cache_dir: cli.wasm_cache_dir.clone(),
            plugin_compiler: None,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
