//! JSON responses: every answer the api builds, errors included.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

/// Every response the api sends.
pub type Reply = Response<Full<Bytes>>;

/// A response with `value` serialized as JSON.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    // Serializing our own plain structs cannot fail (string keys, finite numbers).
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|_| b"{\"error\":\"serialization failed\"}".to_vec());
    with_type(status, "application/json", Bytes::from(body))
}

/// A response with `body` and `Content-Type: content_type`.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// An empty response (204, ...).
pub fn empty(status: StatusCode) -> Reply {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
