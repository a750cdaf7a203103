//! gRPC streams (`proxy_grpc_stream`): the hostcall opens an HTTP/2 POST whose body is fed by
//! `proxy_grpc_send` ([`open`]: a [`StreamHandle`] stays with the instance, a [`PendingStream`]
//! starts once the callback returns); [`run`] reads the answer and hands each event to the
//! instance as Envoy's async stream client reports it: initial metadata, each message, trailing
//! metadata, then the close with the grpc-status. A stream that gets no answer closes with 14
//! UNAVAILABLE (refused, over the cluster's cap); a broken one with 13 INTERNAL. Streams have no
//! overall timeout (Envoy gives them none): `proxy_grpc_cancel` ends one.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::{mpsc, oneshot};

use crate::callout::CallResult;
use crate::cluster::Cluster;
use crate::grpc_call::{self, GrpcEnd, code};

/// The request body of gRPC calls and streams (one HTTP/2 pool per cluster serves both).
pub(crate) type GrpcBody = UnsyncBoxBody<Bytes, Infallible>;

/// What the instance keeps of a stream until its close.
#[derive(Debug)]
pub(crate) struct StreamHandle {
    /// Framed messages to send; `None` once the plugin closed its side.
    pub send: Option<mpsc::UnboundedSender<Bytes>>,
    /// Dropped to cancel: the task stops and delivers nothing more.
    _cancel: oneshot::Sender<()>,
}

/// A stream opened during a callback, started once it returns.
#[derive(Debug)]
pub(crate) struct PendingStream {
    /// The token returned to the guest.
    pub token: u32,
    /// The context that opened it (its events go to it).
    pub ctx: u32,
    /// The target.
    pub cluster: Arc<Cluster>,
    request: Request<GrpcBody>,
    cancelled: oneshot::Receiver<()>,
}

/// One thing a stream delivers to the guest.
#[derive(Debug)]
pub(crate) enum StreamEvent {
    /// The response headers: `on_grpc_receive_initial_metadata`.
    InitialMetadata(HeaderMap),
    /// One message without its prefix: `on_grpc_receive`.
    Message(Bytes),
    /// The trailers (or a trailers-only answer's headers): `on_grpc_receive_trailing_metadata`.
    TrailingMetadata(HeaderMap),
    /// The end: `on_grpc_close`, always last.
    Close {
        /// The gRPC status.
        status: u32,
        /// Its message, for `proxy_get_status`.
        message: String,
        /// How the exchange went, for `sidecar_plugin_callouts_total`.
        result: CallResult,
    },
}

impl StreamEvent {
    fn failed(result: CallResult) -> StreamEvent {
        StreamEvent::closed(grpc_call::failure(result), result)
    }

    fn closed(end: GrpcEnd, result: CallResult) -> StreamEvent {
        let (status, message) = match end {
            GrpcEnd::Close { status, message } => (status, message),
            GrpcEnd::Message(_) => (code::OK, String::new()),
        };
        StreamEvent::Close {
            status,
            message,
            result,
        }
    }
}

/// A stream with the request head `head` to `cluster`: the guest's handle and the task's half.
pub(crate) fn open(
    token: u32,
    ctx: u32,
    cluster: Arc<Cluster>,
    head: http::request::Builder,
) -> Option<(StreamHandle, PendingStream)> {
    let (send, queued) = mpsc::unbounded_channel::<Bytes>();
    let frames = futures_util::stream::unfold(queued, |mut queued| async move {
        let data = queued.recv().await?;
        Some((Ok(Frame::data(data)), queued))
    });
    let request = head.body(StreamBody::new(frames).boxed_unsync()).ok()?;
    let (cancel, cancelled) = oneshot::channel();
    let handle = StreamHandle {
        send: Some(send),
        _cancel: cancel,
    };
    let pending = PendingStream {
        token,
        ctx,
        cluster,
        request,
        cancelled,
    };
    Some((handle, pending))
}

/// Runs a stream to its end or its cancellation, handing each event to `deliver`, which says
/// whether anyone still listens.
pub(crate) async fn run(stream: PendingStream, mut deliver: impl FnMut(StreamEvent) -> bool) {
    let PendingStream {
        cluster,
        request,
        mut cancelled,
        ..
    } = stream;
    tokio::select! {
        _ = &mut cancelled => {}
        () = exchange(&cluster, request, &mut deliver) => {}
    }
}

async fn exchange(
    cluster: &Cluster,
    request: Request<GrpcBody>,
    deliver: &mut impl FnMut(StreamEvent) -> bool,
) {
    // Held while the stream is open: the cap counts streams with calls.
    let Ok(_permit) = cluster.permits.clone().try_acquire_owned() else {
        deliver(StreamEvent::failed(CallResult::Overflow));
        return;
    };
    let response = match cluster.grpc.request(request).await {
        Ok(response) => response,
        Err(e) => {
            let result = if e.is_connect() {
                CallResult::Refused
            } else {
                CallResult::Error
            };
            deliver(StreamEvent::failed(result));
            return;
        }
    };
    let (parts, mut body) = response.into_parts();
    if parts.status != StatusCode::OK {
        let status = grpc_call::from_http(parts.status);
        let message = format!("HTTP status {}", parts.status.as_u16());
        deliver(StreamEvent::closed(
            GrpcEnd::close(status, message),
            CallResult::Response,
        ));
        return;
    }
    // A trailers-only answer: its headers are the trailing metadata.
    if let Some((status, message)) = grpc_call::status_of(&parts.headers) {
        if deliver(StreamEvent::TrailingMetadata(parts.headers)) {
            deliver(StreamEvent::closed(
                GrpcEnd::close(status, message),
                CallResult::Response,
            ));
        }
        return;
    }
    if !deliver(StreamEvent::InitialMetadata(parts.headers)) {
        return;
    }
    let limit = cluster.config.max_response_bytes;
    let mut buffer = BytesMut::new();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(_)) => {
                deliver(StreamEvent::closed(
                    GrpcEnd::close(code::INTERNAL, "stream reset"),
                    CallResult::Error,
                ));
                return;
            }
            None => {
                deliver(StreamEvent::closed(
                    GrpcEnd::close(code::INTERNAL, "stream ended without trailers"),
                    CallResult::Error,
                ));
                return;
            }
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                buffer.extend_from_slice(&data);
                loop {
                    match next_message(&mut buffer, limit) {
                        Ok(Some(message)) => {
                            if !deliver(StreamEvent::Message(message)) {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(why) => {
                            let end = GrpcEnd::close(code::INTERNAL, why);
                            deliver(StreamEvent::closed(end, CallResult::Error));
                            return;
                        }
                    }
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            let (status, message) =
                grpc_call::status_of(&trailers).unwrap_or((code::UNKNOWN, String::new()));
            if deliver(StreamEvent::TrailingMetadata(trailers)) {
                deliver(StreamEvent::closed(
                    GrpcEnd::close(status, message),
                    CallResult::Response,
                ));
            }
            return;
        }
    }
}

/// The next whole message in `buffer`, taken out of it; an error for a compressed one (the host
/// never offers an encoding) or one over `limit`.
fn next_message(buffer: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, &'static str> {
    let Some(&[flag, a, b, c, d]) = buffer.first_chunk::<5>() else {
        return Ok(None);
    };
    if flag != 0 {
        return Err("compressed message");
    }
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > limit {
        return Err("message over max_response_bytes");
    }
    if buffer.len() < 5 + len {
        return Ok(None);
    }
    buffer.advance(5);
    Ok(Some(buffer.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_from_split_and_joined_frames() {
        let mut buffer = BytesMut::from(&b"\0\0\0\0\x02ab\0\0"[..]);
        assert_eq!(
            next_message(&mut buffer, 10),
            Ok(Some(Bytes::from_static(b"ab")))
        );
        assert_eq!(next_message(&mut buffer, 10), Ok(None), "part of a prefix");
        buffer.extend_from_slice(b"\0\0");
        assert_eq!(next_message(&mut buffer, 10), Ok(None), "most of a prefix");
        buffer.extend_from_slice(b"\x01");
        assert_eq!(next_message(&mut buffer, 10), Ok(None), "no payload yet");
        buffer.extend_from_slice(b"c\0\0\0\0\0");
        assert_eq!(
            next_message(&mut buffer, 10),
            Ok(Some(Bytes::from_static(b"c")))
        );
        assert_eq!(
            next_message(&mut buffer, 10),
            Ok(Some(Bytes::new())),
            "empty message"
        );
        assert!(buffer.is_empty());
        let mut compressed = BytesMut::from(&b"\x01\0\0\0\0"[..]);
        assert!(next_message(&mut compressed, 10).is_err());
        let mut large = BytesMut::from(&b"\0\0\0\0\x0b"[..]);
        assert!(next_message(&mut large, 10).is_err());
    }
}
