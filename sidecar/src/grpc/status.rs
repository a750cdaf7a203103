//! gRPC status codes: their names as `grpc_code` label values (the Go names, which the
//! go-grpc-prometheus dashboards match on), the HTTP status each stands for in the RED family,
//! and the trailers-only responses the sidecar makes for gRPC clients.

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::{body, error::ProxyError};

/// A gRPC status code, 0 to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Code(pub u8);

impl Code {
    pub(crate) const CANCELLED: Code = Code(1);
    pub(crate) const UNKNOWN: Code = Code(2);
    pub(crate) const DEADLINE_EXCEEDED: Code = Code(4);
    pub(crate) const INTERNAL: Code = Code(13);
    pub(crate) const UNAVAILABLE: Code = Code(14);

    /// Every code, so the `grpc_code` label's set is closed.
    pub(crate) const NAMES: [&'static str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];

    /// The code in a `grpc-status` value; a value outside 0-16 is `Unknown` (as gRPC clients
    /// read it).
    pub(crate) fn parse(value: &HeaderValue) -> Code {
        match std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
        {
            Some(code) if usize::from(code) < Self::NAMES.len() => Code(code),
            _ => Self::UNKNOWN,
        }
    }

    /// The code in `headers`' `grpc-status`, if there is one.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Code> {
        headers.get(GRPC_STATUS).map(Self::parse)
    }

    /// The `grpc_code` label value.
    pub(crate) fn name(self) -> &'static str {
        Self::NAMES[usize::from(self.0)]
    }

    /// The HTTP status this code stands for (the mapping of `google.rpc.Code`), which the RED
    /// family records for gRPC calls: their wire status is 200 whatever happened.
    pub(crate) fn http_status(self) -> StatusCode {
        let code = match self.0 {
            0 => 200,
            1 => 499,
            3 | 9 | 11 => 400,
            4 => 504,
            5 => 404,
            6 | 10 => 409,
            7 => 403,
            8 => 429,
            12 => 501,
            14 => 503,
            16 => 401,
            _ => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The code a gRPC client derives from a response that carries no `grpc-status` (the
    /// gRPC spec's "HTTP to gRPC status code mapping"): a REST error page, say.
    pub(crate) fn from_http(status: StatusCode) -> Code {
        match status.as_u16() {
            400 => Self::INTERNAL,
            401 => Code(16),
            403 => Code(7),
            404 => Code(12),
            429 | 502..=504 => Self::UNAVAILABLE,
            _ => Self::UNKNOWN,
        }
    }

    /// What a gRPC client is told when the sidecar could not get the upstream's answer.
    pub(crate) fn for_error(error: ProxyError) -> Code {
        match error {
            ProxyError::ResponseTimeout => Self::DEADLINE_EXCEEDED,
            ProxyError::ConnectRefused
            | ProxyError::ConnectTimeout
            | ProxyError::UpstreamReset
            | ProxyError::ProtocolError
            | ProxyError::Overloaded => Self::UNAVAILABLE,
            ProxyError::ClientBody => Self::CANCELLED,
            ProxyError::InvalidRequest | ProxyError::MethodNotAllowed => Self::INTERNAL,
        }
    }
}

pub(crate) const GRPC_STATUS: &str = "grpc-status";
pub(crate) const GRPC_MESSAGE: &str = "grpc-message";

/// A trailers-only gRPC response (HTTP 200, the status in the headers, no body), the way gRPC
/// servers answer a call they fail before any message. `extensions` and `x-sidecar-error` of
/// the sidecar's own response are kept, so it is still counted as the sidecar's.
pub(crate) fn trailers_only(
    code: Code,
    message: &str,
    from: Response<body::Body>,
) -> Response<body::Body> {
    let (mut parts, _json) = from.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    parts
        .headers
        .insert(GRPC_STATUS, HeaderValue::from(u16::from(code.0)));
    // grpc-message is percent-encoded; these messages are plain ASCII without '%'.
    if let Ok(message) = HeaderValue::from_str(message) {
        parts.headers.insert(GRPC_MESSAGE, message);
    }
    Response::from_parts(parts, body::empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_and_map() {
        assert_eq!(Code::parse(&HeaderValue::from_static("0")), Code(0));
        assert_eq!(
            Code::parse(&HeaderValue::from_static("5")).name(),
            "NotFound"
        );
        assert_eq!(Code::parse(&HeaderValue::from_static("99")), Code::UNKNOWN);
        assert_eq!(Code::parse(&HeaderValue::from_static("x")), Code::UNKNOWN);
        assert_eq!(Code::UNAVAILABLE.http_status(), 503);
        assert_eq!(Code::DEADLINE_EXCEEDED.http_status(), 504);
        assert_eq!(Code(5).http_status(), 404);
        assert_eq!(Code(0).http_status(), 200);
        assert_eq!(
            Code::from_http(StatusCode::NOT_FOUND).name(),
            "Unimplemented"
        );
        assert_eq!(Code::from_http(StatusCode::BAD_GATEWAY), Code::UNAVAILABLE);
        assert_eq!(Code::from_http(StatusCode::IM_A_TEAPOT), Code::UNKNOWN);
    }

    #[test]
    fn a_sidecar_error_becomes_a_trailers_only_response() {
        let response = trailers_only(
            Code::for_error(ProxyError::ConnectRefused),
            "the upstream refused the connection",
            ProxyError::ConnectRefused.into_response(),
        );
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[GRPC_STATUS], "14");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(
            response.extensions().get::<ProxyError>(),
            Some(&ProxyError::ConnectRefused)
        );
    }
}
