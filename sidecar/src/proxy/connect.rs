//! Protocol switches across HTTP versions. An HTTP/1.1 client asks for WebSocket (or any other
//! protocol) with `Upgrade` and gets `101`; an HTTP/2 client sends an extended `CONNECT` with
//! `:protocol` (RFC 8441) and gets `200`, after which the stream carries the new protocol. The
//! stack sees both in the HTTP/1.1 form (`crate::h2_connect` rewrites HTTP/2's on the way in and
//! out); here the request takes the upstream leg's form, and the answer comes back as a `101`,
//! as Envoy does:
//!
//! | client | upstream | sent upstream | answered to the stack (the client) |
//! |---|---|---|---|
//! | HTTP/1.1 `Upgrade` | HTTP/1.1 | the same | the upstream's `101` |
//! | HTTP/1.1 `Upgrade` | HTTP/2 | extended `CONNECT` | `101`, with `Sec-WebSocket-Accept` |
//! | HTTP/2 `CONNECT` | HTTP/1.1 | `GET` + `Upgrade`, with `Sec-WebSocket-Key` | `101` (`200`) |
//! | HTTP/2 `CONNECT` | HTTP/2 | extended `CONNECT` | `101` (the upstream's `200`) |
//!
//! WebSocket's key and accept (RFC 6455 §4) exist on HTTP/1.1 only: the sidecar makes the key it
//! sends and checks the accept it receives, and answers an HTTP/1.1 client's key itself.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use http::{
    HeaderName, HeaderValue, Method, Request, Response, StatusCode,
    header::{CONNECTION, CONTENT_LENGTH, UPGRADE},
    request,
};
use hyper::ext::Protocol;
use sha1::{Digest as _, Sha1};

use super::headers::upgrade_asked;
use crate::{body::Body, error::ProxyError, h2_connect::FromHttp2Connect};

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
/// RFC 6455 §1.3: appended to the key before hashing.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The protocol switch a request asks for, in the HTTP/1.1 form the stack sees.
#[derive(Clone, Debug)]
pub(super) struct Switch {
    /// `Upgrade`'s value, or `:protocol`'s.
    protocol: HeaderValue,
    /// The client sent an HTTP/2 extended `CONNECT`: it has no `Sec-WebSocket-Key` to answer.
    from_http2: bool,
}

/// What the client asked for, if anything: an `Upgrade` named in `Connection`, or an extended
/// `CONNECT` rewritten as one. A plain `CONNECT` is no switch: the proxy refuses it.
pub(super) fn asked<B>(request: &Request<B>) -> Option<Switch> {
    if request.extensions().get::<FromHttp2Connect>().is_some() {
        let protocol = request.headers().get(UPGRADE)?.clone();
        return Some(Switch {
            protocol,
            from_http2: true,
        });
    }
    upgrade_asked(request).map(|protocol| Switch {
        protocol,
        from_http2: false,
    })
}

/// How the upstream's answer must be turned into a `101`, decided when the request is sent.
#[derive(Debug)]
pub(super) enum Answer {
    /// An HTTP/1.1 client's `Upgrade` went to an HTTP/1.1 upstream: its answer passes as it is.
    AsIs,
    /// The sidecar made the `Sec-WebSocket-Key` sent upstream: the `101` must carry its
    /// accept, which the client, having sent no key, does not get.
    KeyMade(HeaderValue),
    /// An extended `CONNECT` went upstream: its `200` becomes `101`, with the accept for the
    /// HTTP/1.1 client's key when there was one.
    Connected {
        protocol: HeaderValue,
        accept: Option<HeaderValue>,
    },
}

/// Rewrites `parts` (already stripped of hop-by-hop fields) for the upstream's version and
/// says how to turn the answer back.
pub(super) fn forward(switch: Switch, parts: &mut request::Parts, over_h2: bool) -> Answer {
    let Switch {
        protocol,
        from_http2,
    } = switch;
    parts.extensions.remove::<FromHttp2Connect>();
    if over_h2 {
        let accept = (parts.headers.remove(SEC_WEBSOCKET_KEY))
            .filter(|_| is_websocket(&protocol))
            .map(|key| accept_for(key.as_bytes()));
        parts.method = Method::CONNECT;
        // `:protocol` is a token, compared case-insensitively: sent as WebSocket clients
        // send it.
        let name = String::from_utf8_lossy(protocol.as_bytes()).to_ascii_lowercase();
        parts.extensions.insert(Protocol::from(name.as_str()));
        return Answer::Connected { protocol, accept };
    }
    let websocket = is_websocket(&protocol);
    upgrade_headers(&mut parts.headers, protocol);
    if from_http2 && websocket {
        let key = fresh_key();
        parts.headers.insert(SEC_WEBSOCKET_KEY, key.clone());
        return Answer::KeyMade(key);
    }
    Answer::AsIs
}

/// Turns the upstream's answer into a `101` when it accepted the switch. `Ok(true)`: it did,
/// and the connection becomes a tunnel.
pub(super) fn answer(answer: Answer, response: &mut Response<Body>) -> Result<bool, ProxyError> {
    let status = response.status();
    match answer {
        Answer::AsIs => Ok(status == StatusCode::SWITCHING_PROTOCOLS),
        Answer::KeyMade(key) => {
            if status != StatusCode::SWITCHING_PROTOCOLS {
                return Ok(false);
            }
            let accept = response.headers_mut().remove(SEC_WEBSOCKET_ACCEPT);
            if accept.as_ref() != Some(&accept_for(key.as_bytes())) {
                return Err(ProxyError::ProtocolError);
            }
            Ok(true)
        }
        Answer::Connected { protocol, accept } => {
            // An HTTP/2 upstream's stream is handed over on exactly 200 (hyper's client).
            if status != StatusCode::OK {
                return Ok(false);
            }
            let headers = response.headers_mut();
            headers.remove(CONTENT_LENGTH);
            if let Some(accept) = accept {
                headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
            }
            upgrade_headers(headers, protocol);
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            Ok(true)
        }
    }
}

fn upgrade_headers(headers: &mut http::HeaderMap, protocol: HeaderValue) {
    headers.insert(UPGRADE, protocol);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
}

fn is_websocket(protocol: &HeaderValue) -> bool {
    protocol.as_bytes().eq_ignore_ascii_case(b"websocket")
}

/// A `Sec-WebSocket-Key`: 16 random bytes in base64 (RFC 6455 §4.1). A nonce against caches,
/// not a secret.
fn fresh_key() -> HeaderValue {
    let key = STANDARD.encode(fastrand::u128(..).to_le_bytes());
    HeaderValue::from_str(&key)
        .unwrap_or_else(|_| HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAA=="))
}

/// The `Sec-WebSocket-Accept` a server answers `key` with (RFC 6455 §4.2.2).
fn accept_for(key: &[u8]) -> HeaderValue {
    let digest = Sha1::new()
        .chain_update(key)
        .chain_update(WEBSOCKET_GUID)
        .finalize();
    let accept = STANDARD.encode(digest);
    HeaderValue::from_str(&accept).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_is_rfc_6455s_own_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn fresh_keys_are_16_bytes_in_base64_and_differ() {
        let (a, b) = (fresh_key(), fresh_key());
        assert_ne!(a, b);
        assert_eq!(STANDARD.decode(a.as_bytes()).unwrap().len(), 16);
    }
}
