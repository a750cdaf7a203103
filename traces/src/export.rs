//! OTLP/HTTP (protobuf) span export, off the request path.
//!
//! A finished span goes into a bounded queue with a non-blocking `try_send`; one background
//! task takes spans out in batches (up to [`MAX_BATCH`], once per batch interval or as soon as a
//! full batch waits) and POSTs them to the collector's `/v1/traces`, over TLS for an `https://`
//! endpoint ([`crate::tls`]). A span does not wake the task by itself: at 1 % sampling, a
//! wake-up per span (a futex call on the request path and a context switch) cost more than the
//! sampled spans. A full queue, a dead or a slow collector, or one whose certificate does not
//! verify, cost only the spans dropped, each counted in `otlp_spans_dropped_total`.

use std::{io::Write as _, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Uri, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::{
    span::{Span, export_request},
    tls::{Roots, connector},
};

/// Most spans in one export request.
pub const MAX_BATCH: usize = 512;
/// Spans waiting for export; past this, new spans are dropped.
pub const QUEUE_CAPACITY: usize = 4096;

/// Where and how spans are exported.
#[derive(Clone, Debug)]
pub struct Export {
    /// The traces endpoint, `http(s)://host:port/v1/traces`.
    pub endpoint: Uri,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// How long a batch waits to fill before it is sent.
    pub interval: Duration,
    /// How long one export may take before its spans count as dropped.
    pub timeout: Duration,
    /// Sent with every export (e.g. a collector's API key).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body's encoding.
    pub compression: Compression,
    /// What an `https://` endpoint's certificate must chain to.
    pub roots: Roots,
}

/// How an export body is encoded (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// As is.
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// `otlp_spans_exported_total` and `otlp_spans_dropped_total{reason}`.
#[derive(Clone, Debug)]
struct ExportMetrics {
    exported: Counter,
    dropped: Family<Reason, Counter>,
}

impl ExportMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            exported: Counter::default(),
            dropped: Family::default(),
        };
        for reason in [QUEUE_FULL, EXPORT_FAILED] {
            let _ = metrics.dropped.get_or_create(&Reason { reason });
        }
        registry.register(
            "otlp_spans_exported",
            "Spans the OTLP collector accepted",
            metrics.exported.clone(),
        );
        registry.register(
            "otlp_spans_dropped",
            "Spans not exported: the queue was full, or the collector failed or was too slow",
            metrics.dropped.clone(),
        );
        metrics
    }

    fn drop_spans(&self, reason: &'static str, count: usize) {
        self.dropped
            .get_or_create(&Reason { reason })
            .inc_by(count as u64);
    }
}

const QUEUE_FULL: &str = "queue_full";
const EXPORT_FAILED: &str = "export_failed";

/// Where finished spans go. Cheap to clone; a disabled sink does nothing.
#[derive(Clone, Debug)]
pub struct SpanSink(Option<Arc<Queue>>);

#[derive(Debug)]
struct Queue {
    sender: mpsc::Sender<Span>,
    /// Wakes the export task early, when a full batch is waiting.
    full_batch: Arc<Notify>,
    metrics: ExportMetrics,
}

impl SpanSink {
    /// Registers the export counters into `registry` and, when `export` is set, starts the
    /// export task on the current tokio runtime.
    pub fn start(export: Option<Export>, registry: &mut Registry) -> Self {
        let metrics = ExportMetrics::register(registry);
        let Some(export) = export else {
            return Self(None);
        };
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let full_batch = Arc::new(Notify::new());
        info!(endpoint = %export.endpoint, service = %export.service_name, "exporting spans over OTLP/HTTP");
        tokio::spawn(run(export, receiver, full_batch.clone(), metrics.clone()));
        Self(Some(Arc::new(Queue {
            sender,
            full_batch,
            metrics,
        })))
    }

    /// A sink that exports nothing and counts nothing.
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Whether spans are exported.
    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Queues a finished span; never waits. A full queue drops it, counted.
    pub fn record(&self, span: Span) {
        let Some(queue) = &self.0 else { return };
        if queue.sender.try_send(span).is_err() {
            queue.metrics.drop_spans(QUEUE_FULL, 1);
        } else if queue.sender.capacity() <= QUEUE_CAPACITY - MAX_BATCH {
            queue.full_batch.notify_one();
        }
    }
}

async fn run(
    export: Export,
    mut receiver: mpsc::Receiver<Span>,
    full_batch: Arc<Notify>,
    metrics: ExportMetrics,
) {
    let client: Client<HttpsConnector<HttpConnector>, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector(&export.roots));
    let mut failing = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(export.interval) => {}
            () = full_batch.notified() => {}
        }
        // Everything queued by now, in batches; spans arriving meanwhile wait for the next turn.
        let mut pending = receiver.len();
        if pending == 0 && receiver.is_closed() {
            return; // every sink is gone
        }
        while pending > 0 {
            let mut batch = Vec::with_capacity(pending.min(MAX_BATCH));
            let count = receiver.recv_many(&mut batch, pending.min(MAX_BATCH)).await;
            if count == 0 {
                break;
            }
            pending -= count;
            let body = export_request(&export.service_name, batch).encode_to_vec();
            match send(&client, &export, body).await {
                Ok(()) => {
                    metrics.exported.inc_by(count as u64);
                    if failing {
                        info!(endpoint = %export.endpoint, "span export works again");
                        failing = false;
                    }
                }
                Err(error) => {
                    metrics.drop_spans(EXPORT_FAILED, count);
                    // Logged when it starts failing, not once per batch.
                    if !failing {
                        warn!(endpoint = %export.endpoint, %error, dropped = count, "span export failed; dropping spans until it works");
                        failing = true;
                    }
                }
            }
        }
    }
}

async fn send(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    export: &Export,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut request = Request::post(export.endpoint.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf");
    for (name, value) in &export.headers {
        request = request.header(name, value);
    }
    let body = match export.compression {
        Compression::None => body,
        Compression::Gzip => {
            request = request.header(header::CONTENT_ENCODING, "gzip");
            gzip(&body).map_err(|e| format!("compressing: {e}"))?
        }
    };
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(export.timeout, client.request(request))
        .await
        .map_err(|_| format!("no answer within {:?}", export.timeout))?
        .map_err(|e| causes(&e))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("status {}", response.status()))
    }
}

/// An error and its sources: the client's own says only "client error (Connect)", the
/// reason (a refused connection, an unknown certificate issuer) is in its sources.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}
