//! Reloading: SIGHUP or `POST /reload` re-reads the TOML file (and the upstream's OpenAPI
//! document and gRPC server reflection), builds a new route table and gRPC method set and swaps
//! them in. Requests in flight keep the label they were given; nothing is dropped. A reload that
//! fails keeps everything as it was. Start-up's OpenAPI and gRPC method loads are the first of
//! these ([`Reloader::load_openapi`], [`Reloader::load_grpc_methods`]), under the same policy.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use tracing::{info, warn};

use crate::{
    config::{FileConfig, Upstream},
    grpc::{methods::MethodLoader, reflection::ReflectionError},
    openapi::{self, OpenApiError},
    proxy::UpstreamClient,
    routes::{RouteError, RouteSource, RouteTable, Routes},
};
use wasm_host::PluginSet;

/// What a reload did.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct ReloadReport {
    /// Templates in the new table.
    pub routes: usize,
    /// Plugins declared in the file.
    pub plugins: usize,
    /// gRPC methods from the upstream's server reflection; `null`: labels from request paths.
    pub grpc_methods: Option<usize>,
}

/// Reloads the configuration on demand; clones share one reloader.
#[derive(Clone, Debug)]
pub(crate) struct Reloader(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    path: Option<PathBuf>,
    /// The configuration given at start-up; reused when there is no file to re-read.
    initial: FileConfig,
    upstream: Upstream,
    client: UpstreamClient,
    routes: Routes,
    plugins: PluginSet,
    grpc_methods: MethodLoader,
    /// One reload at a time, so two can't interleave their swaps.
    lock: tokio::sync::Mutex<()>,
}

/// The route table for `file`: its `[[routes]]` first, then the OpenAPI templates.
///
/// # Errors
/// A configured template the router rejects.
pub(crate) fn route_table(file: &FileConfig, openapi: &[String]) -> Result<RouteTable, RouteError> {
    let configured = file
        .routes
        .iter()
        .map(|r| (r.template.as_str(), RouteSource::Config));
    let loaded = openapi.iter().map(|t| (t.as_str(), RouteSource::Openapi));
    RouteTable::build(configured.chain(loaded), file.metrics.max_handlers)
}

impl Reloader {
    /// A reloader for the file at `path` (or the start-up configuration `initial` when `None`).
    pub(crate) fn new(
        path: Option<PathBuf>,
        initial: FileConfig,
        upstream: Upstream,
        client: UpstreamClient,
        routes: Routes,
        plugins: PluginSet,
        grpc_methods: MethodLoader,
    ) -> Self {
        Self(Arc::new(Inner {
            path,
            initial,
            upstream,
            client,
            routes,
            plugins,
            grpc_methods,
            lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Re-reads the configuration and swaps the route table.
    ///
    /// # Errors
    /// An unreadable or invalid file, a rejected template, or a required OpenAPI document or
    /// gRPC method list that can't be fetched. The current configuration stays in place.
    pub(crate) async fn reload(&self) -> anyhow::Result<ReloadReport> {
        let inner = &self.0;
        let _one_at_a_time = inner.lock.lock().await;
        let file = match &inner.path {
            Some(path) => FileConfig::read(path)?,
            None => inner.initial.clone(),
        };
        let openapi = match self
            .openapi_templates(&file, false)
            .await
            .context("reloading the OpenAPI document")?
        {
            Some(templates) => templates,
            None => self.current_openapi_templates(),
        };
        let table = route_table(&file, &openapi)?;
        let grpc_methods = (inner.grpc_methods)
            .fetch(file.grpc_reflection.as_ref(), false)
            .await
            .context("reloading the gRPC methods from the upstream's server reflection")?;
        // Plugins load before the route swap, so that a plugin that fails to load fails the
        // whole reload. Compiling is CPU work: off the async workers.
        let configs = PluginSet::resolve(&file.plugins, inner.path.as_deref());
        let plugins = inner.plugins.clone();
        let prepared = tokio::task::spawn_blocking(move || plugins.prepare(&configs))
            .await
            .context("plugin loading task")?
            .context("reloading plugins")?;
        let routes = table.entries().len();
        inner.routes.replace(table);
        let report = ReloadReport {
            routes,
            plugins: file.plugins.len(),
            grpc_methods: inner.grpc_methods.apply(grpc_methods),
        };
        // Validated with the file already; unchanged clusters keep their connection pools.
        inner
            .plugins
            .runtime()
            .set_clusters(&file.clusters)
            .context("reloading clusters")?;
        inner.plugins.commit(prepared);
        info!(
            routes = report.routes,
            plugins = report.plugins,
            grpc_methods = report.grpc_methods,
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Start-up's OpenAPI load: the document with the start-up configuration's retries, its
    /// templates then added to the start-up configuration's table. Start-up awaits it when the
    /// document is required, else runs it beside the listeners (the configured routes serve
    /// meanwhile). The fetch does not hold the reload lock: a reload need not wait out the
    /// retries.
    ///
    /// # Errors
    /// A required document that can't be fetched, or a table the router rejects.
    pub(crate) async fn load_openapi(&self) -> anyhow::Result<()> {
        let Some(templates) = self.openapi_templates(&self.0.initial, true).await? else {
            return Ok(());
        };
        let _one_at_a_time = self.0.lock.lock().await;
        let table = route_table(&self.0.initial, &templates).context("building the route table")?;
        self.0.routes.replace(table);
        Ok(())
    }

    /// The OpenAPI templates `file` asks for: none without an `openapi` section, else the
    /// document's, fetched once or (`retry`) up to `openapi.attempts` times. An optional document
    /// that can't be had is logged here: `None`, keep the templates loaded before.
    ///
    /// # Errors
    /// A required document that can't be fetched.
    async fn openapi_templates(
        &self,
        file: &FileConfig,
        retry: bool,
    ) -> Result<Option<Vec<String>>, OpenApiError> {
        let Some(config) = &file.openapi else {
            return Ok(Some(Vec::new()));
        };
        let (client, upstream) = (&self.0.client, &self.0.upstream);
        let fetched = if retry {
            openapi::fetch_with_retries(client, upstream, config).await
        } else {
            openapi::fetch(client, upstream, &config.url_path).await
        };
        match fetched {
            Ok(templates) => Ok(Some(templates)),
            Err(error) if config.required => Err(error),
            Err(error) => {
                warn!(%error, "OpenAPI document unavailable; keeping the templates loaded before (at start-up: the configured routes only)");
                Ok(None)
            }
        }
    }

    /// Start-up's gRPC method load, with the start-up configuration's retries; reloads make the
    /// next ones. Holds the reload lock, so a reload meanwhile waits and then wins.
    ///
    /// # Errors
    /// A required list that can't be fetched.
    pub(crate) async fn load_grpc_methods(&self) -> Result<(), ReflectionError> {
        let _one_at_a_time = self.0.lock.lock().await;
        let loader = &self.0.grpc_methods;
        let refresh = loader
            .fetch(self.0.initial.grpc_reflection.as_ref(), true)
            .await?;
        loader.apply(refresh);
        Ok(())
    }

    fn current_openapi_templates(&self) -> Vec<String> {
        let table = self.0.routes.current();
        table
            .entries()
            .iter()
            .filter(|e| e.source == RouteSource::Openapi)
            .map(|e| e.template.to_string())
            .collect()
    }

    /// Reloads on every SIGHUP until the task is dropped. Errors are logged here, where they are
    /// handled.
    pub(crate) async fn on_sighup(self) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            warn!("cannot install a SIGHUP handler; reload with POST /reload instead");
            return;
        };
        while hangups.recv().await.is_some() {
            info!("SIGHUP received; reloading");
            if let Err(error) = self.reload().await {
                warn!(
                    error = format!("{error:#}"),
                    "reload failed; keeping the current configuration"
                );
            }
        }
    }
}
