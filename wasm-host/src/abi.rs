//! Proxy-Wasm ABI v0.2.1 enumerations, numbered exactly as the spec (`abi-versions/v0.2.1`) and
//! the Rust SDK's `types.rs`. Values cross the boundary as `i32`.

/// `proxy_status_t`: the return value of every hostcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
#[expect(
    dead_code,
    reason = "the whole enumeration as numbered; the host returns some of it"
)]
pub(crate) enum Status {
    /// Success.
    Ok = 0,
    /// The key, context, metric or buffer does not exist (or not in this phase).
    NotFound = 1,
    /// An argument is out of range or makes no sense.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// A value could not be parsed.
    ParseFailure = 4,
    /// A guest pointer/length pair lies outside linear memory, or the guest allocator failed.
    InvalidMemoryAccess = 6,
    /// A queue is empty.
    Empty = 7,
    /// A compare-and-swap token did not match.
    CasMismatch = 8,
    /// The host could not do it.
    InternalFailure = 10,
    /// Not implemented. The Rust SDK panics on it for every call, so this host never returns it.
    Unimplemented = 12,
}

impl From<Status> for i32 {
    fn from(status: Status) -> i32 {
        status as i32
    }
}

/// `proxy_log_level_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum LogLevel {
    /// Trace.
    Trace = 0,
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical: the SDK's panic hook logs the panic message at this level before trapping.
    Critical = 5,
}

impl LogLevel {
    /// The level for a raw value, if it names one.
    pub(crate) fn from_i32(level: i32) -> Option<LogLevel> {
        Some(match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// `proxy_action_t`: what a data callback asks of the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Forward and keep going.
    Continue,
    /// Stop iteration until `proxy_continue_stream` (values above 1 also mean stop, as in Envoy).
    Pause,
}

impl Action {
    /// Envoy's reading: 0 continues, anything else stops.
    pub(crate) fn from_i32(action: i32) -> Action {
        if action == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// `proxy_buffer_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufferType {
    /// The request body, inside `on_request_body`.
    HttpRequestBody = 0,
    /// The response body, inside `on_response_body`.
    HttpResponseBody = 1,
    /// An HTTP callout's response body, inside `on_http_call_response`.
    HttpCallResponseBody = 4,
    /// A gRPC callout's response message, inside `on_grpc_receive` (the SDK's
    /// `GrpcReceiveBuffer`).
    GrpcReceiveBuffer = 5,
    /// The VM configuration, inside `on_vm_start`.
    VmConfiguration = 6,
    /// The plugin configuration, inside `on_configure`.
    PluginConfiguration = 7,
}

impl BufferType {
    /// The buffers this host has; TCP and foreign-function buffers are never available.
    pub(crate) fn from_i32(kind: i32) -> Option<BufferType> {
        Some(match kind {
            0 => BufferType::HttpRequestBody,
            1 => BufferType::HttpResponseBody,
            4 => BufferType::HttpCallResponseBody,
            5 => BufferType::GrpcReceiveBuffer,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            _ => return None,
        })
    }
}

/// `proxy_map_type_t`: the maps of an HTTP stream, of an HTTP callout's answer and of a gRPC
/// stream's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MapType {
    /// Request headers (pseudo-headers included).
    RequestHeaders = 0,
    /// Request trailers.
    RequestTrailers = 1,
    /// Response headers (`:status` included).
    ResponseHeaders = 2,
    /// Response trailers.
    ResponseTrailers = 3,
    /// A gRPC stream's initial metadata, inside `on_grpc_receive_initial_metadata`.
    GrpcReceiveInitialMetadata = 4,
    /// A gRPC stream's trailing metadata, inside `on_grpc_receive_trailing_metadata`.
    GrpcReceiveTrailingMetadata = 5,
    /// An HTTP callout's response headers (`:status` included), inside `on_http_call_response`.
    HttpCallResponseHeaders = 6,
    /// An HTTP callout's response trailers, inside `on_http_call_response`.
    HttpCallResponseTrailers = 7,
}

impl MapType {
    /// The map for a raw value.
    pub(crate) fn from_i32(kind: i32) -> Option<MapType> {
        Some(match kind {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            4 => MapType::GrpcReceiveInitialMetadata,
            5 => MapType::GrpcReceiveTrailingMetadata,
            6 => MapType::HttpCallResponseHeaders,
            7 => MapType::HttpCallResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_metric_type_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MetricType {
    /// Monotonic counter.
    Counter = 0,
    /// Gauge.
    Gauge = 1,
    /// Histogram of integer samples.
    Histogram = 2,
}

impl MetricType {
    /// The type for a raw value (`None` answers `BadArgument`).
    pub(crate) fn from_i32(kind: i32) -> Option<MetricType> {
        Some(match kind {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// The root context id: ids come from one per-VM counter starting at 1 (0 is the VM itself).
pub(crate) const ROOT_CONTEXT_ID: u32 = 1;

/// The ABI version markers this host accepts (exported functions, never called).
pub(crate) const ABI_VERSIONS: [&str; 2] = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];
