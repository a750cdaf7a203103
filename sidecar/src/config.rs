//! Configuration: four command-line flags (with environment fallbacks) for what differs between
//! deployments, and a TOML file for routes, limits, metric options and plugins.
//!
//! ```toml
//! openapi = { url_path = "/openapi.json", required = false }
//!
//! [[routes]]
//! template = "/items/{id}"
//!
//! [limits]
//! connect_timeout = "2s"          # durations: "250ms", "5s", "1m", or an integer of milliseconds
//! response_header_timeout = "30s"
//!
//! [metrics]
//! status = "grouped"              # or "raw"
//! ```
//!
//! Every key is optional; unknown keys are rejected with the key's name and position.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use http::uri::{Authority, Scheme, Uri};
use serde::Deserialize;

use crate::wasm::PluginConfig;

/// Command-line flags. Each has an environment fallback and a default that works locally.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "sidecar",
    version,
    about = "A reverse proxy that measures RED metrics per route."
)]
pub struct Cli {
    /// Address the proxy listens on.
    #[arg(long, env = "SIDECAR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The upstream every request goes to: `http://host:port`.
    #[arg(
        long,
        env = "SIDECAR_UPSTREAM",
        default_value = "http://127.0.0.1:8000"
    )]
    pub upstream: String,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`, `/routes`, `POST /reload`).
    #[arg(long, env = "SIDECAR_ADMIN_LISTEN", default_value = "127.0.0.1:9901")]
    pub admin_listen: SocketAddr,
    /// TOML file with routes, limits, metric options and plugins (optional).
    #[arg(long, env = "SIDECAR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where requests go.
    pub upstream: Upstream,
    /// The TOML file, re-read on reload. `None`: reload keeps the routes given at start-up.
    pub config_path: Option<PathBuf>,
    /// The file's contents (defaults when there is no file).
    pub file: FileConfig,
}

impl Config {
    /// A configuration with every default, for `upstream` (`http://host:port`).
    ///
    /// # Errors
    /// When `upstream` is not an `http://host:port` URL.
    pub fn new(upstream: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            upstream: Upstream::parse(upstream)?,
            config_path: None,
            file: FileConfig::default(),
        })
    }

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
        })
    }
}

/// The upstream's address. Only plain HTTP/1: the sidecar sits next to its service.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
}

impl Upstream {
    /// Parses `http://host:port` (port defaults to 80; a trailing `/` is tolerated).
    ///
    /// # Errors
    /// Any other scheme, a missing host, or a path/query.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Upstream {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = value.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(invalid(
                "the scheme must be http:// (the sidecar speaks plain HTTP/1 to its upstream)",
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("missing host"))?;
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            return Err(invalid(
                "a path or query is not supported; give only http://host:port",
            ));
        }
        Ok(Self {
            scheme: Scheme::HTTP,
            authority,
        })
    }

    /// `host` and `port` for a plain TCP connect.
    pub fn host_port(&self) -> (&str, u16) {
        (
            self.authority.host(),
            self.authority.port_u16().unwrap_or(80),
        )
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

/// The TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Proxy worker threads, each with its own event loop and upstream connection pool (like
    /// nginx's `worker_processes`); `0` means one per CPU.
    #[serde(default)]
    pub workers: usize,
    /// Route templates that become the `handler` label.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Load more templates from the upstream's OpenAPI document.
    pub openapi: Option<OpenApiConfig>,
    /// Timeouts and sizes.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// RED metric options.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Proxy-Wasm plugins.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

impl FileConfig {
    /// Reads and validates the file at `path`.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown key, or an invalid value.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|error| match error {
            ConfigError::Toml { source, .. } => ConfigError::Toml {
                path: path.to_owned(),
                source,
            },
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                path: path.to_owned(),
                key,
                reason,
            },
            other => other,
        })
    }

    /// Parses and validates TOML text.
    ///
    /// # Errors
    /// Invalid TOML, an unknown key, or an invalid value.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|source| ConfigError::Toml {
            path: PathBuf::new(),
            source,
        })?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: String, reason: &str| ConfigError::Invalid {
            path: PathBuf::new(),
            key,
            reason: reason.into(),
        };
        for (i, route) in self.routes.iter().enumerate() {
            if !route.template.starts_with('/') {
                return Err(invalid(
                    format!("routes[{i}].template"),
                    "a template starts with '/'",
                ));
            }
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.connect_timeout", l.connect_timeout),
            ("limits.response_header_timeout", l.response_header_timeout),
            ("limits.header_read_timeout", l.header_read_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key.into(), "must be greater than zero"));
            }
        }
        if l.max_concurrent_requests == 0 {
            return Err(invalid(
                "limits.max_concurrent_requests".into(),
                "must be at least 1",
            ));
        }
        if l.max_request_header_bytes < 1024 {
            return Err(invalid(
                "limits.max_request_header_bytes".into(),
                "must be at least 1024",
            ));
        }
        let m = &self.metrics;
        for (key, buckets) in [
            ("metrics.duration_buckets", &m.duration_buckets),
            ("metrics.size_buckets", &m.size_buckets),
        ] {
            if buckets.is_empty()
                || buckets.windows(2).any(|w| w[0] >= w[1])
                || buckets.iter().any(|b| !b.is_finite())
            {
                return Err(invalid(
                    key.into(),
                    "must be a non-empty list of finite, strictly increasing numbers",
                ));
            }
        }
        if let Some(openapi) = &self.openapi
            && !openapi.url_path.starts_with('/')
        {
            return Err(invalid("openapi.url_path".into(), "must start with '/'"));
        }
        Ok(())
    }
}

/// One `[[routes]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A path template, `{name}` for one segment, `{*name}` for the rest: `/items/{id}`.
    pub template: String,
}

/// `openapi = { ... }`: take route templates from the keys of the upstream's `paths`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenApiConfig {
    /// Path of the document on the upstream.
    #[serde(default = "default_openapi_path")]
    pub url_path: String,
    /// `true`: the sidecar refuses to start without the document. `false`: it starts with the
    /// configured routes and adds the document's when it arrives.
    #[serde(default)]
    pub required: bool,
    /// Attempts before giving up (delays double from 200 ms).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_openapi_path() -> String {
    "/openapi.json".into()
}
fn default_attempts() -> u32 {
    6
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// TCP connect to the upstream (then 504 `connect_timeout`).
    #[serde(with = "crate::duration")]
    pub connect_timeout: Duration,
    /// From sending the request to the upstream's response headers (then 504 `response_timeout`).
    #[serde(with = "crate::duration")]
    pub response_header_timeout: Duration,
    /// How long a client may take to send its request headers (slowloris guard; then 408).
    #[serde(with = "crate::duration")]
    pub header_read_timeout: Duration,
    /// Largest request head accepted from a client, in bytes (then 431).
    pub max_request_header_bytes: usize,
    /// Requests in flight at once; past it, 503 `overloaded` at once.
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(with = "crate::duration")]
    pub grace_period: Duration,
    /// After draining, how long the admin listener waits for one last `/metrics` scrape
    /// (so the final counts are collected) before it stops; `0` stops at once.
    #[serde(with = "crate::duration")]
    pub final_scrape_wait: Duration,
    /// Idle upstream connections are closed after this long.
    #[serde(with = "crate::duration")]
    pub pool_idle_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_header_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_request_header_bytes: 64 * 1024,
            max_concurrent_requests: 4096,
            grace_period: Duration::from_secs(10),
            final_scrape_wait: Duration::from_secs(5),
            pool_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// `[metrics]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `grouped` (`2xx`, as the seed) or `raw` (`200`).
    pub status: StatusMode,
    /// Give `http_requests_inprogress` the `handler` and `method` labels.
    pub inprogress_labels: bool,
    /// Most distinct `handler` values; templates past it report `none` and count an overflow.
    pub max_handlers: usize,
    /// Buckets of `http_request_duration_seconds`, in seconds.
    pub duration_buckets: Vec<f64>,
    /// Buckets of the request and response size histograms, in bytes.
    pub size_buckets: Vec<f64>,
}

/// How the `status` label is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusMode {
    /// `1xx` .. `5xx`.
    Grouped,
    /// The three-digit code.
    Raw,
}

/// The contract's buckets (OTel's, a superset of the seed's 0.1/0.5/1).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            status: StatusMode::Grouped,
            inprogress_labels: false,
            max_handlers: 200,
            duration_buckets: DURATION_BUCKETS.to_vec(),
            size_buckets: vec![
                0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
            ],
        }
    }
}

/// A configuration that cannot be used, saying which part is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {source}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the key and position.
        source: toml::de::Error,
    },
    /// A key has a value outside its range.
    #[error("invalid config file {path}: `{key}` {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, e.g. `limits.connect_timeout`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The upstream URL is unusable.
    #[error("invalid upstream {value:?}: {reason}")]
    Upstream {
        /// What was given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
