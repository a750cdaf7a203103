//! Unary gRPC callouts (`proxy_grpc_call`) on the wire and back: the request is an HTTP/2
//! cleartext POST `/{service}/{method}` to a `[[clusters]]` entry ([`request`]), sent by
//! [`crate::callout::run`] under the cluster's cap and timeouts; its end is read here as Envoy's
//! unary gRPC client reports it ([`end`]): grpc-status 0 with a message is
//! `proxy_on_grpc_receive(token, size)`, the message readable as the gRPC receive buffer;
//! anything else is `proxy_on_grpc_close(token, status)`, with `proxy_get_status` giving the
//! status and its message. A refused connection or a call over the cap closes with 14
//! UNAVAILABLE, a timeout with 4 DEADLINE_EXCEEDED: never a trap. What unary calls share with
//! streams (the request head, message framing, status codes) is in [`wire`].

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::callout::{CallResult, Exchange};

mod wire;

pub(crate) use wire::{code, frame, from_http, head, status_of};

/// How a unary call ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GrpcEnd {
    /// grpc-status 0 and the response message (without its 5-byte prefix).
    Message(Bytes),
    /// Any other outcome: the status and its message (`proxy_get_status`).
    Close {
        /// The gRPC status code.
        status: u32,
        /// grpc-message, percent-decoded, or what the host says about its own failures.
        message: String,
    },
}

impl GrpcEnd {
    pub(crate) fn close(status: u32, message: impl Into<String>) -> GrpcEnd {
        GrpcEnd::Close {
            status,
            message: message.into(),
        }
    }
}

/// The call as an HTTP/2 request to `address`; `None` when a name or a metadata pair cannot be
/// a request (the hostcall answers `ParseFailure`).
pub(crate) fn request(
    address: &str,
    service: &str,
    method: &str,
    metadata: &[(Vec<u8>, Vec<u8>)],
    message: &[u8],
    timeout: Duration,
) -> Option<Request<Full<Bytes>>> {
    // grpc-timeout takes at most 8 digits; the cluster caps timeouts far below that.
    let millis = timeout.as_millis().min(99_999_999);
    head(address, service, method, metadata)?
        .header("grpc-timeout", format!("{millis}m"))
        .body(Full::new(frame(message)?))
        .ok()
}

/// How a call or stream that got no HTTP/2 answer ends, as Envoy reports it.
pub(crate) fn failure(result: CallResult) -> GrpcEnd {
    match result {
        CallResult::Timeout => GrpcEnd::close(code::DEADLINE_EXCEEDED, "deadline exceeded"),
        CallResult::Refused => GrpcEnd::close(code::UNAVAILABLE, "upstream connect error"),
        CallResult::Overflow => {
            GrpcEnd::close(code::UNAVAILABLE, "over the cluster's max_concurrent_calls")
        }
        CallResult::Error | CallResult::Response => {
            GrpcEnd::close(code::INTERNAL, "broken or oversized response")
        }
    }
}

/// The end of a call from its exchange (or the failure that stopped it).
pub(crate) fn end(exchange: Result<Exchange, CallResult>) -> GrpcEnd {
    let exchange = match exchange {
        Ok(exchange) => exchange,
        Err(result) => return failure(result),
    };
    let status = exchange.parts.status;
    if status != StatusCode::OK {
        return GrpcEnd::close(
            from_http(status),
            format!("HTTP status {}", status.as_u16()),
        );
    }
    // A trailers-only answer carries its status in the headers.
    let (grpc_status, message) = match status_of(&exchange.trailers) {
        Some(found) => found,
        None => status_of(&exchange.parts.headers).unwrap_or((code::UNKNOWN, String::new())),
    };
    if grpc_status != code::OK {
        return GrpcEnd::close(grpc_status, message);
    }
    match unframe(&exchange.body) {
        Some(message) => GrpcEnd::Message(message),
        // Envoy's unary client: OK without a message is an internal error.
        None => GrpcEnd::close(code::INTERNAL, "no single uncompressed response message"),
    }
}

/// The one message of a unary answer; `None` for none, several, a compressed one (the host
/// never offers an encoding) or a length that does not match.
fn unframe(body: &Bytes) -> Option<Bytes> {
    let (&[flag, a, b, c, d], _) = body.split_first_chunk::<5>()?;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    (flag == 0 && body.len() == 5 + len).then(|| body.slice(5..))
}

#[cfg(test)]
mod tests;
