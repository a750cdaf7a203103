//! The command-line flags: what differs between deployments (listen address, upstream, admin
//! address, config file path), each with an environment fallback and a default that works
//! locally. [`super::Config::load`] turns them into a configuration. [`Cli::check_config`] is
//! that load as a dry run: the binary's `--check-config` flag (declared next to these in
//! `main.rs`, so code that builds a `Cli` needs no new field) runs it, and deployment checks
//! (the Helm chart's rendered TOML) use it to validate a configuration with the sidecar's own
//! loaders.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;

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
    /// Directory where compiled plugins are cached across restarts (wasmtime's cache): a
    /// restart then loads them without compiling, faster and with less memory kept.
    #[arg(long, env = "SIDECAR_WASM_CACHE_DIR")]
    pub wasm_cache_dir: Option<PathBuf>,
}

impl Cli {
    /// The dry run behind the binary's `--check-config`: everything start-up checks before it binds, using
    /// the same loaders (the OpenAPI document and the gRPC methods are not fetched: they need the
    /// upstream).
    ///
    /// # Errors
    /// The first problem start-up would report: upstream URL, file, key, route template, plugin.
    pub fn check_config(&self) -> anyhow::Result<String> {
        let config = super::Config::load(self)?;
        crate::reload::route_table(&config.file, &[]).context("building the route table")?;
        let plugins = wasm_host::PluginSet::resolve(&config.file.plugins, self.config.as_deref());
        let mut registry = prometheus_client::registry::Registry::default();
        let runtime =
            wasm_host::WasmRuntime::new(&mut registry, &wasm_host::CompileOptions::default())
                .context("starting the wasm runtime")?;
        wasm_host::PluginSet::load(runtime, &plugins, None).context("loading plugins")?;
        let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
        let openapi = config
            .file
            .openapi
            .as_ref()
            .map_or("off".to_owned(), |o| o.url_path.clone());
        let grpc_reflection = match &config.file.grpc_reflection {
            None => "off",
            Some(r) if r.required => "required",
            Some(_) => "optional",
        };
        Ok(format!(
            "sidecar: configuration OK: file {}, listen {}, admin {}, upstream {}, {} configured routes, openapi {}, grpc_reflection {}, plugins [{}]",
            self.config
                .as_deref()
                .map_or("none".into(), |p| p.display().to_string()),
            self.listen,
            self.admin_listen,
            config.upstream,
            config.file.routes.len(),
            openapi,
            grpc_reflection,
            names.join(", "),
        ))
    }
}
