//! JSON in and out: reading a request body under the size limit, and building JSON responses.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde::Serialize;

use crate::error::Error;

/// Largest request body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Every response the api sends.
pub type Reply = Response<Full<Bytes>>;

/// Boxed error of a request body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`]: up front when `Content-Length`
/// announces too much (no point reading it), and while reading for chunked bodies.
pub async fn read_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, Error>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let too_large = Error::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(e) => Err(Error::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn body_at_the_limit_is_read_and_one_byte_more_is_refused() {
        let exact = Full::new(Bytes::from(vec![b' '; MAX_BODY_BYTES]));
        assert_eq!(
            read_body(&HeaderMap::new(), exact)
                .await
                .expect("at the limit")
                .len(),
            MAX_BODY_BYTES
        );

        let over = Full::new(Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]));
        assert!(matches!(
            read_body(&HeaderMap::new(), over).await,
            Err(Error::PayloadTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn announced_length_over_the_limit_is_refused_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(MAX_BODY_BYTES + 1),
        );
        let small = Full::new(Bytes::from_static(b"{}"));
        assert!(matches!(
            read_body(&headers, small).await,
            Err(Error::PayloadTooLarge { .. })
        ));
    }
}
