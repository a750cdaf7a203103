//! What the proxy does to header fields: which requests can be forwarded at all, the
//! hop-by-hop fields removed both ways (RFC 9110 §7.6.1), `x-forwarded-for`, and the
//! `Upgrade` a request asks for.

use std::net::IpAddr;

use http::{
    HeaderMap, HeaderName, HeaderValue, Request, Version,
    header::{CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE},
};

use crate::error::ProxyError;

/// `te: trailers`: the one `TE` value HTTP/2 allows (RFC 9113 §8.2.2), which gRPC requires and
/// without which an HTTP/1.1 server sends no trailers. Kept on both upstream legs.
pub(super) const TE_TRAILERS: HeaderValue = HeaderValue::from_static("trailers");

/// The protocol an HTTP/1.1 request asks to switch to (`Upgrade`, named in `Connection`).
/// `h2c` is not passed on: HTTP/2 is the sidecar's own connection's business, and the upstream
/// accepting it would turn every later request into a tunnel nobody measures. Ignoring an
/// `Upgrade` is always allowed (RFC 9110 §7.8): the request is served over HTTP/1.1.
pub(super) fn upgrade_asked<B>(request: &Request<B>) -> Option<HeaderValue> {
    if request.version() != Version::HTTP_11 {
        return None;
    }
    let protocol = request.headers().get(UPGRADE)?;
    if protocol
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"h2c")
    {
        return None;
    }
    let named = (request.headers().get_all(CONNECTION).iter())
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    named.then(|| protocol.clone())
}

/// Whether `request` can be forwarded unambiguously. `switch`: it asks for a protocol switch
/// (an extended `CONNECT` is one; a plain `CONNECT` is refused).
pub(super) fn forwardable<B>(request: &Request<B>, switch: bool) -> Result<(), ProxyError> {
    if request.method() == http::Method::CONNECT && !switch {
        return Err(ProxyError::MethodNotAllowed);
    }
    let mut hosts = request.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(ProxyError::InvalidRequest),
        (None, None)
            if request.version() == Version::HTTP_11 && request.uri().authority().is_none() =>
        {
            Err(ProxyError::InvalidRequest)
        }
        _ => Ok(()),
    }
}

pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fixed hop-by-hop headers (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes hop-by-hop headers: those named by `Connection`, then the fixed list.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names (cheap comparisons of standard
    // headers) instead of seven hashed removals.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `x-forwarded-for` with `ip` appended to what an earlier proxy put there.
pub(super) fn forwarded_for(previous: Option<&HeaderValue>, ip: IpAddr) -> HeaderValue {
    use std::io::Write as _;
    // Written straight into the buffer the header value then owns: one allocation.
    let mut value = Vec::with_capacity(48);
    if let Some(previous) = previous.and_then(|v| v.to_str().ok())
        && !previous.trim().is_empty()
    {
        value.extend_from_slice(previous.as_bytes());
        value.extend_from_slice(b", ");
    }
    let _ = write!(value, "{ip}");
    // An address and the visible ASCII of a previous value: always a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_and_fixed_hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(CONNECTION, HeaderValue::from_static("close, x-private"));
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let first = forwarded_for(None, "10.0.0.1".parse().unwrap());
        let second = forwarded_for(Some(&first), "10.0.0.2".parse().unwrap());
        assert_eq!(second, "10.0.0.1, 10.0.0.2");
        let blank = HeaderValue::from_static(" ");
        assert_eq!(forwarded_for(Some(&blank), "::1".parse().unwrap()), "::1");
    }
}
