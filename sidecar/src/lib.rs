//! redside's sidecar: a reverse proxy in front of one HTTP service that measures RED metrics
//! per route template, and hosts Proxy-Wasm plugins.
//!
//! # Interface
//! The binary's, and nothing more: [`Cli`] (the flags), [`Config::load`] (flags + TOML file;
//! [`ConfigError`] when it can't), and [`run`], which serves until its shutdown future
//! completes. `main.rs` only parses flags, sets up logging and binds. [`test_support`] starts
//! the whole sidecar inside a test, for tests only.
//!
//! # Modules
//! In the order a request meets them; all private (`pub(crate)` at most), so what is not
//! listed above is internal and dead code shows.
//! - `config`: flags + environment (listen, upstream, admin, file path) and the TOML file
//!   (routes, OpenAPI loading, limits, metric options, plugins).
//! - `workers`: the proxy's worker threads, one event loop and upstream pool each, fed
//!   connections in turn by one acceptor.
//! - `stack`: builds the per-request service stack: RED → gRPC → plugins → limit → proxy;
//!   outside them all, `h2_connect` shows an HTTP/2 WebSocket in its HTTP/1.1 form.
//! - `grpc`: gRPC calls' families (go-grpc-prometheus names) and gRPC-shaped errors; their
//!   method labels from the upstream's server reflection when configured.
//! - `red`: the RED layer (labels, clock, body byte counts), recording into `metrics`
//!   (one shard per worker, added up at scrape time); `trace`: `traceparent`, the sidecar's
//!   span and its export.
//! - `routes`: the swappable route table (path → template or `none`).
//! - `limit`: the concurrency limit (503 `overloaded`).
//! - `proxy`: header rewriting and the upstream leg: HTTP/1.1 spoken over each worker's pool
//!   of keep-alive connections, or HTTP/2 multiplexed on one connection per worker; bodies
//!   streamed both ways. The proxy port takes HTTP/1.1 and HTTP/2 cleartext (`serve`).
//! - `error`: `ProxyError`, the responses the sidecar makes itself (502/503/504).
//! - `body`: the boxed streaming body type the stack shares.
//! - `openapi`: route templates from the upstream's OpenAPI document.
//! - `admin`: the admin listener (`/metrics`, `/healthz`, `/readyz`, `/routes`, `POST /reload`).
//! - `reload`: SIGHUP / `POST /reload`, and start-up's OpenAPI and gRPC method loads (the first
//!   reload).
//! - the Proxy-Wasm host is the `wasm_host` crate; its [`PluginLayer`](wasm_host::PluginLayer)
//!   sits in `stack`, and the RED layer inserts the [`RouteTemplate`](wasm_host::RouteTemplate)
//!   it reads.

// What is not reachable from here is `pub(crate)`, so the interface stays what this page says
// and dead code shows.
#![warn(unreachable_pub)]

mod admin;
mod body;
mod config;
mod error;
mod grpc;
mod h2_connect;
mod limit;
mod metrics;
mod openapi;
mod proxy;
mod red;
mod reload;
mod routes;
mod stack;
pub mod test_support;
mod trace;
mod workers;

use std::{future::Future, time::Duration};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, task::JoinSet};
use tracing::{info, warn};

pub use config::{Cli, Config, ConfigError};

use crate::{
    admin::Admin, grpc::methods::MethodLoader, reload::Reloader, routes::Routes, stack::Stack,
    workers::Workers,
};

/// How long the admin listener waits for its own connections once the proxy has drained.
const ADMIN_GRACE: Duration = Duration::from_secs(2);

/// Runs the sidecar until `shutdown` completes: proxies on `proxy_listener`, serves the admin
/// endpoints on `admin_listener`.
///
/// On shutdown the proxy stops accepting and drains in-flight requests for at most
/// `limits.grace_period`; the admin listener stops last, after one more `/metrics` scrape or
/// `limits.final_scrape_wait`, whichever comes first, so the final counts can be scraped.
///
/// # Errors
/// A configured route template the router rejects, or a required OpenAPI document or gRPC
/// method list (`grpc_reflection`) that can't be fetched.
pub async fn run(
    config: Config,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let client = proxy::client(&config.file.limits);
    // The configured routes; the OpenAPI document's templates are the reloader's first load.
    let routes =
        Routes::new(reload::route_table(&config.file, &[]).context("building the route table")?);

    let mut registry = Registry::default();
    process_metrics::register(&mut registry);
    let plugins = load_plugins(&config, &mut registry)?;
    let stack = Stack::new(&config, &mut registry, routes.clone(), plugins.clone());

    let reloader = Reloader::new(
        config.config_path.clone(),
        config.file.clone(),
        config.upstream.clone(),
        client.clone(),
        routes.clone(),
        plugins,
        MethodLoader::new(
            config.upstream.clone(),
            config.file.limits.connect_timeout,
            stack.grpc_methods(),
        ),
    );
    if matches!(&config.file.openapi, Some(o) if o.required) {
        reloader.load_openapi().await.context(
            "loading route templates from the upstream's OpenAPI document (openapi.required = true)",
        )?;
    }
    if matches!(&config.file.grpc_reflection, Some(r) if r.required) {
        reloader.load_grpc_methods().await.context(
            "loading the gRPC methods from the upstream's server reflection (grpc_reflection.required = true)",
        )?;
    }
    let admin = Admin::new(
        registry,
        Some(stack.exemplars()),
        routes,
        reloader.clone(),
        config.upstream.clone(),
    );

    let mut tasks = background_tasks(reloader, &config);
    info!(
        listen = ?proxy_listener.local_addr().ok(),
        admin = ?admin_listener.local_addr().ok(),
        upstream = %config.upstream,
        "sidecar started"
    );
    let workers = start_workers(&config, proxy_listener, stack)?;
    serve_until(&config, workers, admin, admin_listener, shutdown).await;
    tasks.abort_all();
    info!("sidecar stopped");
    Ok(())
}

/// Starts the wasm runtime (its metrics into `registry`), gives it the clusters, and loads the
/// configured plugins.
fn load_plugins(config: &Config, registry: &mut Registry) -> anyhow::Result<wasm_host::PluginSet> {
    let compile = wasm_host::CompileOptions {
        cache_dir: config.wasm_cache_dir.clone(),
        child: config.plugin_compiler.clone(),
    };
    let wasm_runtime =
        wasm_host::WasmRuntime::new(registry, &compile).context("starting the wasm runtime")?;
    wasm_runtime
        .set_clusters(&config.file.clusters)
        .context("configuring the plugins' clusters")?;
    let (host, port) = config.upstream.host_port();
    wasm_host::PluginSet::load(
        wasm_runtime,
        &wasm_host::PluginSet::resolve(&config.file.plugins, config.config_path.as_deref()),
        Some(format!("{host}:{port}")),
    )
    .context("loading plugins")
}

/// What runs beside the listeners until the sidecar stops: reload on SIGHUP, and the optional
/// loads start-up did not wait for: the OpenAPI document (its templates join the route table
/// when it arrives) and the gRPC method list (labels come from paths until it arrives).
fn background_tasks(reloader: Reloader, config: &Config) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(reloader.clone().on_sighup());
    if matches!(&config.file.grpc_reflection, Some(r) if !r.required) {
        let reloader = reloader.clone();
        tasks.spawn(async move {
            // Optional: a failure was logged where it was handled, and is no error.
            let _ = reloader.load_grpc_methods().await;
        });
    }
    if matches!(&config.file.openapi, Some(o) if !o.required) {
        tasks.spawn(async move {
            // An unavailable document was logged where it was handled, and is no error.
            if let Err(error) = reloader.load_openapi().await {
                warn!(
                    error = format!("{error:#}"),
                    "cannot add the OpenAPI templates"
                );
            }
        });
    }
    tasks
}

/// Starts the proxy's worker threads on `proxy_listener`.
fn start_workers(
    config: &Config,
    proxy_listener: TcpListener,
    stack: Stack,
) -> anyhow::Result<Workers> {
    let limits = &config.file.limits;
    let serve_limits = serve::Limits {
        header_read_timeout: limits.header_read_timeout,
        max_header_bytes: limits.max_request_header_bytes,
        // hyper's 100 header fields, parsed on the stack; the api accepts the two to four
        // the proxy adds on top (`api::MAX_HEADERS`).
        max_headers: None,
        http2: config.file.protocols.server_http2(),
    };
    workers::start(
        workers::count(config.file.workers),
        proxy_listener,
        stack,
        limits.clone(),
        serve_limits,
    )
    .context("starting the proxy workers")
}

/// Serves the proxy and the admin listener until `shutdown` completes, then drains the proxy,
/// waits for one more `/metrics` scrape (at most `final_scrape_wait`), and stops the admin.
async fn serve_until(
    config: &Config,
    workers: Workers,
    admin: Admin,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = &config.file.limits;
    let mut scrapes = admin.scrapes();
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_side = async {
        workers.serve_until(shutdown).await;
        // Keep the admin up for one more scrape, so the final counts reach Prometheus.
        scrapes.mark_unchanged();
        if !limits.final_scrape_wait.is_zero() {
            info!(wait = ?limits.final_scrape_wait, "proxy drained; waiting for a final /metrics scrape");
            let _ = tokio::time::timeout(limits.final_scrape_wait, scrapes.changed()).await;
        }
        info!("stopping the admin listener");
        let _ = admin_stop.send(());
    };
    let admin_side = serve::serve(
        admin_listener,
        admin,
        serve::Limits::default(),
        async {
            let _ = admin_stopped.await;
        },
        ADMIN_GRACE,
    );
    tokio::join!(proxy_side, admin_side);
}
