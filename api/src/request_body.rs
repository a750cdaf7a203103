//! Request bodies in: read whole, under the size limit.

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::Error;

/// Largest request body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http_body_util::Full;

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
