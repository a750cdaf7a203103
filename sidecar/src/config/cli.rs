//! The command-line flags: what differs between deployments (listen address, upstream, admin
//! address, config file path), each with an environment fallback and a default that works
//! locally. [`super::Config::load`] turns them into a configuration.

use std::{net::SocketAddr, path::PathBuf};

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
