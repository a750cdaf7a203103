//! Callouts (`proxy_http_call`, and `proxy_grpc_call` read by [`crate::grpc_call`]): the
//! hostcall records a [`PendingCall`]; once the guest callback has returned, the plugin starts
//! it as a task ([`run`]) on the caller's runtime, and the answer comes back to the same
//! instance as `proxy_on_http_call_response`, with headers, body and trailers readable through
//! the usual map and buffer calls ([`CallAnswer`]) (or as a gRPC callback).
//!
//! Failures are answers, as in Envoy: a refused or timed-out connection, a call past the
//! cluster's `timeout_ms` (or the plugin's shorter one), a call over `max_concurrent_calls`, a
//! body over `max_response_bytes` all deliver `on_http_call_response` with zero headers, zero
//! body and zero trailers, never a trap.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full, Limited};

use super::abi::MapType;
use super::cluster::Cluster;
use super::grpc_call::{self, GrpcEnd};
use super::pairs::{MapView, StatusDigits};

/// A callout the guest asked for, not started yet.
#[derive(Debug)]
pub(crate) struct PendingCall {
    /// The token returned to the guest.
    pub token: u32,
    /// The context that asked (the answer goes to it).
    pub ctx: u32,
    /// The target.
    pub cluster: Arc<Cluster>,
    /// The request, its URI already absolute.
    pub request: Request<Full<Bytes>>,
    /// The guest's timeout in milliseconds (0: the cluster's).
    pub timeout_ms: u32,
    /// HTTP or gRPC.
    pub kind: CallKind,
}

/// Which hostcall made a call: it picks the connection pool and how the answer is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// `proxy_http_call`, over HTTP/1.
    Http,
    /// `proxy_grpc_call`, over h2c (see [`crate::grpc_call`]).
    Grpc,
}

/// How a callout ended (the `result` label of `sidecar_plugin_callouts_total`); a gRPC call
/// that got an HTTP/2 response is a `Response` whatever its grpc-status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallResult {
    /// An HTTP response, whatever its status.
    Response,
    /// No answer within the timeout.
    Timeout,
    /// The connection failed (refused, unreachable, connect timeout).
    Refused,
    /// Over the cluster's `max_concurrent_calls`.
    Overflow,
    /// Anything else: a broken response, a body over `max_response_bytes`.
    Error,
}

impl CallResult {
    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            CallResult::Response => "response",
            CallResult::Timeout => "timeout",
            CallResult::Refused => "refused",
            CallResult::Overflow => "overflow",
            CallResult::Error => "error",
        }
    }
}

/// A callout's answer as the guest reads it during `on_http_call_response`.
#[derive(Debug, Default)]
pub(crate) struct CallAnswer {
    /// The status (`None` for a failed call: no headers at all).
    pub status: Option<u16>,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response trailers.
    pub trailers: HeaderMap,
}

impl CallAnswer {
    /// Header pairs the guest is told about (`:status` counts).
    pub(crate) fn header_count(&self) -> usize {
        self.status.map_or(0, |_| 1 + self.headers.len())
    }

    /// The map of that type.
    pub(crate) fn with_map<R>(&self, map: MapType, f: impl FnOnce(MapView<'_>) -> R) -> Option<R> {
        match map {
            MapType::HttpCallResponseHeaders => {
                let digits = StatusDigits::new(self.status);
                let status = digits.as_ref().map_or("", StatusDigits::as_str);
                let pseudo = [(":status", status)];
                let pseudo: &[(&str, &str)] = if self.status.is_some() { &pseudo } else { &[] };
                Some(f(MapView {
                    pseudo,
                    headers: &self.headers,
                }))
            }
            MapType::HttpCallResponseTrailers => Some(f(MapView {
                pseudo: &[],
                headers: &self.trailers,
            })),
            _ => None,
        }
    }
}

/// A call's exchange on the wire: the response head, its trailers and its whole body.
pub(crate) struct Exchange {
    /// Status and headers.
    pub parts: http::response::Parts,
    /// Trailers (empty when none came).
    pub trailers: HeaderMap,
    /// The body, at most the cluster's `max_response_bytes`.
    pub body: Bytes,
}

/// How a call ended, in the form its callbacks deliver.
#[derive(Debug)]
pub(crate) enum CallEnd {
    /// `on_http_call_response`: the answer (empty for a failure) and its body.
    Http(CallAnswer, Bytes),
    /// `on_grpc_receive` or `on_grpc_close`.
    Grpc(GrpcEnd),
}

/// Runs a callout to its end: the answer, or the failure as the guest will see it.
pub(crate) async fn run(call: PendingCall) -> (CallResult, CallEnd) {
    let kind = call.kind;
    let exchange = exchange(call).await;
    match kind {
        CallKind::Grpc => {
            let result = exchange
                .as_ref()
                .err()
                .copied()
                .unwrap_or(CallResult::Response);
            (result, CallEnd::Grpc(grpc_call::end(exchange)))
        }
        CallKind::Http => match exchange {
            Err(result) => (result, CallEnd::Http(CallAnswer::default(), Bytes::new())),
            Ok(Exchange {
                parts,
                trailers,
                body,
            }) => {
                let answer = CallAnswer {
                    status: Some(parts.status.as_u16()),
                    headers: parts.headers,
                    trailers,
                };
                (CallResult::Response, CallEnd::Http(answer, body))
            }
        },
    }
}

/// Sends the request on the pool of its kind under the cluster's cap and timeout.
async fn exchange(call: PendingCall) -> Result<Exchange, CallResult> {
    let cluster = call.cluster;
    // Held until the answer is in: the cap counts calls in flight.
    let Ok(_permit) = cluster.permits.clone().try_acquire_owned() else {
        return Err(CallResult::Overflow);
    };
    let limit = cluster.config.max_response_bytes;
    let sent = match call.kind {
        CallKind::Http => cluster.client.request(call.request),
        CallKind::Grpc => cluster
            .grpc
            .request(call.request.map(BodyExt::boxed_unsync)),
    };
    let exchange = async {
        let response = sent.await.map_err(|e| {
            if e.is_connect() {
                CallResult::Refused
            } else {
                CallResult::Error
            }
        })?;
        let (parts, body) = response.into_parts();
        let collected = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|_| CallResult::Error)?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        Ok(Exchange {
            parts,
            trailers,
            body: collected.to_bytes(),
        })
    };
    tokio::time::timeout(cluster.timeout(call.timeout_ms), exchange)
        .await
        .unwrap_or(Err(CallResult::Timeout))
}
