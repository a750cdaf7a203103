//! What a plugin instance's hostcalls can see: `HostState` is the `T` of `Store<T>`, one per
//! instance, holding the per-request views (`Stream`, in `request.rs`) of the requests whose
//! contexts live on that instance. The filter fills a view before each callback and reads it
//! back afterwards.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderMap;
use rustc_hash::FxHashMap;
use wasmtime::{Memory, TypedFunc};

use super::abi::{BufferType, LogLevel, MapType};
use super::callout::{CallAnswer, PendingCall};
use super::cluster::ClusterSet;
use super::config::PluginConfig;
use super::grpc_stream::{PendingStream, StreamHandle};
use super::limits::{CpuDeadline, Limiter};
use super::metrics::MetricStore;
use super::pairs::MapView;
use super::queues::{Owner, QueueRegistry};
use super::shared_data::SharedData;

mod request;

pub(crate) use request::{LocalResponse, RequestInfo, Stream};

/// A header map a guest wrote (`proxy_send_local_response`): lower-case names, raw values.
pub(crate) type Pairs = Vec<(String, Vec<u8>)>;

/// What every instance of one plugin shares.
#[derive(Debug)]
pub(crate) struct PluginShared {
    /// The plugin's configuration entry.
    pub config: PluginConfig,
    /// Its metrics (values live in the host, so they survive instance restarts).
    pub metrics: Arc<MetricStore>,
    /// Shared data of its VM id.
    pub shared_data: Arc<SharedData>,
    /// The `upstream.address` property (`host:port`), the same for every request.
    pub upstream: Option<Arc<str>>,
    /// The `[[clusters]]` HTTP callouts may target (swapped on reload).
    pub clusters: Arc<ArcSwap<ClusterSet>>,
    /// Shared queues, process-wide.
    pub queues: Arc<QueueRegistry>,
    /// Counts items dropped from the queues this plugin registers.
    pub queue_drops: prometheus_client::metrics::counter::Counter,
}

/// A buffer readable during the current callback (a configuration or a body).
#[derive(Debug)]
pub(crate) struct Buffer {
    /// Which one.
    pub kind: BufferType,
    /// Its bytes (shared with the body they came from; copied only when the guest writes).
    pub bytes: Bytes,
    /// Set when the guest replaced part of it.
    pub changed: bool,
}

/// The `T` of an instance's `Store<T>`.
pub(crate) struct HostState {
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
    /// Request views by context id (FxHash: ids are the host's own, not an attacker's, and
    /// SipHash showed in the per-request profile).
    pub streams: FxHashMap<u32, Stream>,
    /// The buffer of the current callback.
    pub buffer: Option<Buffer>,
    /// The tick period the root context asked for (`None`: no change since last read).
    pub tick_period: Option<Duration>,
    /// The last CRITICAL message (the SDK's panic hook logs the panic there before trapping).
    pub last_critical: Option<String>,
    /// The level `proxy_get_log_level` reports (the subscriber's, at instance start).
    pub log_level: LogLevel,
    /// HTTP callouts asked for during the current callback, started once it returns.
    pub pending_calls: Vec<PendingCall>,
    /// Next callout token (unique per instance: the SDK routes answers by token).
    pub next_token: u32,
    /// The callout answer `on_http_call_response` is reading, during that callback only.
    pub call_answer: Option<CallAnswer>,
    /// Tokens of gRPC calls not answered yet (a cancelled one leaves, and its answer is dropped).
    pub grpc_calls: HashSet<u32>,
    /// gRPC streams open or opening, by token (a cancelled one leaves, and nothing more of it is
    /// delivered).
    pub grpc_streams: HashMap<u32, StreamHandle>,
    /// gRPC streams opened during the current callback, started once it returns.
    pub pending_streams: Vec<PendingStream>,
    /// The metadata map the current gRPC stream callback reads.
    pub grpc_metadata: Option<(MapType, HeaderMap)>,
    /// What `proxy_get_status` reports: the gRPC status and message of the answer being
    /// delivered (`None`: 0 and no message).
    pub grpc_status: Option<(u32, String)>,
    /// Queues this instance registered since the last look (their watchers start after the
    /// callback).
    pub registered_queues: Vec<u32>,
    /// This instance as a queue owner (its plugin, slot and generation).
    pub owner: Option<Owner>,
    /// The deadline of the guest call in progress.
    pub deadline: CpuDeadline,
}

impl HostState {
    /// State for a new instance of `plugin`.
    pub(crate) fn new(plugin: Arc<PluginShared>, owner: Owner) -> HostState {
        let limiter = Limiter::new(plugin.config.memory_limit_bytes());
        HostState {
            plugin,
            limiter,
            memory: None,
            alloc: None,
            current: 0,
            effective: 0,
            next_context_id: 2,
            streams: FxHashMap::default(),
            buffer: None,
            tick_period: None,
            last_critical: None,
            log_level: current_log_level(),
            pending_calls: Vec::new(),
            next_token: 1,
            call_answer: None,
            grpc_calls: HashSet::new(),
            grpc_streams: HashMap::new(),
            pending_streams: Vec::new(),
            grpc_metadata: None,
            grpc_status: None,
            registered_queues: Vec::new(),
            owner: Some(owner),
            deadline: CpuDeadline::default(),
        }
    }

    /// The map of that type as the guest sees it now: a stream's map of the effective context,
    /// or the answer of the callout being delivered.
    pub(crate) fn with_map<R>(&self, map: MapType, f: impl FnOnce(MapView<'_>) -> R) -> Option<R> {
        match map {
            MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers => {
                self.call_answer.as_ref()?.with_map(map, f)
            }
            MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => {
                let (kind, headers) = self.grpc_metadata.as_ref()?;
                (*kind == map).then(|| {
                    f(MapView {
                        pseudo: &[],
                        headers,
                    })
                })
            }
            _ => self.stream()?.with_map(map, f),
        }
    }

    /// The stream view the hostcall acts on, if the effective context is a request.
    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective)
    }

    /// Mutable access to the effective stream view.
    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
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
