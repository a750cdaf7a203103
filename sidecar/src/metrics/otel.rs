//! The RED families under OpenTelemetry's HTTP server semantic conventions (`[metrics] names =
//! "otel"`), as Prometheus names: `http.server.request.duration` is
//! `http_server_request_duration_seconds{http_route,http_request_method,http_response_status_code}`,
//! `http.server.active_requests` is `http_server_active_requests{http_request_method}`.
//!
//! The convention puts the status code on the duration, which the contract's histogram does not
//! have: each `(handler, method)` series of a worker's shard keeps its durations per code here
//! ([`StatusDurations`]), found under a mutex only that worker's requests and scrapes take (as
//! the `raw` status mode's counts are). With the default names nothing here is touched.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use prometheus_client::{encoding::DescriptorEncoder, metrics::MetricType};
use traces::TraceId;

use super::{
    collector::histogram,
    exemplars::ExemplarCells,
    shard::{Cells, Merged, Snapshot},
};

/// One code's histogram and its exemplars.
#[derive(Debug)]
pub(super) struct CodeSeries {
    pub code: u16,
    pub duration: Cells,
    pub exemplars: ExemplarCells,
}

/// One `(handler, method)` series' durations by status code, in one worker.
#[derive(Debug)]
pub(super) struct StatusDurations {
    bounds: Arc<[f64]>,
    /// Few codes per route: a list, searched.
    codes: Mutex<Vec<Arc<CodeSeries>>>,
}

impl StatusDurations {
    pub(super) fn new(bounds: &Arc<[f64]>) -> Self {
        Self {
            bounds: bounds.clone(),
            codes: Mutex::default(),
        }
    }

    /// Records a request's duration under its status code, and its trace as the bucket's
    /// exemplar when it is sampled.
    pub(super) fn observe(&self, code: u16, seconds: f64, trace: Option<TraceId>) {
        let series = {
            let mut codes = self.codes.lock().unwrap_or_else(PoisonError::into_inner);
            match codes.iter().find(|series| series.code == code) {
                Some(series) => series.clone(),
                None => {
                    let series = Arc::new(CodeSeries {
                        code,
                        duration: Cells::new(&self.bounds),
                        exemplars: ExemplarCells::new(&self.bounds),
                    });
                    codes.push(series.clone());
                    series
                }
            }
        };
        series.duration.observe(seconds);
        if let Some(trace_id) = trace {
            series.exemplars.record(seconds, trace_id);
        }
    }

    /// The codes seen so far.
    pub(super) fn series(&self) -> Vec<Arc<CodeSeries>> {
        self.codes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// `http_server_request_duration_seconds`, then `http_server_active_requests`.
pub(super) fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    snapshot: &Snapshot,
    bounds: &[f64],
) -> Result<(), std::fmt::Error> {
    if snapshot
        .routes
        .values()
        .any(|route| !route.by_code.is_empty())
    {
        let mut family = encoder.encode_descriptor(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            None,
            MetricType::Histogram,
        )?;
        for ((handler, method), route) in &snapshot.routes {
            for (code, merged) in &route.by_code {
                let code = code.to_string();
                let labels = [
                    ("http_route", handler.as_str()),
                    ("http_request_method", method),
                    ("http_response_status_code", code.as_str()),
                ];
                histogram(family.encode_family(&labels)?, bounds, merged)?;
            }
        }
    }

    // The convention's attributes are the method and the scheme; the route is not one of them.
    let mut by_method: BTreeMap<&str, i64> = BTreeMap::new();
    for ((_, method), route) in &snapshot.routes {
        *by_method.entry(method).or_default() += route.inprogress;
    }
    let mut family = encoder.encode_descriptor(
        "http_server_active_requests",
        "Number of active HTTP server requests.",
        None,
        MetricType::Gauge,
    )?;
    for (method, active) in &by_method {
        family
            .encode_family(&[("http_request_method", *method)])?
            .encode_gauge(active)?;
    }
    Ok(())
}

/// Adds a series' per-code histograms into a route's totals.
pub(super) fn merge_into(durations: &StatusDurations, into: &mut BTreeMap<u16, Merged>) {
    for series in durations.series() {
        into.entry(series.code).or_default().add(&series.duration);
    }
}
