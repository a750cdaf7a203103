//! OpenMetrics exemplars on `http_request_duration_seconds` (or, with the `otel` names,
//! `http_server_request_duration_seconds`): for sampled requests, each bucket keeps the latest
//! observation and its trace id.
//!
//! Storage: one slot per bucket in each series of each worker's shard, behind a mutex that only
//! sampled requests and scrapes take (an unsampled request touches nothing here).
//!
//! Exposition: prometheus-client's encoder writes exemplars only from its own metric types (an
//! `Exemplar` cannot be built outside the crate), and the RED histograms are custom shards, so
//! [`Exemplars::annotate`] appends ` # {trace_id="..."} value timestamp` to the matching bucket
//! lines of the OpenMetrics text. The classic text format drops exemplars (`exposition`).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write,
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use traces::TraceId;

use super::shard::Shards;

/// The families whose buckets carry exemplars: the contract's, and the `otel` names'. Their
/// label names differ, so a series' key says which family it is in.
const FAMILY_BUCKETS: [&str; 2] = [
    "http_request_duration_seconds_bucket{",
    "http_server_request_duration_seconds_bucket{",
];

/// One sampled observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Exemplar {
    /// The request's trace.
    pub trace_id: TraceId,
    /// The observed duration, in seconds.
    pub value: f64,
    /// When it was observed.
    pub at: SystemTime,
}

/// One series' exemplar slots, one per bucket (the last is `+Inf`).
#[derive(Debug)]
pub(super) struct ExemplarCells {
    bounds: Arc<[f64]>,
    slots: Mutex<Box<[Option<Exemplar>]>>,
}

impl ExemplarCells {
    pub(super) fn new(bounds: &Arc<[f64]>) -> Self {
        Self {
            bounds: bounds.clone(),
            slots: Mutex::new(vec![None; bounds.len() + 1].into_boxed_slice()),
        }
    }

    /// Keeps `value` as its bucket's exemplar.
    pub(super) fn record(&self, value: f64, trace_id: TraceId) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots[bucket] = Some(Exemplar {
            trace_id,
            value,
            at: SystemTime::now(),
        });
    }

    /// Merges these slots into `into`, the latest exemplar of each bucket winning.
    pub(super) fn merge_into(&self, into: &mut Vec<Option<Exemplar>>) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        into.resize(slots.len(), None);
        for (total, slot) in into.iter_mut().zip(slots.iter()) {
            if let Some(new) = slot
                && total.is_none_or(|old| old.at < new.at)
            {
                *total = Some(*new);
            }
        }
    }
}

/// The admin's handle on every shard's exemplars.
#[derive(Clone, Debug)]
pub(crate) struct Exemplars(pub(super) Arc<Shards>);

impl Exemplars {
    /// `text` (OpenMetrics, as prometheus-client wrote it) with each
    /// `http_request_duration_seconds` (or `http_server_request_duration_seconds`) bucket that
    /// has an exemplar annotated.
    pub(crate) fn annotate(&self, text: String) -> String {
        let merged = self.0.exemplars();
        if merged.is_empty() {
            return text;
        }
        // The bucket lines' labels other than `le`, as the collector writes them.
        let series: HashMap<String, &Vec<Option<Exemplar>>> = (merged.iter())
            .map(|((handler, method, code), slots)| {
                let mut key = String::new();
                match code {
                    None => {
                        key.push_str("handler=\"");
                        escape_into(&mut key, handler);
                        let _ = write!(key, "\",method=\"{method}\"");
                    }
                    Some(code) => {
                        key.push_str("http_route=\"");
                        escape_into(&mut key, handler);
                        let _ = write!(
                            key,
                            "\",http_request_method=\"{method}\",http_response_status_code=\"{code}\""
                        );
                    }
                }
                (key, slots)
            })
            .collect();
        let mut out = String::with_capacity(text.len() + 128 * series.len());
        let mut current: Option<(&str, usize)> = None;
        for line in text.split_inclusive('\n') {
            let slot = series_of(line).and_then(|key| {
                let index = match current {
                    Some((seen, index)) if seen == key => index + 1,
                    _ => 0,
                };
                current = Some((key, index));
                series
                    .get(key)
                    .and_then(|slots| slots.get(index).copied().flatten())
            });
            match slot {
                Some(exemplar) => {
                    out.push_str(line.trim_end_matches('\n'));
                    let at = exemplar
                        .at
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64();
                    let _ = writeln!(
                        out,
                        " # {{trace_id=\"{}\"}} {} {at:.3}",
                        exemplar.trace_id, exemplar.value
                    );
                }
                None => out.push_str(line),
            }
        }
        out
    }
}

/// A bucket line's labels without `le` (which prometheus-client writes first, or last), or
/// `None` for any other line. The buckets of one series are consecutive lines, in bound order.
fn series_of(line: &str) -> Option<&str> {
    let labels = (FAMILY_BUCKETS.iter()).find_map(|family| line.strip_prefix(family))?;
    let labels = &labels[..labels.rfind("} ")?];
    if let Some(rest) = labels.strip_prefix("le=\"") {
        return Some(&rest[rest.find("\",")? + 2..]);
    }
    Some(&labels[..labels.rfind(",le=\"")?])
}

/// Label value escaping as prometheus-client does it.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Exemplars merged over the shards, per `(handler, method)`, or `(handler, method, code)` for
/// the `otel` names; only series that have one.
pub(super) type Merged = BTreeMap<(String, &'static str, Option<u16>), Vec<Option<Exemplar>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lines_name_their_series_whichever_place_le_has() {
        let first =
            "http_request_duration_seconds_bucket{le=\"0.1\",handler=\"/a\",method=\"GET\"} 3\n";
        let last =
            "http_request_duration_seconds_bucket{handler=\"/a\",method=\"GET\",le=\"+Inf\"} 3\n";
        for line in [first, last] {
            assert_eq!(
                series_of(line),
                Some("handler=\"/a\",method=\"GET\""),
                "{line}"
            );
        }
        assert_eq!(
            series_of("http_request_duration_seconds_sum{handler=\"/a\"} 1\n"),
            None
        );
        assert_eq!(
            series_of("http_request_duration_highr_seconds_bucket{le=\"1\"} 1\n"),
            None
        );
        let otel = "http_server_request_duration_seconds_bucket{http_route=\"/a\",http_request_method=\"GET\",http_response_status_code=\"200\",le=\"0.1\"} 3\n";
        assert_eq!(
            series_of(otel),
            Some("http_route=\"/a\",http_request_method=\"GET\",http_response_status_code=\"200\"")
        );
    }
}
