//! A plugin layer around a stub upstream, in-process: load WAT fixtures, send requests, scrape.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use testkit::scrape::Scrape;
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};
use wasm_host::{Body, ClusterConfig, PluginConfig, PluginLayer, PluginSet, WasmRuntime, full};

/// Path of a WAT fixture in `wasm-host/tests/wat/`.
pub fn wat(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wat")
        .join(name)
}

pub use testkit::plugins::dist;

/// A plugin config for a fixture, small pool and short limits so fault tests are quick.
pub fn config(name: &str, fixture: &str) -> PluginConfig {
    let mut config = PluginConfig::new(name, wat(fixture));
    config.instances = 2;
    config
}

/// What the stub upstream received.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

impl Seen {
    /// Headers of every request so far.
    pub fn all(&self) -> Vec<HeaderMap> {
        self.0.lock().unwrap().clone()
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The layer under test with its registry.
pub struct Host {
    registry: Registry,
    service: BoxCloneService<Request<Body>, Response<Body>, Infallible>,
    pub seen: Seen,
}

fn upstream(seen: Seen) -> BoxCloneService<Request<Body>, Response<Body>, Infallible> {
    BoxCloneService::new(tower::service_fn(move |request: Request<Body>| {
        let seen = seen.clone();
        async move {
            seen.0.lock().unwrap().push(request.headers().clone());
            let status = if request.uri().path() == "/bad-gateway" {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::OK
            };
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let mut response = Response::new(full(format!("upstream got {} bytes", body.len())));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("x-upstream", "yes".parse().unwrap());
            Ok::<_, Infallible>(response)
        }
    }))
}

impl Host {
    /// Loads `configs`; panics with the load error (tests of load errors use [`Host::try_new`]).
    pub fn new(configs: &[PluginConfig]) -> Host {
        Host::try_new(configs).unwrap()
    }

    /// Loads `configs`.
    pub fn try_new(configs: &[PluginConfig]) -> anyhow::Result<Host> {
        Host::with_clusters(configs, &[])
    }

    /// Loads `configs`, whose callouts may target `clusters`.
    pub fn with_clusters(
        configs: &[PluginConfig],
        clusters: &[ClusterConfig],
    ) -> anyhow::Result<Host> {
        crate::logs::capture();
        let mut registry = Registry::default();
        let runtime = WasmRuntime::new(&mut registry, &wasm_host::CompileOptions::default())?;
        runtime.set_clusters(clusters)?;
        let set = PluginSet::load(runtime, configs, Some("127.0.0.1:9".into()))?;
        let seen = Seen::default();
        let service = BoxCloneService::new(PluginLayer::new(set).layer(upstream(seen.clone())));
        Ok(Host {
            registry,
            service,
            seen,
        })
    }

    /// Sends `request` and reads the whole response (which runs the end-of-request callbacks).
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.service.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `GET path` with extra headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        self.send(request.body(full(Bytes::new())).unwrap()).await
    }

    /// The registry's exposition, parsed.
    pub fn scrape(&self) -> Scrape {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        Scrape::parse(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"))
    }

    /// Polls until `metric{labels}` reaches `at_least` (tick timers, end-of-stream callbacks).
    pub async fn wait_for(&self, metric: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
        for _ in 0..500 {
            let value = self.scrape().value(metric, labels).unwrap_or(0.0);
            if value >= at_least {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{metric}{labels:?} never reached {at_least}: {:?}",
            self.scrape().series(metric)
        );
    }
}
