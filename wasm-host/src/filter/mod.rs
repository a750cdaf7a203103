//! `PluginLayer`: runs every plugin's callbacks around a request, in Envoy's order —
//! `on_context_create` → `on_request_headers` (may change headers or answer locally) →
//! `on_request_body` (plugins that opted in, body buffered up to their limit) → the inner
//! service → `on_response_headers` (may answer locally while the head has not left) →
//! `on_response_body` (opt-in) → `on_response_trailers` (when the response had trailers) →
//! `on_log` → `on_done` → `on_delete` when the response body has been sent. Request trailers go
//! to `on_request_trailers` after `on_request_body`, to the plugins that buffer the body.
//! Responses the sidecar makes itself below this layer (502/503/504) go through the same
//! response callbacks. This file holds the request side; `respond.rs` the response side.
//!
//! Fail-open throughout: a plugin that faults, times out or is being replaced drops out of the
//! request, which carries on unchanged. Response callbacks run in reverse plugin order, as
//! Envoy's encoder filters do.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Body as _;
use tower::{Layer, Service};

use super::body::{Collected, collect, rebuild, replay_failed};
use super::config::PluginConfig;
use super::plugin::Plugin;
use super::set::{PluginSet, WorkerSnapshot};
use super::state::{LocalResponse, RequestInfo};
use super::stream::{ActiveStream, Outcome};
use crate::RouteTemplate;
use crate::body::Body;

mod respond;
use respond::{local_response, respond};

/// Wraps a service with the plugin set.
#[derive(Clone, Debug)]
pub struct PluginLayer {
    set: PluginSet,
}

impl PluginLayer {
    /// A layer running `set`'s plugins (reloads of the set apply to new requests).
    pub fn new(set: PluginSet) -> PluginLayer {
        PluginLayer { set }
    }
}

impl<S> Layer<S> for PluginLayer {
    type Service = PluginService<S>;

    fn layer(&self, inner: S) -> PluginService<S> {
        PluginService {
            inner,
            local: Arc::new(Mutex::new(self.set.worker_snapshot())),
            set: Arc::new(self.set.clone()),
        }
    }
}

/// The service [`PluginLayer`] makes.
#[derive(Clone, Debug)]
pub struct PluginService<S> {
    inner: S,
    /// One allocation per worker: the stack is cloned per connection, and this clone must not
    /// touch the counts the workers share.
    set: Arc<PluginSet>,
    /// This worker's copy of the live list (its lock is only ever taken by this worker).
    local: Arc<Mutex<WorkerSnapshot>>,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl<S> Service<Request<Body>> for PluginService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// Without plugins, the inner future as is (no allocation on that hot path).
    type Future = Either<S::Future, BoxFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if self.set.is_empty() {
            return Either::Left(self.inner.call(request));
        }
        let plugins = {
            let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
            self.set.snapshot_for(&mut local)
        };
        // The clone takes over readiness for the next call; `inner` was made ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // A closure, not `S` itself: `filter` then names a plain future type, whose `Send` the
        // compiler proves across its awaits (it cannot for `S::Future`, a projection).
        let forward = move |request| inner.call(request);
        Either::Right(Box::pin(filter(plugins, forward, request)))
    }
}

fn request_info(parts: &mut http::request::Parts) -> RequestInfo {
    RequestInfo {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        version: parts.version,
        started: RequestInfo::now(),
        // Taken, not cloned: nothing below this layer reads it, and a clone would write the
        // template's reference count, shared by every worker.
        route: parts.extensions.remove::<RouteTemplate>().map(|r| r.0),
        peer: parts.extensions.get::<serve::Peer>().copied(),
    }
}

/// Waits for a paused phase to be resumed (or answered locally). Boxed: pausing is rare, and
/// the wait's timer would otherwise make every request's future larger.
async fn settle(stream: &ActiveStream, outcome: &mut Outcome) {
    if outcome.paused && outcome.local.is_none() {
        Box::pin(stream.wait_resumed(outcome)).await;
    }
}

/// One body phase (the request's, or the response's in reverse plugin order): each plugin that
/// opted in (`wants`) and whose limit the body fits is called with it; a body a guest changed
/// replaces `data` and `content-length` in `headers`; a local reply ends the phase and is
/// returned.
async fn body_phase<'a>(
    streams: impl Iterator<Item = &'a ActiveStream>,
    wants: fn(&PluginConfig) -> bool,
    data: &mut Bytes,
    headers: &mut Arc<HeaderMap>,
    call: impl Fn(&ActiveStream, &Bytes) -> Option<Outcome>,
) -> Option<Box<LocalResponse>> {
    for stream in streams {
        let config = stream.plugin().config();
        if !wants(config) {
            continue;
        }
        if data.len() > config.body_limit_bytes {
            tracing::debug!(plugin = %config.name, "body over the plugin's limit; not observed");
            continue;
        }
        let Some(mut outcome) = call(stream, data) else {
            continue;
        };
        settle(stream, &mut outcome).await;
        if let Some(changed) = outcome.body {
            *data = changed;
            Arc::make_mut(headers).insert(CONTENT_LENGTH, HeaderValue::from(data.len()));
        }
        if outcome.local.is_some() {
            return outcome.local;
        }
    }
    None
}

/// The request body phase: the body collected up to `limit`, then `on_request_body` and
/// `on_request_trailers` for the plugins that asked for it; returns the body to forward.
async fn request_body(
    streams: &[ActiveStream],
    body: Body,
    limit: usize,
    headers: &mut Arc<HeaderMap>,
    local: &mut Option<Box<LocalResponse>>,
) -> Body {
    match collect(body, limit).await {
        Collected::Complete { mut data, trailers } => {
            let trailer_map = trailers.clone().map(Arc::new);
            *local = body_phase(
                streams.iter(),
                |config| config.request_body,
                &mut data,
                headers,
                |stream, data| stream.request_body(data, trailer_map.clone()),
            )
            .await;
            // Envoy's order: trailers after the body, to the plugins that saw the body.
            if let (None, Some(map)) = (&*local, &trailer_map) {
                for stream in streams {
                    if !stream.plugin().config().request_body {
                        continue;
                    }
                    let Some(mut outcome) = stream.request_trailers(map) else {
                        continue;
                    };
                    settle(stream, &mut outcome).await;
                    if outcome.local.is_some() {
                        *local = outcome.local;
                        break;
                    }
                }
            }
            rebuild(data, trailers)
        }
        Collected::TooLarge(body) => {
            tracing::debug!(
                limit,
                "request body over the body limit; plugins do not observe it"
            );
            body
        }
        // The client's body broke: the inner service sees it break the same way.
        Collected::Failed(read, error) => replay_failed(read, error),
    }
}

/// A request's streams, one per plugin that saw it: inline for the usual one or two plugins, so
/// the list costs no allocation.
type Streams = smallvec::SmallVec<[ActiveStream; 2]>;

/// One request through the plugins, then `forward` (the inner service's call). Generic over
/// it, so the inner future lives inside this one: one allocation per request for both, where
/// boxing the call and its future took three.
async fn filter<F, Forwarded>(
    plugins: Arc<[Arc<Plugin>]>,
    forward: F,
    request: Request<Body>,
) -> Result<Response<Body>, Infallible>
where
    F: FnOnce(Request<Body>) -> Forwarded,
    Forwarded: Future<Output = Result<Response<Body>, Infallible>>,
{
    let (mut parts, body) = request.into_parts();
    let info = Arc::new(request_info(&mut parts));
    // Shared with every plugin's view, copied only if a guest writes to it.
    let mut headers = Arc::new(std::mem::take(&mut parts.headers));
    let end_of_stream = body.is_end_stream();
    let mut streams = Streams::new();
    let mut local = None;
    for index in 0..plugins.len() {
        let Some((stream, mut outcome)) =
            ActiveStream::begin(&plugins, index, &info, &headers, end_of_stream)
        else {
            continue;
        };
        settle(&stream, &mut outcome).await;
        if let Some(changed) = outcome.headers {
            headers = changed;
        }
        streams.push(stream);
        if outcome.local.is_some() {
            local = outcome.local;
            break;
        }
    }

    let mut body = body;
    let body_limit = streams
        .iter()
        .filter(|s| s.plugin().config().request_body)
        .map(|s| s.plugin().config().body_limit_bytes)
        .max();
    if let (None, Some(limit), false) = (&local, body_limit, end_of_stream) {
        // Boxed: only requests whose body a plugin asked for pay for its state.
        let phase = request_body(&streams, body, limit, &mut headers, &mut local);
        body = Box::pin(phase).await;
    }
    // Plugins that export nothing past the request phases are done with this request.
    // (Dropping a stream ends it: its view goes.)
    streams.retain(|s| s.plugin().needs_end());
    parts.headers = Arc::unwrap_or_clone(headers);

    let (mut response, details) = match local {
        Some(local) => (local_response(*local), "wasm_local_reply"),
        None => {
            let Ok(response) = forward(Request::from_parts(parts, body)).await;
            (response, "via_upstream")
        }
    };
    if !streams.is_empty() {
        respond(streams, &mut response, details).await;
    }
    Ok(response)
}
