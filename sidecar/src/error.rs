//! Why the sidecar answered a request itself, and the response it makes for each reason.
//!
//! A failure never surfaces as a service error: it becomes a short JSON response
//! (`{"error":"...","type":"..."}`) with an `x-sidecar-error: <type>` header, and the response
//! carries the [`ProxyError`] as an extension so the RED layer can count it in
//! `sidecar_upstream_errors_total{error_type}` without parsing headers. Layers that rebuild a
//! response (the plugin host) must keep its extensions.

use http::{HeaderValue, Response, StatusCode, header};

use crate::{
    body::{self, Body},
    proxy::BodyIdleTimeout,
};

/// Header naming the reason on every response the sidecar made itself.
pub(crate) const ERROR_HEADER: &str = "x-sidecar-error";

/// A request the sidecar could not forward, or whose answer it could not get. The set of
/// [`error_type`](ProxyError::error_type) strings is closed: it is a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub(crate) enum ProxyError {
    /// TCP connect to the upstream was refused or the host is unreachable: 502.
    #[error("the upstream refused the connection")]
    ConnectRefused,
    /// TCP connect to the upstream did not finish within `limits.connect_timeout`: 504.
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    /// The upstream sent no response headers within `limits.response_header_timeout`: 504.
    #[error("the upstream did not answer in time")]
    ResponseTimeout,
    /// The upstream closed or reset the connection before its response headers: 502.
    #[error("the upstream closed the connection before answering")]
    UpstreamReset,
    /// The upstream answered something that is not valid HTTP (or accepted a WebSocket with
    /// the wrong `Sec-WebSocket-Accept`), or can't take the request's form (an extended
    /// `CONNECT` its HTTP/2 SETTINGS do not allow): 502.
    #[error("the upstream sent an invalid response")]
    ProtocolError,
    /// More than `limits.max_concurrent_requests` requests in flight: 503, at once (no queue).
    #[error("too many requests in flight")]
    Overloaded,
    /// The client's request body broke off or was malformed: 400. The client's doing, so it is
    /// never counted as an upstream error.
    #[error("the request body could not be read")]
    ClientBody,
    /// The request head can't be forwarded unambiguously (RFC 9112 §3.2: two `Host` fields,
    /// or an HTTP/1.1 request without one): 400, and nothing is sent upstream.
    #[error("the request has no single Host")]
    InvalidRequest,
    /// A plain `CONNECT` (no `:protocol`): a reverse proxy opens no tunnels to any host: 405.
    #[error("CONNECT is not supported")]
    MethodNotAllowed,
}

impl ProxyError {
    /// Every reason, so metric series can be created at 0 before the first failure.
    pub(crate) const ALL: [ProxyError; 9] = [
        Self::ConnectRefused,
        Self::ConnectTimeout,
        Self::ResponseTimeout,
        Self::UpstreamReset,
        Self::ProtocolError,
        Self::Overloaded,
        Self::ClientBody,
        Self::InvalidRequest,
        Self::MethodNotAllowed,
    ];

    /// The closed label value used in `x-sidecar-error` and `sidecar_upstream_errors_total`.
    pub(crate) fn error_type(self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::ResponseTimeout => "response_timeout",
            Self::UpstreamReset => "upstream_reset",
            Self::ProtocolError => "protocol_error",
            Self::Overloaded => "overloaded",
            Self::ClientBody => "client_body",
            Self::InvalidRequest => "invalid_request",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// The status the client receives.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::ConnectRefused | Self::UpstreamReset | Self::ProtocolError => {
                StatusCode::BAD_GATEWAY
            }
            Self::ConnectTimeout | Self::ResponseTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::ClientBody | Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// Whether this counts in `sidecar_upstream_errors_total` (everything but the client's own
    /// failures).
    pub(crate) fn is_upstream(self) -> bool {
        !matches!(
            self,
            Self::ClientBody | Self::InvalidRequest | Self::MethodNotAllowed
        )
    }

    /// The reason for a response body that broke off before anything reached the client: in
    /// the proxy's read-ahead, or while a plugin was buffering it. A connection that closed
    /// inside the body is a reset; a body that breaks its own framing, a protocol error.
    pub(crate) fn for_broken_body(error: &(dyn std::error::Error + 'static)) -> ProxyError {
        if body::caused_by::<BodyIdleTimeout>(error) {
            Self::ResponseTimeout
        } else if body::caused_by::<std::io::Error>(error) {
            Self::UpstreamReset
        } else if let Some(error) = body::find::<hyper::Error>(error) {
            if error.is_parse() {
                Self::ProtocolError
            } else {
                Self::UpstreamReset
            }
        } else {
            // The HTTP/1.1 leg's own framing errors.
            Self::ProtocolError
        }
    }

    /// The response the sidecar sends in place of the upstream's.
    pub(crate) fn into_response(self) -> Response<Body> {
        let json = serde_json::json!({ "error": self.to_string(), "type": self.error_type() });
        let mut response = Response::new(body::full(json.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.error_type()));
        response.extensions_mut().insert(self);
        response
    }
}

/// The plugin host's 502 for a response body that broke off while plugins buffered it
/// ([`wasm_host::BrokenBody`]) becomes the sidecar's own error response, classified like the
/// same failure without plugins; every other response passes as it is.
pub(crate) fn answer_broken_body(response: Response<Body>) -> Response<Body> {
    match response.extensions().get::<wasm_host::BrokenBody>() {
        Some(broken) => ProxyError::for_broken_body(broken.0.as_ref().as_ref()).into_response(),
        None => response,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_the_status_the_contract_names() {
        assert_eq!(ProxyError::ConnectRefused.status(), 502);
        assert_eq!(ProxyError::UpstreamReset.status(), 502);
        assert_eq!(ProxyError::ProtocolError.status(), 502);
        assert_eq!(ProxyError::ConnectTimeout.status(), 504);
        assert_eq!(ProxyError::ResponseTimeout.status(), 504);
        assert_eq!(ProxyError::Overloaded.status(), 503);
        assert!(!ProxyError::ClientBody.is_upstream());
    }

    #[test]
    fn response_carries_header_json_and_extension() {
        let response = ProxyError::ResponseTimeout.into_response();
        assert_eq!(response.headers()[ERROR_HEADER], "response_timeout");
        assert_eq!(
            response.extensions().get::<ProxyError>(),
            Some(&ProxyError::ResponseTimeout)
        );
    }
}
