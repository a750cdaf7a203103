//! The metric families the proxy records, registered once into the registry and shared as
//! cheap handles: the RED family of `metrics.md` and the sidecar's own `sidecar_*` counters.
//!
//! Every label value comes from a closed set: route templates (or `none`), the standard methods
//! (or `_OTHER`), status classes (or codes), and [`ProxyError`] types.

use std::{sync::Arc, time::Duration};

use http::{Method, StatusCode};
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::Histogram,
        info::Info,
    },
    registry::Registry,
};

use crate::{
    config::{MetricsConfig, StatusMode},
    error::ProxyError,
};

/// The seed's `http_request_duration_highr_seconds` bounds, exactly.
pub const HIGHR_BUCKETS: [f64; 21] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
];

/// `error_type` of a response body that broke off after its headers were sent.
pub const BODY_ERROR: &str = "body_error";

/// `handler`, `method`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    handler: Arc<str>,
    method: &'static str,
    status: StatusLabel,
}

/// `handler`, `method`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    handler: Arc<str>,
    method: &'static str,
}

/// `handler`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandlerLabels {
    handler: Arc<str>,
}

/// `handler`, `method`, `error_type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    handler: Arc<str>,
    method: &'static str,
    error_type: &'static str,
}

/// `status`: a class (`2xx`) or a code (`200`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusLabel {
    /// The first digit.
    Class(u8),
    /// The whole code.
    Code(u16),
}

impl EncodeLabelValue for StatusLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        const CLASSES: [&str; 10] = [
            "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
        ];
        match *self {
            Self::Class(digit) => {
                EncodeLabelValue::encode(&CLASSES[usize::from(digit % 10)], encoder)
            }
            Self::Code(code) => EncodeLabelValue::encode(&code, encoder),
        }
    }
}

/// The `method` label: upper-case standard methods, everything else `_OTHER`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Histogram buckets as a named constructor (closures can't be named in a field type).
#[derive(Clone, Debug)]
pub struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

#[derive(Debug)]
enum InProgress {
    Total(Gauge),
    PerRoute(Family<RouteLabels, Gauge>),
}

#[derive(Debug)]
struct Families {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, Buckets>,
    duration_highr: Histogram,
    inprogress: InProgress,
    request_size: Family<HandlerLabels, Histogram, Buckets>,
    response_size: Family<HandlerLabels, Histogram, Buckets>,
    upstream_errors: Family<ErrorLabels, Counter>,
    client_aborts: Family<RouteLabels, Counter>,
    route_overflow: Counter,
    status_mode: StatusMode,
}

/// Handles on every family the proxy records; clones share the families.
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Families>);

/// How one request ended, as the RED layer saw it.
#[derive(Debug)]
pub struct Outcome {
    /// `handler` label.
    pub handler: Arc<str>,
    /// `method` label.
    pub method: &'static str,
    /// The status sent, or `None` when the client went away before the response headers.
    pub status: Option<StatusCode>,
    /// Why the sidecar made the response itself, if it did.
    pub error: Option<ProxyError>,
    /// The response body broke off after the headers.
    pub body_error: bool,
    /// From the end of the request headers to the end of the response body.
    pub elapsed: Duration,
    /// Response body bytes sent.
    pub response_bytes: u64,
}

impl Metrics {
    /// Registers every family into `registry`.
    pub fn register(registry: &mut Registry, config: &MetricsConfig) -> Self {
        let durations = Buckets(config.duration_buckets.clone().into());
        let sizes = Buckets(config.size_buckets.clone().into());
        let families = Families {
            requests: Family::default(),
            duration: Family::new_with_constructor(durations),
            duration_highr: Histogram::new(HIGHR_BUCKETS),
            inprogress: if config.inprogress_labels {
                InProgress::PerRoute(Family::default())
            } else {
                InProgress::Total(Gauge::default())
            },
            request_size: Family::new_with_constructor(sizes.clone()),
            response_size: Family::new_with_constructor(sizes),
            upstream_errors: Family::default(),
            client_aborts: Family::default(),
            route_overflow: Counter::default(),
            status_mode: config.status,
        };
        registry.register(
            "http_requests",
            "Requests answered, by route template, method and status class",
            families.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "From the end of the request headers to the end of the response body",
            families.duration.clone(),
        );
        registry.register(
            "http_request_duration_highr_seconds",
            "Request duration over every route, with fine buckets",
            families.duration_highr.clone(),
        );
        match &families.inprogress {
            InProgress::Total(g) => {
                registry.register("http_requests_inprogress", "Requests in flight", g.clone())
            }
            InProgress::PerRoute(f) => {
                registry.register("http_requests_inprogress", "Requests in flight", f.clone())
            }
        }
        registry.register(
            "http_request_size_bytes",
            "Request body bytes received from the client",
            families.request_size.clone(),
        );
        registry.register(
            "http_response_size_bytes",
            "Response body bytes sent to the client",
            families.response_size.clone(),
        );
        registry.register(
            "sidecar_upstream_errors",
            "Requests the upstream failed, by error type (the sidecar answered 502/503/504 itself, or the body broke off)",
            families.upstream_errors.clone(),
        );
        registry.register(
            "sidecar_client_aborts",
            "Requests whose client went away before the response headers (not counted in http_requests_total)",
            families.client_aborts.clone(),
        );
        registry.register(
            "sidecar_route_overflow",
            "Requests reported as handler=\"none\" because their template is past metrics.max_handlers",
            families.route_overflow.clone(),
        );
        registry.register(
            "sidecar_build",
            "Sidecar build information",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self(Arc::new(families))
    }

    /// A request's headers arrived.
    pub fn start(&self, handler: &Arc<str>, method: &'static str) {
        match &self.0.inprogress {
            InProgress::Total(g) => g.inc(),
            InProgress::PerRoute(f) => f.get_or_create(&route(handler, method)).inc(),
        };
    }

    /// A request ended (exactly once per [`Metrics::start`]).
    pub fn finish(&self, outcome: Outcome) {
        let f = &self.0;
        let route_labels = route(&outcome.handler, outcome.method);
        match &f.inprogress {
            InProgress::Total(g) => g.dec(),
            InProgress::PerRoute(family) => family.get_or_create(&route_labels).dec(),
        };
        let Some(status) = outcome.status else {
            f.client_aborts.get_or_create(&route_labels).inc();
            return;
        };
        let status = match f.status_mode {
            StatusMode::Grouped => StatusLabel::Class((status.as_u16() / 100) as u8),
            StatusMode::Raw => StatusLabel::Code(status.as_u16()),
        };
        let seconds = outcome.elapsed.as_secs_f64();
        f.requests
            .get_or_create(&RequestLabels {
                handler: outcome.handler.clone(),
                method: outcome.method,
                status,
            })
            .inc();
        f.duration.get_or_create(&route_labels).observe(seconds);
        f.duration_highr.observe(seconds);
        let handler = HandlerLabels {
            handler: outcome.handler.clone(),
        };
        f.response_size
            .get_or_create(&handler)
            .observe(outcome.response_bytes as f64);
        let error_type = match outcome.error {
            Some(error) if error.is_upstream() => Some(error.error_type()),
            _ if outcome.body_error => Some(BODY_ERROR),
            _ => None,
        };
        if let Some(error_type) = error_type {
            f.upstream_errors
                .get_or_create(&ErrorLabels {
                    handler: outcome.handler,
                    method: outcome.method,
                    error_type,
                })
                .inc();
        }
    }

    /// The request-size histogram of `handler` (held by the request body until it ends).
    pub fn request_size(&self, handler: &Arc<str>) -> Histogram {
        self.0.request_size.get_or_create_owned(&HandlerLabels {
            handler: handler.clone(),
        })
    }

    /// A template past the cap was reported as `none`.
    pub fn route_overflowed(&self) {
        self.0.route_overflow.inc();
    }
}

fn route(handler: &Arc<str>, method: &'static str) -> RouteLabels {
    RouteLabels {
        handler: handler.clone(),
        method,
    }
}
