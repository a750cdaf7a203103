//! Upstream clusters for callouts: each `[[clusters]]` entry of the sidecar's TOML names one
//! address with its own connection pools (HTTP/1 for `proxy_http_call`, HTTP/2 cleartext with
//! prior knowledge for `proxy_grpc_call`), connect and request timeouts and one cap on
//! concurrent calls of both kinds, as an Envoy cluster with a circuit breaker.
//!
//! ```toml
//! [[clusters]]
//! name = "auth"
//! address = "127.0.0.1:9100"
//! connect_timeout_ms = 250
//! timeout_ms = 1000
//! max_concurrent_calls = 64
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::grpc_stream::GrpcBody;

/// One `[[clusters]]` entry.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// The name plugins pass to `dispatch_http_call`.
    pub name: String,
    /// `host:port` (plain HTTP/1.1 for HTTP callouts, h2c for gRPC callouts).
    pub address: String,
    /// TCP connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// The longest a call may take; a plugin's own (shorter) timeout wins.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Calls in flight at once; past it a call fails at once (Envoy's circuit breaker).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_calls: usize,
    /// The largest response body handed to the plugin; a larger one fails the call.
    #[serde(default = "default_max_response")]
    pub max_response_bytes: usize,
}

fn default_connect_timeout() -> u64 {
    1000
}
/// Below `pause_timeout_ms`' default (2 s), so a request paused on a call gets its answer
/// (or its failure) before the host gives up waiting and lets it through.
fn default_timeout() -> u64 {
    1000
}
fn default_max_concurrent() -> usize {
    64
}
fn default_max_response() -> usize {
    1 << 20
}

impl ClusterConfig {
    /// A cluster with every default.
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            address: address.into(),
            connect_timeout_ms: default_connect_timeout(),
            timeout_ms: default_timeout(),
            max_concurrent_calls: default_max_concurrent(),
            max_response_bytes: default_max_response(),
        }
    }

    /// Checks what serde cannot: a name, an address with a port, non-zero limits.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a cluster needs a name".into());
        }
        let port_ok = self
            .address
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(format!(
                "cluster {}: address {:?} must be host:port",
                self.name, self.address
            ));
        }
        if self.connect_timeout_ms == 0 || self.timeout_ms == 0 || self.max_concurrent_calls == 0 {
            return Err(format!(
                "cluster {}: connect_timeout_ms, timeout_ms and max_concurrent_calls must be > 0",
                self.name
            ));
        }
        Ok(())
    }
}

/// The HTTP client callouts use.
pub(crate) type CalloutClient = Client<HttpConnector, Full<Bytes>>;

/// A cluster ready for calls.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// Its entry.
    pub config: ClusterConfig,
    /// Its HTTP/1 connection pool.
    pub client: CalloutClient,
    /// Its HTTP/2 (h2c, prior knowledge) connection pool, for gRPC calls and streams; connects
    /// on first use.
    pub grpc: Client<HttpConnector, GrpcBody>,
    /// Permits for concurrent calls.
    pub permits: Arc<Semaphore>,
}

impl Cluster {
    fn new(config: ClusterConfig) -> Cluster {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_millis(config.connect_timeout_ms)));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30));
        let client = builder.build(connector.clone());
        let grpc = builder.http2_only(true).build(connector);
        Cluster {
            permits: Arc::new(Semaphore::new(config.max_concurrent_calls)),
            config,
            client,
            grpc,
        }
    }

    /// The longest a call with the plugin's `timeout_ms` may take (0: the cluster's).
    pub(crate) fn timeout(&self, asked_ms: u32) -> Duration {
        let cap = self.config.timeout_ms;
        let ms = if asked_ms == 0 {
            cap
        } else {
            u64::from(asked_ms).min(cap)
        };
        Duration::from_millis(ms)
    }
}

/// Every configured cluster by name.
#[derive(Debug, Default)]
pub(crate) struct ClusterSet {
    by_name: HashMap<String, Arc<Cluster>>,
}

impl ClusterSet {
    /// Clusters for `configs`, reusing `previous`' pools for unchanged entries.
    pub(crate) fn build(configs: &[ClusterConfig], previous: Option<&ClusterSet>) -> ClusterSet {
        let by_name = configs
            .iter()
            .map(|config| {
                let kept = previous
                    .and_then(|p| p.by_name.get(&config.name))
                    .filter(|c| c.config == *config)
                    .cloned();
                let cluster = kept.unwrap_or_else(|| Arc::new(Cluster::new(config.clone())));
                (config.name.clone(), cluster)
            })
            .collect();
        ClusterSet { by_name }
    }

    /// The cluster called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Cluster>> {
        self.by_name.get(name)
    }
}
