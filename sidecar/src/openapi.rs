//! Route templates from the upstream's OpenAPI document: the keys of its `paths` object
//! (`/items/{item_id}`) are exactly the templates the `handler` label wants, so an API that
//! publishes its document needs no route configuration.

use std::time::Duration;

use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use tracing::{info, warn};

use crate::{
    body,
    config::{OpenApiConfig, Upstream},
    proxy::UpstreamClient,
};

/// Largest document accepted (a route list, not a data dump).
const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Why the document could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenApiError {
    /// The request failed.
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// The document's URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The upstream answered with a non-2xx status.
    #[error("fetching {url} returned {status}")]
    Status {
        /// The document's URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The body is not JSON with a `paths` object.
    #[error("{url} is not an OpenAPI document with a `paths` object: {reason}")]
    Invalid {
        /// The document's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// Fetches the document once and returns its path templates in document order.
///
/// # Errors
/// When the upstream is unreachable, answers non-2xx, or the body has no `paths` object.
pub(crate) async fn fetch(
    client: &UpstreamClient,
    upstream: &Upstream,
    url_path: &str,
) -> Result<Vec<String>, OpenApiError> {
    let url = format!("{upstream}{url_path}");
    let fetch_error = |reason: String| OpenApiError::Fetch {
        url: url.clone(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| fetch_error(e.to_string()))?;
    let request = Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|e| fetch_error(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| fetch_error("timed out".into()))?
        .map_err(|e| fetch_error(e.to_string()))?;
    if !response.status().is_success() {
        return Err(OpenApiError::Status {
            url,
            status: response.status(),
        });
    }
    let limited = http_body_util::Limited::new(response.into_body(), MAX_DOCUMENT_BYTES);
    let bytes = limited
        .collect()
        .await
        .map_err(|e| fetch_error(e.to_string()))?
        .to_bytes();
    templates(&bytes).map_err(|reason| OpenApiError::Invalid { url, reason })
}

/// The keys of `paths` that look like path templates.
fn templates(document: &[u8]) -> Result<Vec<String>, String> {
    // serde_json keeps object order only with `preserve_order`; sort for a stable table instead.
    let value: serde_json::Value = serde_json::from_slice(document).map_err(|e| e.to_string())?;
    let paths = value
        .get("paths")
        .and_then(|p| p.as_object())
        .ok_or("no `paths` object")?;
    let mut templates: Vec<String> = paths
        .keys()
        .filter(|k| k.starts_with('/'))
        .cloned()
        .collect();
    templates.sort();
    Ok(templates)
}

/// Fetches with retries (delays double from 200 ms), `config.attempts` times at most.
///
/// # Errors
/// The last attempt's error.
pub(crate) async fn fetch_with_retries(
    client: &UpstreamClient,
    upstream: &Upstream,
    config: &OpenApiConfig,
) -> Result<Vec<String>, OpenApiError> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        match fetch(client, upstream, &config.url_path).await {
            Ok(templates) => {
                info!(
                    count = templates.len(),
                    url_path = config.url_path,
                    "loaded route templates from the upstream's OpenAPI document"
                );
                return Ok(templates);
            }
            Err(error) if attempt >= config.attempts.max(1) => return Err(error),
            Err(error) => {
                warn!(%error, attempt, retry_in = ?delay, "OpenAPI document not available yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_keys_become_templates() {
        let doc = br#"{"openapi":"3.0.3","paths":{"/items/{id}":{},"/items":{},"x":{}}}"#;
        assert_eq!(templates(doc).unwrap(), vec!["/items", "/items/{id}"]);
    }

    #[test]
    fn document_without_paths_is_rejected() {
        assert!(templates(br#"{"openapi":"3.0.3"}"#).is_err());
        assert!(templates(b"not json").is_err());
    }
}
