//! gRPC on HTTP/2 as unary calls and streams both speak it: the request head (POST
//! `/{service}/{method}` with gRPC's headers and the plugin's metadata), the 5-byte message
//! prefix, and the status codes: those the host produces, grpc-status read from headers or
//! trailers, and gRPC's mapping of HTTP statuses.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};

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

/// Headers the host sets itself; a plugin's metadata of these names is not sent.
const RESERVED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::TE,
    header::HOST,
    HeaderName::from_static("grpc-timeout"),
];

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
