//! Unary gRPC callouts (`proxy_grpc_call`) on the wire and back: the request is an HTTP/2
//! cleartext POST `/{service}/{method}` to a `[[clusters]]` entry ([`request`]), sent by
//! [`crate::callout::run`] under the cluster's cap and timeouts; its end is read here as Envoy's
//! unary gRPC client reports it ([`end`]): grpc-status 0 with a message is
//! `proxy_on_grpc_receive(token, size)`, the message readable as the gRPC receive buffer;
//! anything else is `proxy_on_grpc_close(token, status)`, with `proxy_get_status` giving the
//! status and its message. A refused connection or a call over the cap closes with 14
//! UNAVAILABLE, a timeout with 4 DEADLINE_EXCEEDED: never a trap.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use http_body_util::Full;

use crate::callout::{CallResult, Exchange};

/// The gRPC status codes this host produces itself.
pub(crate) mod code {
    /// Success.
    pub(crate) const OK: u32 = 0;
    /// No or an unreadable grpc-status.
    pub(crate) const UNKNOWN: u32 = 2;
    /// The call's timeout passed.
    pub(crate) const DEADLINE_EXCEEDED: u32 = 4;
    /// HTTP 403.
    pub(crate) const PERMISSION_DENIED: u32 = 7;
    /// HTTP 404: no such method.
    pub(crate) const UNIMPLEMENTED: u32 = 12;
    /// A broken answer.
    pub(crate) const INTERNAL: u32 = 13;
    /// Refused, over the cap, or an HTTP 429/502/503/504.
    pub(crate) const UNAVAILABLE: u32 = 14;
    /// HTTP 401.
    pub(crate) const UNAUTHENTICATED: u32 = 16;
}

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

/// Headers the host sets itself; a plugin's metadata of these names is not sent.
const RESERVED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::TE,
    header::HOST,
    HeaderName::from_static("grpc-timeout"),
];

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

/// The head of a call or stream: POST `/{service}/{method}` with gRPC's headers and the
/// plugin's metadata; `None` when a name or a pair cannot be a request.
pub(crate) fn head(
    address: &str,
    service: &str,
    method: &str,
    metadata: &[(Vec<u8>, Vec<u8>)],
) -> Option<http::request::Builder> {
    let valid = |name: &str| !name.is_empty() && !name.contains(['/', '?', '#', ' ']);
    if !valid(service) || !valid(method) {
        return None;
    }
    let mut builder = Request::post(format!("http://{address}/{service}/{method}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers");
    for (name, value) in metadata.iter().filter(|(k, _)| !k.starts_with(b":")) {
        let name = HeaderName::from_bytes(name).ok()?;
        if RESERVED.contains(&name) {
            continue;
        }
        builder = builder.header(name, HeaderValue::from_bytes(value).ok()?);
    }
    Some(builder)
}

/// A message with gRPC's 5-byte prefix (not compressed, big-endian length).
pub(crate) fn frame(message: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(message.len()).ok()?;
    let mut framed = Vec::with_capacity(5 + message.len());
    framed.push(0);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    Some(Bytes::from(framed))
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

/// grpc-status and grpc-message of a header map, if it has a status.
pub(crate) fn status_of(map: &HeaderMap) -> Option<(u32, String)> {
    let status = map.get("grpc-status")?;
    let status = std::str::from_utf8(status.as_bytes())
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| *s <= 16)
        .unwrap_or(code::UNKNOWN);
    let message = map
        .get("grpc-message")
        .map(|m| {
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    Some((status, message))
}

/// The one message of a unary answer; `None` for none, several, a compressed one (the host
/// never offers an encoding) or a length that does not match.
fn unframe(body: &Bytes) -> Option<Bytes> {
    let (&[flag, a, b, c, d], _) = body.split_first_chunk::<5>()?;
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    (flag == 0 && body.len() == 5 + len).then(|| body.slice(5..))
}

/// The gRPC status of an HTTP status that is not 200 (gRPC's HTTP-to-gRPC mapping).
pub(crate) fn from_http(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn exchange(
        status: u16,
        headers: &[(&str, &str)],
        trailers: &[(&str, &str)],
        body: &[u8],
    ) -> Exchange {
        let mut response = http::Response::builder().status(status);
        for (k, v) in headers {
            response = response.header(*k, *v);
        }
        let (parts, ()) = response.body(()).unwrap().into_parts();
        let mut map = HeaderMap::new();
        for (k, v) in trailers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Exchange {
            parts,
            trailers: map,
            body: Bytes::copy_from_slice(body),
        }
    }

    #[tokio::test]
    async fn the_request_is_a_framed_post_with_the_grpc_headers_and_the_metadata() {
        let metadata = vec![
            (b"x-tenant".to_vec(), b"blue".to_vec()),
            (b"content-type".to_vec(), b"text/plain".to_vec()),
            (b":authority".to_vec(), b"ignored".to_vec()),
        ];
        let request = request(
            "127.0.0.1:9",
            "grpc.health.v1.Health",
            "Check",
            &metadata,
            b"\x0a\x01a",
            Duration::from_millis(250),
        )
        .unwrap();
        assert_eq!(
            request.uri(),
            "http://127.0.0.1:9/grpc.health.v1.Health/Check"
        );
        assert_eq!(request.method(), http::Method::POST);
        let headers = request.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["te"], "trailers");
        assert_eq!(headers["grpc-timeout"], "250m");
        assert_eq!(headers["x-tenant"], "blue");
        assert_eq!(headers.get_all("content-type").iter().count(), 1);
        let body = request.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"\x00\x00\x00\x00\x03\x0a\x01a");
    }

    #[test]
    fn names_with_path_characters_or_bad_metadata_are_refused() {
        let t = Duration::from_secs(1);
        assert!(request("a:1", "svc/x", "M", &[], b"", t).is_none());
        assert!(request("a:1", "svc", "", &[], b"", t).is_none());
        let bad = vec![(b"x-bad".to_vec(), b"line\nbreak".to_vec())];
        assert!(request("a:1", "svc", "M", &bad, b"", t).is_none());
    }

    #[test]
    fn an_ok_answer_is_its_message_and_everything_else_a_close_with_a_status() {
        let ok = exchange(
            200,
            &[],
            &[("grpc-status", "0")],
            b"\x00\x00\x00\x00\x02\x08\x01",
        );
        assert_eq!(
            end(Ok(ok)),
            GrpcEnd::Message(Bytes::from_static(b"\x08\x01"))
        );

        let not_found = exchange(
            200,
            &[("grpc-status", "5"), ("grpc-message", "unknown%20service")],
            &[],
            b"",
        );
        assert_eq!(end(Ok(not_found)), GrpcEnd::close(5, "unknown service"));

        let empty = exchange(200, &[], &[("grpc-status", "0")], b"");
        assert!(matches!(
            end(Ok(empty)),
            GrpcEnd::Close {
                status: code::INTERNAL,
                ..
            }
        ));
        let compressed = exchange(200, &[], &[("grpc-status", "0")], b"\x01\x00\x00\x00\x00");
        assert!(matches!(
            end(Ok(compressed)),
            GrpcEnd::Close {
                status: code::INTERNAL,
                ..
            }
        ));
        let no_status = exchange(200, &[], &[], b"\x00\x00\x00\x00\x00");
        assert!(matches!(
            end(Ok(no_status)),
            GrpcEnd::Close {
                status: code::UNKNOWN,
                ..
            }
        ));
        let http_503 = exchange(503, &[], &[], b"");
        assert!(matches!(
            end(Ok(http_503)),
            GrpcEnd::Close {
                status: code::UNAVAILABLE,
                ..
            }
        ));

        let status = |e| match e {
            GrpcEnd::Close { status, .. } => status,
            GrpcEnd::Message(_) => code::OK,
        };
        assert_eq!(
            status(end(Err(CallResult::Timeout))),
            code::DEADLINE_EXCEEDED
        );
        assert_eq!(status(end(Err(CallResult::Refused))), code::UNAVAILABLE);
        assert_eq!(status(end(Err(CallResult::Overflow))), code::UNAVAILABLE);
        assert_eq!(status(end(Err(CallResult::Error))), code::INTERNAL);
    }
}
