//! A service (root context only) that follows a gRPC server stream, to show `open_grpc_stream`:
//! on configure it opens `grpc.health.v1.Health/<method>` on a `[[clusters]]` entry, sends one
//! `HealthCheckRequest { service }` and closes its side; each event of the stream becomes a
//! series (see README.md). With `<cancel_after>` > 0 it cancels the stream after that many
//! messages, after which nothing more of it arrives.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, RootContext};
use proxy_wasm::types::{LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Watch::default()));
}}

/// The series, in the order of `Watch::metrics`.
const METRICS: [(MetricType, &str); 7] = [
    (MetricType::Gauge, "grpc_watch_status"),
    (MetricType::Counter, "grpc_watch_messages_total"),
    (MetricType::Gauge, "grpc_watch_initial_metadata"),
    (MetricType::Gauge, "grpc_watch_trailing_status"),
    (MetricType::Counter, "grpc_watch_closes_total"),
    (MetricType::Gauge, "grpc_watch_close_status"),
    (MetricType::Counter, "grpc_watch_open_failed_total"),
];
const STATUS: usize = 0;
const MESSAGES: usize = 1;
const INITIAL: usize = 2;
const TRAILING: usize = 3;
const CLOSES: usize = 4;
const CLOSE_STATUS: usize = 5;
const OPEN_FAILED: usize = 6;

#[derive(Default)]
struct Watch {
    metrics: Vec<u32>,
    cancel_after: u64,
    messages: u64,
}

impl Watch {
    fn set(&self, which: usize, value: u64) {
        let _ = hostcalls::record_metric(self.metrics[which], value);
    }

    fn add(&self, which: usize) {
        let _ = hostcalls::increment_metric(self.metrics[which], 1);
    }
}

/// `HealthCheckRequest { service }`: field 1, length-delimited (short names only).
fn health_check_request(service: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(service.len()).ok().filter(|l| *l < 0x80)?;
    let mut message = vec![0x0a, len];
    message.extend_from_slice(service.as_bytes());
    Some(message)
}

/// `HealthCheckResponse.status` (field 1, varint); absent is 0 (UNKNOWN).
fn serving_status(message: &[u8]) -> u64 {
    match message {
        [0x08, status, ..] if *status < 0x80 => u64::from(*status),
        _ => 0,
    }
}

impl Context for Watch {
    fn on_grpc_stream_initial_metadata(&mut self, _token: u32, _headers: u32) {
        let grpc = self
            .get_grpc_stream_initial_metadata_value("content-type")
            .is_some_and(|v| v.starts_with(b"application/grpc"));
        self.set(INITIAL, u64::from(grpc));
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        let message = self.get_grpc_stream_message(0, size).unwrap_or_default();
        self.set(STATUS, serving_status(&message));
        self.add(MESSAGES);
        self.messages += 1;
        if self.messages == self.cancel_after {
            self.cancel_grpc_stream(token);
        }
    }

    fn on_grpc_stream_trailing_metadata(&mut self, _token: u32, _trailers: u32) {
        let status = self
            .get_grpc_stream_trailing_metadata_value("grpc-status")
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(status) = status {
            self.set(TRAILING, status);
        }
    }

    fn on_grpc_stream_close(&mut self, _token: u32, status_code: u32) {
        self.add(CLOSES);
        self.set(CLOSE_STATUS, u64::from(status_code));
        let (code, message) = self.get_grpc_status();
        let _ = hostcalls::log(
            LogLevel::Info,
            &format!("stream closed: {code} {}", message.unwrap_or_default()),
        );
    }
}

impl RootContext for Watch {
    /// Configuration: `<cluster> <method> <service> <cancel_after>`, e.g.
    /// `health Watch redside.Items 0`.
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self
            .get_plugin_configuration()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let [cluster, method, service, cancel_after] = words[..] else {
            let usage = "configuration: `<cluster> <method> <service> <cancel_after>`";
            hostcalls::log(LogLevel::Error, usage).ok();
            return false;
        };
        let (Ok(cancel_after), Some(request)) =
            (cancel_after.parse::<u64>(), health_check_request(service))
        else {
            return false;
        };
        for (kind, name) in METRICS {
            match hostcalls::define_metric(kind, name) {
                Ok(id) => self.metrics.push(id),
                Err(_) => return false,
            }
        }
        self.cancel_after = cancel_after;
        let metadata = vec![("x-watcher", &b"grpc-watch"[..])];
        match self.open_grpc_stream(cluster, "grpc.health.v1.Health", method, metadata) {
            Ok(token) => self.send_grpc_stream_message(token, Some(&request), true),
            Err(_) => self.add(OPEN_FAILED),
        }
        true
    }
}
