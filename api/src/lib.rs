//! The items API: CRUD over PostgreSQL with its own Prometheus metrics.
//!
//! [`run`] is the whole server; `main.rs` only parses flags, sets up logging and binds.
//!
//! - [`config`]: flags with `API_*`/`DATABASE_URL` fallbacks.
//! - [`routes`]: [`App`], the tower service: dispatch, 404/405, request spans; [`state`]: what
//!   every handler shares.
//! - [`items`]: the `/items` handlers; [`item`]: `Item` and `NewItem` with the body rules.
//! - [`db`]: the pool and one timed method per statement; [`schema`]: start-up schema setup.
//! - [`error`]: every failure and its JSON response; [`json`]: JSON responses;
//!   [`request_body`]: request bodies read under the size limit.
//! - [`trace`]: W3C trace context in, spans per request and statement, trace ids in logs.
//! - [`metrics`]: the metric families (see `docs/metrics.md`, API part) and their exposition.
//! - [`openapi`]: the OpenAPI 3 document served at `/openapi.json`.

#![warn(missing_docs)]

pub mod config;
pub mod db;
pub mod error;
pub mod item;
pub mod items;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod request_body;
pub mod routes;
pub mod schema;
pub mod state;
pub mod trace;

use std::{future::Future, pin::pin, sync::Arc};

use anyhow::Context;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::info;

pub use config::Config;
pub use routes::App;

/// Most header fields a request may carry: hyper's 100, plus the four a proxy in front adds
/// (the sidecar accepts 100 and adds `x-forwarded-for`, `x-forwarded-proto`, `Host` for an
/// HTTP/1.0 request without one, and `traceparent` when it starts a sampled trace), so whatever
/// the sidecar accepts, the api accepts too.
pub const MAX_HEADERS: usize = 104;

/// Serves the api on `listener` until `shutdown` completes, then drains in-flight requests for
/// at most `config.shutdown_grace` and closes the database pool.
///
/// Start-up applies the schema, waiting up to `config.startup_timeout` for the database; a
/// `shutdown` during that wait ends `run` cleanly.
///
/// # Errors
/// When the database URL is invalid, or the database stays unreachable through start-up.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut shutdown = pin!(shutdown);
    let tracing = config
        .tracing
        .settings("api")
        .context("reading the tracing flags")?;
    let pool = db::pool(&config)?;
    let mut registry = Registry::default();
    let metrics = metrics::Metrics::register(&mut registry, &pool);
    let spans = traces::SpanSink::start(tracing.export, &mut registry);
    let db = db::Db::new(pool, metrics.db.clone(), &config).with_spans(spans.clone());

    tokio::select! {
        applied = schema::apply(&db, config.startup_timeout) => applied.with_context(|| format!("starting the api on the database at {}", db::target(&config.database_url)))?,
        () = &mut shutdown => {
            info!("shutdown requested during start-up");
            db.close();
            return Ok(());
        }
    }

    let local = listener
        .local_addr()
        .context("reading the listener's address")?;
    info!(%local, pool_size = config.pool_size, "api listening");
    let app = App::new(state::State {
        db: db.clone(),
        items: metrics.items,
        registry: Arc::new(registry),
        ready_timeout: config.ready_timeout,
        tracing: trace::Tracing::new(tracing.sampler, spans),
    });
    serve::serve(
        listener,
        app,
        serve::Limits {
            max_headers: Some(MAX_HEADERS),
            ..serve::Limits::default()
        },
        shutdown,
        config.shutdown_grace,
    )
    .await;
    db.close();
    info!("api stopped");
    Ok(())
}
