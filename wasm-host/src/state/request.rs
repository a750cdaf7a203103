//! One request's view inside an instance: the request facts taken when it arrived, what is
//! known of the response so far, and the maps and values a guest reads or writes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use rustc_hash::FxHashMap;

use super::Pairs;
use crate::abi::MapType;
use crate::metrics::host::clock;
use crate::pairs::{MapView, StatusDigits};

/// The request facts properties are made of, taken when the request arrives: cheap clones
/// (shared bytes), and anything derived (host, size, wall-clock time) computed only when a
/// guest asks for it.
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    /// Method.
    pub method: http::Method,
    /// Target as received (path and query; the authority when absolute-form).
    pub uri: http::Uri,
    /// HTTP version.
    pub version: http::Version,
    /// Monotonic start, for `request.duration` and `request.time`: a raw reading of the
    /// calibrated TSC clock the guest calls are timed with (cheaper than `Instant::now`).
    pub started: u64,
    /// Matched route template (`route_name`, `xds.route_name`).
    pub route: Option<Arc<str>>,
    /// Client and local addresses, connection number.
    pub peer: Option<serve::Peer>,
}

impl RequestInfo {
    /// Path and query as received.
    pub(crate) fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// `HTTP/1.1` etc.
    pub(crate) fn protocol(&self) -> &'static str {
        match self.version {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2",
            _ => "HTTP/1.1",
        }
    }

    /// The Host header, else the target's authority, else empty.
    pub(crate) fn host<'a>(&'a self, headers: &'a HeaderMap) -> &'a str {
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| self.uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
    }

    /// A start reading for a request arriving now.
    pub(crate) fn now() -> u64 {
        clock().raw()
    }

    /// Time since the request arrived.
    pub(crate) fn elapsed(&self) -> Duration {
        let clock = clock();
        Duration::from_nanos(clock.delta_as_nanos(self.started, clock.raw()))
    }

    /// Wall-clock start (read from the monotonic one: one clock read per request, not two).
    pub(crate) fn time(&self) -> SystemTime {
        SystemTime::now() - self.elapsed()
    }
}

/// What is known about the response so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct ResponseInfo {
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
pub(crate) struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
    /// Extra headers.
    pub headers: Pairs,
}

/// One request's view, keyed by its context id. Header maps are shared with the filter
/// (`Arc`, copied only when a guest writes): nothing is serialised until a guest reads it.
#[derive(Debug)]
pub(crate) struct Stream {
    /// Request facts.
    pub info: Arc<RequestInfo>,
    /// Response facts.
    pub response: ResponseInfo,
    /// Request headers.
    pub request_headers: Arc<HeaderMap>,
    /// Response headers, once received.
    pub response_headers: Option<Arc<HeaderMap>>,
    /// Request trailers, if any.
    pub request_trailers: Option<Arc<HeaderMap>>,
    /// Response trailers, if any.
    pub response_trailers: Option<Arc<HeaderMap>>,
    /// Set when the guest changed the request headers.
    pub request_headers_changed: bool,
    /// Set when the guest changed the response headers.
    pub response_headers_changed: bool,
    /// Values written with `proxy_set_property`, by raw path (FxHash: empty costs nothing to
    /// make, and the keys are the guest's own).
    pub properties: FxHashMap<Vec<u8>, Vec<u8>>,
    /// A pending local response (boxed: rare, and the view is moved into a map per request).
    pub local_response: Option<Box<LocalResponse>>,
    /// The guest called `proxy_continue_stream` (or closed the stream).
    pub resumed: bool,
    /// The guest called `proxy_done`.
    pub done: bool,
    /// A local reply was accepted for this context (a second one is refused, as in Envoy).
    pub local_reply_sent: bool,
    /// The response head has left: a local reply can no longer be sent.
    pub head_sent: bool,
}

impl Stream {
    /// A fresh view for a request with these headers.
    pub(crate) fn new(info: Arc<RequestInfo>, request_headers: Arc<HeaderMap>) -> Stream {
        Stream {
            info,
            response: ResponseInfo::default(),
            request_headers,
            response_headers: None,
            request_trailers: None,
            response_trailers: None,
            request_headers_changed: false,
            response_headers_changed: false,
            properties: FxHashMap::default(),
            local_response: None,
            resumed: false,
            done: false,
            local_reply_sent: false,
            head_sent: false,
        }
    }

    /// The map of that type as the guest sees it, if this phase has it; `f` gets the view
    /// (pseudo-headers live on the stack for the call).
    pub(crate) fn with_map<R>(&self, map: MapType, f: impl FnOnce(MapView<'_>) -> R) -> Option<R> {
        match map {
            MapType::RequestHeaders => {
                let info = &self.info;
                let pseudo = [
                    (":method", info.method.as_str()),
                    (":path", info.path()),
                    (":authority", info.host(&self.request_headers)),
                    (":scheme", "http"),
                ];
                Some(f(MapView {
                    pseudo: &pseudo,
                    headers: &self.request_headers,
                }))
            }
            MapType::ResponseHeaders => {
                let headers = self.response_headers.as_deref()?;
                let digits = StatusDigits::new(self.response.code);
                let status = digits.as_ref().map_or("", StatusDigits::as_str);
                Some(f(MapView {
                    pseudo: &[(":status", status)],
                    headers,
                }))
            }
            MapType::RequestTrailers => self.request_trailers.as_deref().map(|headers| {
                f(MapView {
                    pseudo: &[],
                    headers,
                })
            }),
            MapType::ResponseTrailers => self.response_trailers.as_deref().map(|headers| {
                f(MapView {
                    pseudo: &[],
                    headers,
                })
            }),
            // A callout's maps belong to the instance, not to a stream.
            MapType::HttpCallResponseHeaders
            | MapType::HttpCallResponseTrailers
            | MapType::GrpcReceiveInitialMetadata
            | MapType::GrpcReceiveTrailingMetadata => None,
        }
    }

    /// The real headers of that map for writing (copied first if the filter still shares
    /// them), marking it changed.
    pub(crate) fn map_mut(&mut self, map: MapType) -> Option<&mut HeaderMap> {
        let shared = match map {
            MapType::RequestHeaders => {
                self.request_headers_changed = true;
                &mut self.request_headers
            }
            MapType::ResponseHeaders => {
                self.response_headers_changed = true;
                self.response_headers.as_mut()?
            }
            MapType::RequestTrailers => self.request_trailers.as_mut()?,
            MapType::ResponseTrailers => self.response_trailers.as_mut()?,
            MapType::HttpCallResponseHeaders
            | MapType::HttpCallResponseTrailers
            | MapType::GrpcReceiveInitialMetadata
            | MapType::GrpcReceiveTrailingMetadata => return None,
        };
        Some(Arc::make_mut(shared))
    }
}
