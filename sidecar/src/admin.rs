//! The admin listener, on its own port so its traffic never enters the RED family:
//!
//! - `GET /metrics`: every family, in OpenMetrics text when the scraper asks for it (as
//!   Prometheus does), in the classic text format otherwise ([`exposition`]);
//! - `GET /healthz`: the process is up;
//! - `GET /readyz`: the upstream accepts TCP connections (1 s timeout), else 503;
//! - `GET /routes`: the route table as JSON (template, source, whether past the cap);
//! - `POST /reload`: re-read the configuration (as SIGHUP does).

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use exposition::Format;
use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use serde_json::json;
use tracing::warn;

use crate::{config::Upstream, metrics::Exemplars, reload::Reloader, routes::Routes};

/// The admin service; clones share its state.
#[derive(Clone, Debug)]
pub(crate) struct Admin(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    registry: Registry,
    /// Counts `/metrics` scrapes, so shutdown can wait for one last scrape.
    scrapes: tokio::sync::watch::Sender<u64>,
    routes: Routes,
    reloader: Reloader,
    upstream: Upstream,
    /// The RED duration exemplars, added to OpenMetrics answers.
    exemplars: Option<Exemplars>,
}

impl Admin {
    /// Serves `registry` (with `exemplars` in OpenMetrics answers), `routes` and `reloader`;
    /// `/readyz` checks `upstream`.
    pub(crate) fn new(
        registry: Registry,
        exemplars: Option<Exemplars>,
        routes: Routes,
        reloader: Reloader,
        upstream: Upstream,
    ) -> Self {
        let scrapes = tokio::sync::watch::Sender::new(0);
        Self(Arc::new(Inner {
            registry,
            scrapes,
            routes,
            reloader,
            upstream,
            exemplars,
        }))
    }

    /// Changes on every `/metrics` scrape.
    pub(crate) fn scrapes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.scrapes.subscribe()
    }
}

impl tower::Service<Request<Incoming>> for Admin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { Ok(inner.handle(&request).await) })
    }
}

impl Inner {
    async fn handle(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/metrics") => self.metrics(Format::negotiate(request.headers())),
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET, "/readyz") => self.ready().await,
            (&Method::GET, "/routes") => {
                let table = self.routes.current();
                let routes: Vec<_> = table
                    .entries()
                    .iter()
                    .map(|e| json!({ "template": &*e.template, "source": e.source, "over_cap": e.over_cap }))
                    .collect();
                json_response(StatusCode::OK, &json!({ "routes": routes }))
            }
            (&Method::POST, "/reload") => match self.reloader.reload().await {
                Ok(report) => json_response(StatusCode::OK, &json!({ "reloaded": report })),
                Err(error) => {
                    let error = format!("{error:#}");
                    warn!(error, "reload failed; keeping the current configuration");
                    json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &json!({ "error": error }),
                    )
                }
            },
            (_, "/metrics" | "/healthz" | "/readyz" | "/routes" | "/reload") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /healthz, /readyz, /routes, POST /reload\n",
            ),
        }
    }

    fn metrics(&self, format: Format) -> Response<Full<Bytes>> {
        // Counted before encoding: shutdown stops after the first scrape counted once the proxy
        // has drained, and that scrape must be encoded after the drain, so it has every count.
        self.scrapes.send_modify(|n| *n += 1);
        let body = match exposition::encode(&self.registry, format) {
            Ok(body) => match (&self.exemplars, format) {
                (Some(exemplars), Format::OpenMetrics) => exemplars.annotate(body),
                _ => body,
            },
            Err(error) => {
                warn!(%error, "encoding metrics failed");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding metrics failed\n",
                );
            }
        };
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(format.content_type()),
        );
        response
    }

    async fn ready(&self) -> Response<Full<Bytes>> {
        let (host, port) = self.upstream.host_port();
        match tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        {
            Ok(Ok(_)) => text(StatusCode::OK, "ready\n"),
            Ok(Err(error)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("upstream {} unreachable: {error}\n", self.upstream),
            ),
            Err(_) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("upstream {} timed out\n", self.upstream),
            ),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
