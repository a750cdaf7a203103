//! What a plugin instance's hostcalls can see: `HostState` is the `T` of `Store<T>`, one per
//! instance, holding the per-request views (`Stream`) of the requests whose contexts live on
//! that instance. The filter fills a view before each callback and reads it back afterwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::{Memory, TypedFunc};

use super::abi::{BufferType, LogLevel, MapType};
use super::config::PluginConfig;
use super::limits::Limiter;
use super::metrics::MetricStore;
use super::shared_data::SharedData;

/// A header map as the guest sees it: lower-case names, raw values, in order.
pub type Pairs = Vec<(String, Vec<u8>)>;

/// What every instance of one plugin shares.
#[derive(Debug)]
pub struct PluginShared {
    /// The plugin's configuration entry.
    pub config: PluginConfig,
    /// Its metrics (values live in the host, so they survive instance restarts).
    pub metrics: Arc<MetricStore>,
    /// Shared data of its VM id.
    pub shared_data: Arc<SharedData>,
}

/// The request facts properties are made of, fixed when the request arrives.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Method.
    pub method: String,
    /// Path and query, as received.
    pub path: String,
    /// `http` (the sidecar does not terminate TLS).
    pub scheme: &'static str,
    /// Host header or authority.
    pub host: String,
    /// `HTTP/1.1` etc.
    pub protocol: &'static str,
    /// Wall-clock start.
    pub time: SystemTime,
    /// Monotonic start, for `request.duration`.
    pub started: Instant,
    /// Content-Length, if declared.
    pub size: Option<u64>,
    /// Matched route template (`route_name`, `xds.route_name`).
    pub route: Option<String>,
    /// Client address.
    pub source: Option<SocketAddr>,
    /// Our address.
    pub destination: Option<SocketAddr>,
    /// Connection number.
    pub connection_id: Option<u64>,
    /// Upstream authority (`host:port`).
    pub upstream: Option<String>,
}

/// What is known about the response so far.
#[derive(Clone, Debug, Default)]
pub struct ResponseInfo {
    /// Status code, once response headers exist.
    pub code: Option<u16>,
    /// Body bytes, once known.
    pub size: Option<u64>,
    /// Set when the request is complete (in `on_log`).
    pub duration: Option<Duration>,
    /// Why the sidecar answered, e.g. `via_upstream`, `local_reply`.
    pub code_details: Option<&'static str>,
}

/// A local response a plugin asked for (`proxy_send_local_response`), applied after the
/// callback returns (never re-entrantly).
#[derive(Clone, Debug)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Pairs,
}

/// One request's view, keyed by its context id.
#[derive(Debug)]
pub struct Stream {
    /// Request facts.
    pub info: Arc<RequestInfo>,
    /// Response facts.
    pub response: ResponseInfo,
    /// Request headers (pseudo-headers first).
    pub request_headers: Pairs,
    /// Response headers (`:status` first), once received.
    pub response_headers: Option<Pairs>,
    /// Request trailers, if any.
    pub request_trailers: Option<Pairs>,
    /// Response trailers, if any.
    pub response_trailers: Option<Pairs>,
    /// Set when the guest changed the request headers.
    pub request_headers_changed: bool,
    /// Set when the guest changed the response headers.
    pub response_headers_changed: bool,
    /// Values written with `proxy_set_property`, by raw path.
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    /// A pending local response.
    pub local_response: Option<LocalResponse>,
    /// The guest called `proxy_continue_stream` (or closed the stream).
    pub resumed: bool,
    /// The guest called `proxy_done`.
    pub done: bool,
}

impl Stream {
    /// A fresh view for a request with these headers.
    pub fn new(info: Arc<RequestInfo>, request_headers: Pairs) -> Stream {
        Stream {
            info,
            response: ResponseInfo::default(),
            request_headers,
            response_headers: None,
            request_trailers: None,
            response_trailers: None,
            request_headers_changed: false,
            response_headers_changed: false,
            properties: HashMap::new(),
            local_response: None,
            resumed: false,
            done: false,
        }
    }

    /// The map of that type, if this phase has it.
    pub fn map(&self, map: MapType) -> Option<&Pairs> {
        match map {
            MapType::RequestHeaders => Some(&self.request_headers),
            MapType::RequestTrailers => self.request_trailers.as_ref(),
            MapType::ResponseHeaders => self.response_headers.as_ref(),
            MapType::ResponseTrailers => self.response_trailers.as_ref(),
        }
    }

    /// The map for writing, marking it changed.
    pub fn map_mut(&mut self, map: MapType) -> Option<&mut Pairs> {
        match map {
            MapType::RequestHeaders => {
                self.request_headers_changed = true;
                Some(&mut self.request_headers)
            }
            MapType::ResponseHeaders => {
                self.response_headers_changed = true;
                self.response_headers.as_mut()
            }
            MapType::RequestTrailers => self.request_trailers.as_mut(),
            MapType::ResponseTrailers => self.response_trailers.as_mut(),
        }
    }
}

/// A buffer readable during the current callback (a configuration or a body).
#[derive(Debug)]
pub struct Buffer {
    /// Which one.
    pub kind: BufferType,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Set when the guest replaced part of it.
    pub changed: bool,
}

/// The `T` of an instance's `Store<T>`.
pub struct HostState {
    /// The plugin this instance belongs to.
    pub plugin: Arc<PluginShared>,
    /// Memory limit bookkeeping.
    pub limiter: Limiter,
    /// The guest's exported memory.
    pub memory: Option<Memory>,
    /// The guest's allocator (an `Arc`: cloning a `TypedFunc` per allocation is not free).
    pub alloc: Option<Arc<TypedFunc<i32, i32>>>,
    /// The context whose callback is running.
    pub current: u32,
    /// The context hostcalls act on (`proxy_set_effective_context`), reset per callback.
    pub effective: u32,
    /// Next context id to hand out (root is 1).
    pub next_context_id: u32,
    /// Request views by context id.
    pub streams: HashMap<u32, Stream>,
    /// The buffer of the current callback.
    pub buffer: Option<Buffer>,
    /// The tick period the root context asked for (`None`: no change since last read).
    pub tick_period: Option<Duration>,
    /// The last CRITICAL message (the SDK's panic hook logs the panic there before trapping).
    pub last_critical: Option<String>,
    /// The level `proxy_get_log_level` reports (the subscriber's, at instance start).
    pub log_level: LogLevel,
}

impl HostState {
    /// State for a new instance of `plugin`.
    pub fn new(plugin: Arc<PluginShared>) -> HostState {
        let limiter = Limiter::new(plugin.config.memory_limit_bytes());
        HostState {
            plugin,
            limiter,
            memory: None,
            alloc: None,
            current: 0,
            effective: 0,
            next_context_id: 2,
            streams: HashMap::new(),
            buffer: None,
            tick_period: None,
            last_critical: None,
            log_level: current_log_level(),
        }
    }

    /// The stream view the hostcall acts on, if the effective context is a request.
    pub fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective)
    }

    /// Mutable access to the effective stream view.
    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective)
    }
}

/// The most verbose level the sidecar's `tracing` subscriber records, as the guest's
/// `proxy_get_log_level` sees it (plugins use it to skip formatting what would be dropped).
fn current_log_level() -> LogLevel {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        LevelFilter::ERROR => LogLevel::Error,
        _ => LogLevel::Critical,
    }
}
