//! The closed label sets of the host's plugin families: the guest callbacks (`callback`, the
//! export's own name) and why an instance was discarded (`kind`). Every value exists from a
//! plugin's load on, so each series reads 0 rather than "No data".

/// Why an instance was discarded (or never made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// A callback ran past its CPU deadline.
    Deadline,
    /// The guest asked for memory past its limit.
    Memory,
    /// A replacement instance failed to start.
    Instantiate,
    /// A paused request was not resumed in time (the request continued without the plugin).
    PauseTimeout,
}

impl FaultKind {
    /// Every kind: each plugin's fault series exist (at 0) from its load on.
    pub(crate) const ALL: [FaultKind; 5] = [
        FaultKind::Trap,
        FaultKind::Deadline,
        FaultKind::Memory,
        FaultKind::Instantiate,
        FaultKind::PauseTimeout,
    ];

    /// The `kind` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::Memory => "memory",
            FaultKind::Instantiate => "instantiate",
            FaultKind::PauseTimeout => "pause_timeout",
        }
    }
}

/// The guest callbacks the host calls (the `callback` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Callback {
    /// `_initialize`.
    Initialize,
    /// `proxy_on_context_create`.
    ContextCreate,
    /// `proxy_on_vm_start`.
    VmStart,
    /// `proxy_on_configure`.
    Configure,
    /// `proxy_on_tick`.
    Tick,
    /// `proxy_on_request_headers`.
    RequestHeaders,
    /// `proxy_on_request_body`.
    RequestBody,
    /// `proxy_on_request_trailers`.
    RequestTrailers,
    /// `proxy_on_response_headers`.
    ResponseHeaders,
    /// `proxy_on_response_body`.
    ResponseBody,
    /// `proxy_on_response_trailers`.
    ResponseTrailers,
    /// `proxy_on_log`.
    Log,
    /// `proxy_on_done`.
    Done,
    /// `proxy_on_delete`.
    Delete,
    /// `proxy_on_http_call_response`.
    HttpCallResponse,
    /// `proxy_on_queue_ready`.
    QueueReady,
    /// `proxy_on_grpc_receive`.
    GrpcReceive,
    /// `proxy_on_grpc_close`.
    GrpcClose,
    /// `proxy_on_grpc_receive_initial_metadata`.
    GrpcInitialMetadata,
    /// `proxy_on_grpc_receive_trailing_metadata`.
    GrpcTrailingMetadata,
}

impl Callback {
    /// Every callback, in declaration order.
    pub(crate) const ALL: [Callback; 20] = [
        Callback::Initialize,
        Callback::ContextCreate,
        Callback::VmStart,
        Callback::Configure,
        Callback::Tick,
        Callback::RequestHeaders,
        Callback::RequestBody,
        Callback::RequestTrailers,
        Callback::ResponseHeaders,
        Callback::ResponseBody,
        Callback::ResponseTrailers,
        Callback::Log,
        Callback::Done,
        Callback::Delete,
        Callback::HttpCallResponse,
        Callback::QueueReady,
        Callback::GrpcReceive,
        Callback::GrpcClose,
        Callback::GrpcInitialMetadata,
        Callback::GrpcTrailingMetadata,
    ];

    /// The export's name, which is also the label.
    pub(crate) fn export(self) -> &'static str {
        match self {
            Callback::Initialize => "_initialize",
            Callback::ContextCreate => "proxy_on_context_create",
            Callback::VmStart => "proxy_on_vm_start",
            Callback::Configure => "proxy_on_configure",
            Callback::Tick => "proxy_on_tick",
            Callback::RequestHeaders => "proxy_on_request_headers",
            Callback::RequestBody => "proxy_on_request_body",
            Callback::RequestTrailers => "proxy_on_request_trailers",
            Callback::ResponseHeaders => "proxy_on_response_headers",
            Callback::ResponseBody => "proxy_on_response_body",
            Callback::ResponseTrailers => "proxy_on_response_trailers",
            Callback::Log => "proxy_on_log",
            Callback::Done => "proxy_on_done",
            Callback::Delete => "proxy_on_delete",
            Callback::HttpCallResponse => "proxy_on_http_call_response",
            Callback::QueueReady => "proxy_on_queue_ready",
            Callback::GrpcReceive => "proxy_on_grpc_receive",
            Callback::GrpcClose => "proxy_on_grpc_close",
            Callback::GrpcInitialMetadata => "proxy_on_grpc_receive_initial_metadata",
            Callback::GrpcTrailingMetadata => "proxy_on_grpc_receive_trailing_metadata",
        }
    }
}
