//! Protocol switches across HTTP versions. An HTTP/1.1 client asks for WebSocket (or any other
//! protocol) with `Upgrade` and gets `101`; an HTTP/2 client sends an extended `CONNECT` with
//! `:protocol` (RFC 8441) and gets `200`, after which the stream carries the new protocol. The
//! sidecar translates between the two when the legs differ, as Envoy does, so a WebSocket
//! reaches its server whatever each side speaks:
//!
//! | client | upstream | sent upstream | answered to the client |
//! |---|---|---|---|
//! | HTTP/1.1 `Upgrade` | HTTP/1.1 | the same | the upstream's `101` |
//! | HTTP/1.1 `Upgrade` | HTTP/2 | extended `CONNECT` | `101`, with `Sec-WebSocket-Accept` |
//! | HTTP/2 `CONNECT` | HTTP/1.1 | `GET` + `Upgrade`, with `Sec-WebSocket-Key` | `200` |
//! | HTTP/2 `CONNECT` | HTTP/2 | the same | the upstream's `200` |
//!
//! WebSocket's key and accept (RFC 6455 §4) exist on HTTP/1.1 only: the sidecar makes the key it
//! sends and checks the accept it receives, and answers an HTTP/1.1 client's key itself.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use http::{
    HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version,
    header::{CONNECTION, CONTENT_LENGTH, UPGRADE},
    request,
};
use hyper::ext::Protocol;
use sha1::{Digest as _, Sha1};

use super::headers::upgrade_asked;
use crate::{body::Body, error::ProxyError};

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");
/// RFC 6455 §1.3: appended to the key before hashing.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The protocol switch a request asks for, as the client asked it.
#[derive(Clone, Debug)]
pub(super) enum Switch {
    /// HTTP/1.1 `Upgrade: <protocol>` named in `Connection`.
    Upgrade(HeaderValue),
    /// HTTP/2 extended `CONNECT` with `:protocol` (kept in the request's extensions).
    Connect(HeaderValue),
}

/// What the client asked for, if anything. A `CONNECT` without `:protocol`, or with one that
/// can't be a header value, is no switch: the proxy refuses it.
pub(super) fn asked<B>(request: &Request<B>) -> Option<Switch> {
    if request.method() == Method::CONNECT {
        let protocol = request.extensions().get::<Protocol>()?;
        return HeaderValue::from_str(protocol.as_str())
            .ok()
            .map(Switch::Connect);
    }
    upgrade_asked(request).map(Switch::Upgrade)
}

/// How the answer must be turned back for the client, decided when the request is sent.
#[derive(Debug)]
pub(super) enum Answer {
    /// The upstream speaks the client's form: its answer passes as it is.
    AsIs,
    /// An HTTP/2 client's `CONNECT` went upstream as an HTTP/1.1 `Upgrade`: `101` becomes
    /// `200`, after checking the accept for the key sent (WebSocket only).
    Connected { key: Option<HeaderValue> },
    /// An HTTP/1.1 client's `Upgrade` went upstream as an extended `CONNECT`: `200` becomes
    /// `101`, with the accept for the client's key.
    Switched {
        protocol: HeaderValue,
        accept: Option<HeaderValue>,
    },
}

/// Rewrites `parts` (already stripped of hop-by-hop fields) for the upstream's version and
/// says how to turn the answer back.
pub(super) fn forward(switch: Switch, parts: &mut request::Parts, over_h2: bool) -> Answer {
    match (switch, over_h2) {
        (Switch::Upgrade(protocol), false) => {
            upgrade_headers(&mut parts.headers, protocol);
            Answer::AsIs
        }
        (Switch::Connect(_), true) => Answer::AsIs,
        (Switch::Connect(protocol), false) => {
            parts.extensions.remove::<Protocol>();
            parts.method = Method::GET;
            let key = is_websocket(&protocol).then(fresh_key);
            if let Some(key) = &key {
                parts.headers.insert(SEC_WEBSOCKET_KEY, key.clone());
            }
            upgrade_headers(&mut parts.headers, protocol);
            Answer::Connected { key }
        }
        (Switch::Upgrade(protocol), true) => {
            let accept = (parts.headers.remove(SEC_WEBSOCKET_KEY))
                .filter(|_| is_websocket(&protocol))
                .map(|key| accept_for(key.as_bytes()));
            parts.method = Method::CONNECT;
            // `:protocol` is a token, compared case-insensitively: sent as WebSocket clients
            // send it.
            let name = String::from_utf8_lossy(protocol.as_bytes()).to_ascii_lowercase();
            parts.extensions.insert(Protocol::from(name.as_str()));
            Answer::Switched { protocol, accept }
        }
    }
}

/// Turns the upstream's answer into the one the client expects. `Ok(true)`: the switch was
/// accepted and the connection becomes a tunnel.
pub(super) fn answer(answer: Answer, response: &mut Response<Body>) -> Result<bool, ProxyError> {
    let status = response.status();
    match answer {
        // An HTTP/2 upstream's stream is handed over on exactly 200 (hyper's client).
        Answer::AsIs => Ok(status == StatusCode::SWITCHING_PROTOCOLS
            || (status == StatusCode::OK && response.version() == Version::HTTP_2)),
        Answer::Connected { key } => {
            if status != StatusCode::SWITCHING_PROTOCOLS {
                return Ok(false);
            }
            let headers = response.headers_mut();
            let accept = headers.remove(SEC_WEBSOCKET_ACCEPT);
            if let Some(key) = key
                && accept.as_ref() != Some(&accept_for(key.as_bytes()))
            {
                return Err(ProxyError::ProtocolError);
            }
            headers.remove(UPGRADE);
            headers.remove(CONNECTION);
            *response.status_mut() = StatusCode::OK;
            Ok(true)
        }
        Answer::Switched { protocol, accept } => {
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
