//! The gRPC families, named as go-grpc-prometheus names them so existing gRPC dashboards work:
//! `grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_handling_seconds`,
//! `grpc_server_msg_received_total`, `grpc_server_msg_sent_total`.
//!
//! `grpc_type`, `grpc_service` and `grpc_method` come from the [`MethodSet`]: from the path,
//! capped like route templates, or from the upstream's server reflection. Each call keeps the
//! type known when it started, so `started` and `handled` always agree; where types are learned,
//! the calls of a streaming method that start before its first second message count as `unary`.

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use super::{
    methods::{Method, MethodSet},
    status::Code,
};

/// go-grpc-prometheus' (Prometheus client's) default buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    grpc_type: &'static str,
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_code: &'static str,
}

/// The families, registered once; clones share them.
#[derive(Clone, Debug)]
pub(crate) struct GrpcMetrics(Arc<Families>);

#[derive(Debug)]
struct Families {
    started: Family<CallLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: Family<CallLabels, Histogram, fn() -> Histogram>,
    received: Family<CallLabels, Counter>,
    sent: Family<CallLabels, Counter>,
    methods: MethodSet,
}

/// One call's series, chosen when it starts.
#[derive(Debug)]
pub(crate) struct CallSeries {
    method: Arc<Method>,
    labels: CallLabels,
    pub received: Counter,
    pub sent: Counter,
}

impl GrpcMetrics {
    /// Registers the families; at most `max_methods` distinct methods get their own series.
    pub(crate) fn register(registry: &mut Registry, max_methods: usize) -> Self {
        let families = Families {
            started: Family::default(),
            handled: Family::default(),
            handling: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            received: Family::default(),
            sent: Family::default(),
            methods: MethodSet::new(max_methods),
        };
        registry.register(
            "grpc_server_started",
            "gRPC calls started, by type, service and method.",
            families.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "gRPC calls completed, by type, service, method and status code.",
            families.handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "From a gRPC call's request headers to the end of its response.",
            families.handling.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "gRPC messages received from clients.",
            families.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "gRPC messages sent to clients.",
            families.sent.clone(),
        );
        Self(Arc::new(families))
    }

    /// Counts a call to `path` as started.
    pub(crate) fn start(&self, path: &str) -> CallSeries {
        let method = self.0.methods.resolve(path);
        let labels = CallLabels {
            grpc_type: method.grpc_type(),
            grpc_service: method.service.clone(),
            grpc_method: method.method.clone(),
        };
        self.0.started.get_or_create(&labels).inc();
        CallSeries {
            received: self.0.received.get_or_create(&labels).clone(),
            sent: self.0.sent.get_or_create(&labels).clone(),
            method,
            labels,
        }
    }

    /// Counts the call as handled with `code`.
    pub(crate) fn finish(&self, call: &CallSeries, code: Code, elapsed: Duration) {
        let labels = &call.labels;
        self.0
            .handled
            .get_or_create(&HandledLabels {
                grpc_type: labels.grpc_type,
                grpc_service: labels.grpc_service.clone(),
                grpc_method: labels.grpc_method.clone(),
                grpc_code: code.name(),
            })
            .inc();
        self.0
            .handling
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A call of this method carried a second message from the client (`client`) or to it.
    pub(crate) fn learn_streaming(call: &CallSeries, client: bool) {
        call.method.learn_streaming(client);
    }

    /// The label set, for [`MethodLoader`](super::methods::MethodLoader).
    pub(crate) fn methods(&self) -> MethodSet {
        self.0.methods.clone()
    }
}
