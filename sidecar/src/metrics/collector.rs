//! Encodes the sharded RED families (see [`super::shard`]) for `/metrics`: the shards are
//! added up per label set, then written through prometheus-client's encoder, so the text is
//! exactly what registered families would give.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
};

use super::{
    otel,
    shard::{Bounds, Merged, Shards, Snapshot},
};
use crate::config::{MetricNames, StatusMode};

const CLASSES: [&str; 10] = [
    "0xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx",
];

/// The collector over every worker's shard.
#[derive(Debug)]
pub(super) struct RedCollector {
    pub shards: Arc<Shards>,
    pub status_mode: StatusMode,
    pub inprogress_labels: bool,
    pub names: MetricNames,
}

impl Collector for RedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snapshot = self.shards.snapshot();
        let bounds = self.shards.bounds();
        // A family without samples is left out, as prometheus-client does for an empty
        // registered family.
        if self.names == MetricNames::Otel {
            // The semantic conventions' duration and active requests replace the four RED
            // families; the size histograms have no counterpart with these labels.
            otel::encode(&mut encoder, &snapshot, &bounds.duration)?;
            return encode_sizes(&mut encoder, &snapshot, bounds);
        }
        self.encode_requests(&mut encoder, &snapshot)?;
        encode_durations(&mut encoder, &snapshot, bounds)?;
        self.encode_inprogress(&mut encoder, &snapshot)?;
        encode_sizes(&mut encoder, &snapshot, bounds)
    }
}

impl RedCollector {
    /// `http_requests_total`: per route, method and status (class or code, per `status_mode`).
    fn encode_requests(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let mut requests = Vec::new();
        for ((handler, method), route) in &snapshot.routes {
            let counts: Vec<(String, u64)> = match self.status_mode {
                StatusMode::Grouped => (route.classes.iter().enumerate())
                    .map(|(class, &n)| (CLASSES[class].to_owned(), n))
                    .collect(),
                StatusMode::Raw => route
                    .codes
                    .iter()
                    .map(|(code, &n)| (code.to_string(), n))
                    .collect(),
            };
            requests.extend(
                counts
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(status, n)| (handler.as_str(), *method, status, n)),
            );
        }
        if requests.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "http_requests",
            "Requests answered, by route template, method and status class.",
            None,
            MetricType::Counter,
        )?;
        for (handler, method, status, n) in &requests {
            let labels = [
                ("handler", *handler),
                ("method", *method),
                ("status", status.as_str()),
            ];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(n, None)?;
        }
        Ok(())
    }

    /// `http_requests_inprogress`: per route and method, or one gauge (`inprogress_labels`).
    fn encode_inprogress(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        snapshot: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "http_requests_inprogress",
            "Requests in flight.",
            None,
            MetricType::Gauge,
        )?;
        if self.inprogress_labels {
            // An empty labelled family still has its descriptor, like a registered one.
            for ((handler, method), route) in &snapshot.routes {
                let labels = [("handler", handler.as_str()), ("method", method)];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&route.inprogress)?;
            }
        } else {
            family.encode_gauge(&snapshot.inprogress)?;
        }
        Ok(())
    }
}

/// `http_request_duration_seconds` per route and method, then the route-less
/// `http_request_duration_highr_seconds`.
fn encode_durations(
    encoder: &mut DescriptorEncoder<'_>,
    snapshot: &Snapshot,
    bounds: &Bounds,
) -> Result<(), std::fmt::Error> {
    let timed: Vec<_> = (snapshot.routes.iter())
        .filter(|(_, route)| route.duration.count() > 0)
        .collect();
    if !timed.is_empty() {
        let mut family = encoder.encode_descriptor(
            "http_request_duration_seconds",
            "From the end of the request headers to the end of the response body.",
            None,
            MetricType::Histogram,
        )?;
        for ((handler, method), route) in timed {
            let labels = [("handler", handler.as_str()), ("method", method)];
            histogram(
                family.encode_family(&labels)?,
                &bounds.duration,
                &route.duration,
            )?;
        }
    }

    let family = encoder.encode_descriptor(
        "http_request_duration_highr_seconds",
        "Request duration over every route, with fine buckets.",
        None,
        MetricType::Histogram,
    )?;
    histogram(family, &bounds.highr, &snapshot.highr)
}

/// `http_request_size_bytes` and `http_response_size_bytes`, per handler: the methods add up.
fn encode_sizes(
    encoder: &mut DescriptorEncoder<'_>,
    snapshot: &Snapshot,
    bounds: &Bounds,
) -> Result<(), std::fmt::Error> {
    let mut handlers: std::collections::BTreeMap<&str, (Merged, Merged)> = Default::default();
    for ((handler, _), route) in &snapshot.routes {
        let (request, response) = handlers.entry(handler.as_str()).or_default();
        request.absorb(&route.request_size);
        response.absorb(&route.response_size);
    }
    if !handlers.is_empty() {
        let mut family = encoder.encode_descriptor(
            "http_request_size_bytes",
            "Request body bytes received from the client.",
            None,
            MetricType::Histogram,
        )?;
        for (handler, (request, _)) in &handlers {
            histogram(
                family.encode_family(&[("handler", *handler)])?,
                &bounds.size,
                request,
            )?;
        }
    }
    if handlers.values().any(|(_, response)| response.count() > 0) {
        let mut family = encoder.encode_descriptor(
            "http_response_size_bytes",
            "Response body bytes sent to the client.",
            None,
            MetricType::Histogram,
        )?;
        for (handler, (_, response)) in &handlers {
            if response.count() > 0 {
                histogram(
                    family.encode_family(&[("handler", *handler)])?,
                    &bounds.size,
                    response,
                )?;
            }
        }
    }
    Ok(())
}

pub(super) fn histogram(
    mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    bounds: &[f64],
    merged: &Merged,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(merged.counts.iter().copied().chain(std::iter::repeat(0)))
        .collect();
    encoder.encode_histogram::<NoLabelSet>(merged.sum, merged.count(), &buckets, None)
}
