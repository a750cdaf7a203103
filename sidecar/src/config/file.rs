//! The TOML file's top level: routes, the OpenAPI source of more routes, the gRPC server
//! reflection source of the gRPC method labels, the `[limits]`,
//! `[metrics]` and `[protocols]` sections, the `[[plugins]]` and the `[[clusters]]` they call
//! out to; reading it, parsing it (unknown keys rejected)
//! and validating the values serde cannot check, naming the offending key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, LimitsConfig, MetricsConfig, ProtocolsConfig, UpstreamProtocol};
use wasm_host::{ClusterConfig, PluginConfig};

/// The TOML file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Proxy worker threads, each with its own event loop and upstream connection pool (like
    /// nginx's `worker_processes`); `0` means one per CPU.
    #[serde(default)]
    pub workers: usize,
    /// Route templates that become the `handler` label.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Load more templates from the upstream's OpenAPI document.
    pub openapi: Option<OpenApiConfig>,
    /// Take the gRPC method labels from the upstream's server reflection.
    pub grpc_reflection: Option<GrpcReflectionConfig>,
    /// Timeouts and sizes.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// RED metric options.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// HTTP/2 on the proxy port, and the upstream leg's protocol.
    #[serde(default)]
    pub protocols: ProtocolsConfig,
    /// Proxy-Wasm plugins.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Upstream clusters plugins may call out to (`proxy_http_call`).
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
}

impl FileConfig {
    /// Reads and validates the file at `path`.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown key, or an invalid value.
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
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
    pub(crate) fn parse(text: &str) -> Result<Self, ConfigError> {
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
            (
                "limits.response_body_idle_timeout",
                l.response_body_idle_timeout,
            ),
            ("limits.header_read_timeout", l.header_read_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key.into(), "must be greater than zero"));
            }
        }
        if self.protocols.http2_max_concurrent_streams == 0 {
            return Err(invalid(
                "protocols.http2_max_concurrent_streams".into(),
                "must be at least 1",
            ));
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
        if self.grpc_reflection.is_some() && self.protocols.upstream == UpstreamProtocol::Http1 {
            return Err(invalid(
                "grpc_reflection".into(),
                "needs `protocols.upstream = \"h2c\"` or `\"auto\"`: gRPC does not pass over the HTTP/1.1 upstream leg",
            ));
        }
        for (i, cluster) in self.clusters.iter().enumerate() {
            cluster
                .validate()
                .map_err(|reason| invalid(format!("clusters[{i}]"), &reason))?;
            if self.clusters[..i].iter().any(|c| c.name == cluster.name) {
                return Err(invalid(
                    format!("clusters[{i}].name"),
                    "names must be unique",
                ));
            }
        }
        Ok(())
    }
}

/// One `[[routes]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// A path template, `{name}` for one segment, `{*name}` for the rest: `/items/{id}`.
    pub template: String,
}

/// `openapi = { ... }`: take route templates from the keys of the upstream's `paths`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenApiConfig {
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

/// `grpc_reflection = { ... }`: the gRPC methods the upstream's server reflection lists are the
/// `grpc_service`/`grpc_method` label set; any other path reports `none`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrpcReflectionConfig {
    /// `true`: the sidecar refuses to start (and a reload fails) without the list. `false`: it
    /// starts with labels from request paths and takes the list when it comes.
    #[serde(default)]
    pub required: bool,
    /// Attempts at start-up before giving up (delays double from 200 ms).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_openapi_path() -> String {
    "/openapi.json".into()
}
fn default_attempts() -> u32 {
    6
}
