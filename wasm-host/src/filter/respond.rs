//! The response side of [`super::PluginLayer`]: `on_response_headers` and `on_response_body`
//! in reverse plugin order, a late local reply or the 502 for a body that broke off while it
//! was buffered, then the end-of-request callbacks hooked to the end of the body sent.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::Body as _;

use super::{Streams, body_phase, settle};
use crate::body::{Body, BoxError, Collected, Observed, collect, rebuild};
use crate::state::{LocalResponse, Pairs};
use crate::stream::{ActiveStream, Ending};

/// Replaces `headers` with the guest's map (pseudo-headers are not headers; invalid names or
/// values are skipped).
fn apply_pairs(headers: &mut HeaderMap, pairs: &Pairs) {
    headers.clear();
    for (name, value) in pairs.iter().filter(|(k, _)| !k.starts_with(':')) {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => tracing::debug!(header = %name, "plugin set an invalid header; skipped"),
        }
    }
}

pub(super) fn local_response(local: LocalResponse) -> Response<Body> {
    let mut response = Response::new(crate::body::full(local.body));
    *response.status_mut() =
        StatusCode::from_u16(local.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    apply_pairs(response.headers_mut(), &local.headers);
    response
}

/// The 502 for a response body that broke off while it was being buffered.
fn broken_body(error: BoxError) -> Response<Body> {
    tracing::debug!(%error, "response body broke off while plugins were buffering it; answering 502");
    let mut response = Response::new(crate::body::full("upstream response body broke off\n"));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    response
        .extensions_mut()
        .insert(crate::BrokenBody(Arc::new(error)));
    response
}

/// Response phases (reverse plugin order), then hooks the end-of-request callbacks to the body.
/// A local reply asked for while the response head has not left (`on_response_headers`,
/// `on_response_body`) replaces the response, as in Envoy; the phases stop there.
pub(super) async fn respond(
    streams: Streams,
    response: &mut Response<Body>,
    mut details: &'static str,
) {
    let mut code = response.status().as_u16();
    let mut headers = Arc::new(std::mem::take(response.headers_mut()));
    let mut late = None;
    let mut broken = None;
    for stream in streams.iter().rev() {
        let Some(mut outcome) = stream.response_headers(code, &headers, details) else {
            continue;
        };
        settle(stream, &mut outcome).await;
        if let Some(changed) = outcome.headers {
            headers = changed;
        }
        if outcome.local.is_some() {
            late = outcome.local;
            break;
        }
    }
    let body_limit = streams
        .iter()
        .filter(|s| s.plugin().config().response_body)
        .map(|s| s.plugin().config().body_limit_bytes)
        .max();
    if let (None, Some(limit), false) = (&late, body_limit, response.body().is_end_stream()) {
        // Boxed: only responses whose body a plugin asked for pay for its state.
        let body = std::mem::replace(response.body_mut(), crate::body::empty());
        let phase = response_body(&streams, body, limit, &mut headers);
        match Box::pin(phase).await {
            Ok((body, local)) => {
                *response.body_mut() = body;
                late = local;
            }
            Err(error) => broken = Some(error),
        }
    }
    if let Some(error) = broken {
        *response = broken_body(error);
        code = response.status().as_u16();
        headers = Arc::new(std::mem::take(response.headers_mut()));
        details = "upstream_body_broken";
    } else if let Some(local) = late {
        // The upstream's response is dropped unread: the client gets the plugin's answer.
        *response = local_response(*local);
        code = response.status().as_u16();
        headers = Arc::new(std::mem::take(response.headers_mut()));
        details = "wasm_local_reply";
    }
    // The views keep theirs for `on_log`; the client gets a copy.
    *response.headers_mut() = (*headers).clone();
    let body = std::mem::replace(response.body_mut(), crate::body::empty());
    *response.body_mut() = Observed::wrap(body, move |sent, trailers: Option<HeaderMap>| {
        let ending = Ending {
            code: Some(code),
            details: Some(details),
            headers: Some(headers),
            sent,
            trailers: trailers.map(Arc::new),
        };
        for stream in streams {
            stream.finish(&ending);
        }
    });
}

/// The response body phase: the body collected up to `limit`, then `on_response_body` in
/// reverse plugin order. Returns the body to send and a local reply if a plugin asked for one,
/// or the error of a body that broke off (nothing has reached the client: the caller answers
/// a clean 502 instead of a head and a broken body).
async fn response_body(
    streams: &[ActiveStream],
    body: Body,
    limit: usize,
    headers: &mut Arc<HeaderMap>,
) -> Result<(Body, Option<Box<LocalResponse>>), BoxError> {
    match collect(body, limit).await {
        Collected::Complete { mut data, trailers } => {
            let late = body_phase(
                streams.iter().rev(),
                |config| config.response_body,
                &mut data,
                headers,
                ActiveStream::response_body,
            )
            .await;
            Ok((rebuild(data, trailers), late))
        }
        Collected::TooLarge(body) => {
            tracing::debug!(
                limit,
                "response body over the body limit; plugins do not observe it"
            );
            Ok((body, None))
        }
        Collected::Failed(_, error) => Err(error),
    }
}
