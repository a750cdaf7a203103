//! The proxy's service stack, built in one place. Per request, outermost first:
//!
//! 0. [`H2Connect`](crate::h2_connect::H2Connect): an HTTP/2 extended `CONNECT` in its HTTP/1.1
//!    form (`GET` + `Upgrade`, answered `101`) for every layer below, as Envoy's codecs show it;
//! 1. [`Red`](crate::red::Red): routes the request (inserting [`RouteTemplate`](wasm_host::RouteTemplate)),
//!    starts the clock, records the RED family when the response body ends;
//! 2. [`Grpc`](crate::grpc::Grpc): gRPC calls' own families, and gRPC-shaped sidecar errors;
//! 3. the plugin layer slot (Proxy-Wasm host): sees every routed request, including the
//!    responses the sidecar makes itself below it; its 502 for a response body that broke off
//!    while plugins buffered it becomes the sidecar's own error response
//!    ([`answer_broken_body`](crate::error::answer_broken_body));
//! 4. [`Limit`](crate::limit::Limit): 503 `overloaded` past `max_concurrent_requests`;
//! 5. [`Proxy`](crate::proxy::Proxy): forwards upstream, 502/504 on failure.

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use tower::{Service, ServiceBuilder};
use traces::SpanSink;

use crate::{
    config::{Config, LimitsConfig, Upstream, UpstreamProtocol},
    grpc::{GrpcLayer, methods::MethodSet, metrics::GrpcMetrics},
    h2_connect::H2ConnectLayer,
    limit::LimitLayer,
    metrics::{Exemplars, Metrics},
    proxy::{Pool, Proxy, Tunnels},
    red::{RedBody, RedLayer},
    routes::Routes,
    trace::Tracing,
};
use wasm_host::{PluginLayer, PluginSet};

/// What every proxy worker's stack shares: the metrics, the route table, tracing, the
/// concurrency limit and the plugins. Each worker adds its own upstream connection pool (see [`crate::workers`]).
#[derive(Clone, Debug)]
pub(crate) struct Stack {
    red: RedLayer,
    grpc: GrpcLayer,
    exemplars: Exemplars,
    limit: LimitLayer,
    plugins: PluginSet,
    upstream: Upstream,
    limits: LimitsConfig,
    upstream_protocol: UpstreamProtocol,
    tunnels: Arc<Tunnels>,
}

impl Stack {
    /// Registers the proxy's metrics into `registry` and prepares the shared layers.
    pub(crate) fn new(
        config: &Config,
        registry: &mut Registry,
        routes: Routes,
        plugins: PluginSet,
    ) -> Self {
        let metrics = Metrics::register(registry, &config.file.metrics);
        let grpc = GrpcMetrics::register(registry, config.file.metrics.max_handlers);
        let sink = SpanSink::start(config.tracing.export.clone(), registry);
        Self {
            exemplars: metrics.exemplars(),
            red: RedLayer::new(metrics, routes, Tracing::new(config.tracing.sampler, sink)),
            grpc: GrpcLayer::new(grpc),
            limit: LimitLayer::new(config.file.limits.max_concurrent_requests),
            plugins,
            upstream: config.upstream.clone(),
            limits: config.file.limits.clone(),
            upstream_protocol: config.file.protocols.upstream,
            tunnels: Tunnels::register(registry),
        }
    }

    /// Upgraded connections, which shutdown waits for.
    pub(crate) fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// The gRPC families' method label set, which `grpc_reflection` loads.
    pub(crate) fn grpc_methods(&self) -> MethodSet {
        self.grpc.metrics().methods()
    }

    /// The duration exemplars, for `/metrics`.
    pub(crate) fn exemplars(&self) -> Exemplars {
        self.exemplars.clone()
    }

    /// The service stack over a new upstream connection pool. Call it inside the worker's
    /// runtime, which the pool's connections then belong to.
    pub(crate) fn build(
        &self,
    ) -> impl Service<
        Request<Incoming>,
        Response = Response<RedBody>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static {
        ServiceBuilder::new()
            .layer(H2ConnectLayer)
            .layer(self.red.clone())
            .layer(self.grpc.clone())
            // The plugins' 502 for a body that broke while they buffered it, as the sidecar's own.
            .map_response(crate::error::answer_broken_body as fn(_) -> _)
            // PLUGIN LAYER: between Red and the limit, so plugins see the sidecar's own 502/503/504.
            .layer(PluginLayer::new(self.plugins.clone()))
            .layer(self.limit.clone())
            .service(Proxy::new(
                Pool::new(
                    &self.upstream,
                    self.limits.connect_timeout,
                    self.limits.pool_idle_timeout,
                ),
                self.upstream.clone(),
                &self.limits,
                self.upstream_protocol,
                Arc::clone(&self.tunnels),
            ))
    }
}
