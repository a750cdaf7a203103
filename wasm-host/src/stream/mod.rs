//! One request's life inside one plugin: the context is created on a leased instance, then each
//! phase fills the request view, calls the guest, and reads back what the guest changed or asked
//! for (headers, body, local response, resume). A `None` from any phase means the plugin is out
//! of this request (its instance faulted or was replaced): the request carries on without it.
//! A phase whose callback the guest does not export costs nothing: its facts reach the view
//! when the next exported callback needs them (at the latest in `on_log`). `end.rs`: the
//! end-of-request callbacks.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use super::abi::{Action, BufferType, MapType};
use super::instance::{Fault, PluginInstance};
use super::metrics::host::{Callback, FaultKind};
use super::plugin::{Lease, Plugin};

mod end;
use super::state::{Buffer, LocalResponse, RequestInfo, Stream};

/// What a callback left behind.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Pause was returned and the guest has not resumed yet.
    pub paused: bool,
    /// Replacement headers for the phase's map, if the guest changed them.
    pub headers: Option<Arc<HeaderMap>>,
    /// Replacement body, if the guest changed it.
    pub body: Option<Bytes>,
    /// A local response the guest asked for.
    pub local: Option<Box<LocalResponse>>,
    /// The header map of the phase (what a guest may still change while paused).
    pub map: Option<MapType>,
}

/// The facts of a finished (or abandoned) request, for `on_log`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ending {
    /// Response status, if there was a response.
    pub code: Option<u16>,
    /// Why the sidecar answered (`via_upstream`, `wasm_local_reply`).
    pub details: Option<&'static str>,
    /// Response headers as sent.
    pub headers: Option<Arc<HeaderMap>>,
    /// Response body bytes sent.
    pub sent: u64,
    /// Response trailers, if any.
    pub trailers: Option<Arc<HeaderMap>>,
}

/// A request's context on one plugin instance.
#[derive(Debug)]
pub(crate) struct ActiveStream {
    /// The request's plugin list (a worker's copy: cloning it writes no shared line).
    plugins: Arc<[Arc<Plugin>]>,
    /// This plugin's index in it.
    index: usize,
    lease: Lease,
    ctx: u32,
    /// Set once the end-of-request callbacks ran (or were handed to a task).
    ended: bool,
}

fn outcome(inst: &mut PluginInstance, ctx: u32, action: Action, map: Option<MapType>) -> Outcome {
    let state = inst.state();
    let body = state.buffer.take().filter(|b| b.changed).map(|b| b.bytes);
    let Some(stream) = state.streams.get_mut(&ctx) else {
        return Outcome::default();
    };
    let headers = changed_headers(stream, map);
    let paused = action == Action::Pause && !std::mem::take(&mut stream.resumed);
    Outcome {
        paused,
        headers,
        body,
        local: stream.local_response.take(),
        map,
    }
}

/// The phase's header map if the guest changed it since the last look.
fn changed_headers(stream: &mut Stream, map: Option<MapType>) -> Option<Arc<HeaderMap>> {
    match map {
        Some(MapType::RequestHeaders) if std::mem::take(&mut stream.request_headers_changed) => {
            Some(stream.request_headers.clone())
        }
        Some(MapType::ResponseHeaders) if std::mem::take(&mut stream.response_headers_changed) => {
            stream.response_headers.clone()
        }
        _ => None,
    }
}

impl ActiveStream {
    /// Creates the context and calls `on_request_headers`.
    pub(crate) fn begin(
        plugins: &Arc<[Arc<Plugin>]>,
        index: usize,
        info: &Arc<RequestInfo>,
        headers: &Arc<HeaderMap>,
        end_of_stream: bool,
    ) -> Option<(ActiveStream, Outcome)> {
        // Pseudo-headers count as pairs.
        let pairs = 4 + headers.len();
        let (lease, (ctx, outcome)) = plugins[index].begin(|inst| {
            let ctx = inst.next_context_id();
            inst.state()
                .streams
                .insert(ctx, Stream::new(info.clone(), headers.clone()));
            inst.on_context_create(ctx)?;
            let action = inst.on_data(Callback::RequestHeaders, ctx, pairs, end_of_stream)?;
            Ok((
                ctx,
                outcome(inst, ctx, action, Some(MapType::RequestHeaders)),
            ))
        })?;
        Some((
            ActiveStream {
                plugins: plugins.clone(),
                index,
                lease,
                ctx,
                ended: false,
            },
            outcome,
        ))
    }

    /// The plugin.
    pub(crate) fn plugin(&self) -> &Arc<Plugin> {
        &self.plugins[self.index]
    }

    /// Runs `f` with the instance and this request's view; `None` when the plugin is out of the
    /// request (instance replaced, view gone).
    fn with<R>(&self, f: impl FnOnce(&mut PluginInstance, u32) -> Result<R, Fault>) -> Option<R> {
        let ctx = self.ctx;
        self.plugin()
            .with(self.lease, |inst| {
                if !inst.state().streams.contains_key(&ctx) {
                    return Ok(None);
                }
                f(inst, ctx).map(Some)
            })
            .flatten()
    }

    /// Calls a data callback (`size` bytes or pairs) and reads what it left.
    fn call_data(
        &self,
        callback: Callback,
        size: usize,
        map: Option<MapType>,
        prepare: impl FnOnce(&mut PluginInstance, u32),
    ) -> Option<Outcome> {
        let ctx = self.ctx;
        self.plugin().with(self.lease, |inst| {
            if !inst.state().streams.contains_key(&ctx) {
                return Ok(None);
            }
            prepare(inst, ctx);
            let action = inst.on_data(callback, ctx, size, true)?;
            Ok(Some(outcome(inst, ctx, action, map)))
        })?
    }

    /// `on_request_body` with the whole body (and trailers, readable as a map).
    pub(crate) fn request_body(
        &self,
        data: &Bytes,
        trailers: Option<Arc<HeaderMap>>,
    ) -> Option<Outcome> {
        if !self.plugin().exports(Callback::RequestBody) {
            return None;
        }
        self.call_data(Callback::RequestBody, data.len(), None, |inst, ctx| {
            let state = inst.state();
            if let Some(stream) = state.streams.get_mut(&ctx) {
                stream.request_trailers = trailers;
            }
            state.buffer = Some(Buffer {
                kind: BufferType::HttpRequestBody,
                bytes: data.clone(),
                changed: false,
            });
        })
    }

    /// `on_request_trailers` with the request's trailers.
    pub(crate) fn request_trailers(&self, trailers: &Arc<HeaderMap>) -> Option<Outcome> {
        if !self.plugin().exports(Callback::RequestTrailers) {
            return None;
        }
        let ctx = self.ctx;
        self.plugin().with(self.lease, |inst| {
            let Some(stream) = inst.state().streams.get_mut(&ctx) else {
                return Ok(None);
            };
            stream.request_trailers = Some(trailers.clone());
            let action = inst.on_trailers(Callback::RequestTrailers, ctx, trailers.len())?;
            Ok(Some(outcome(
                inst,
                ctx,
                action,
                Some(MapType::RequestTrailers),
            )))
        })?
    }

    /// `on_response_headers`.
    pub(crate) fn response_headers(
        &self,
        code: u16,
        headers: &Arc<HeaderMap>,
        details: &'static str,
    ) -> Option<Outcome> {
        if !self.plugin().exports(Callback::ResponseHeaders) {
            return None;
        }
        let pairs = 1 + headers.len();
        self.call_data(
            Callback::ResponseHeaders,
            pairs,
            Some(MapType::ResponseHeaders),
            |inst, ctx| {
                if let Some(stream) = inst.state().streams.get_mut(&ctx) {
                    stream.response.code = Some(code);
                    stream.response.code_details = Some(details);
                    stream.response_headers = Some(headers.clone());
                }
            },
        )
    }

    /// `on_response_body` with the whole body.
    pub(crate) fn response_body(&self, data: &Bytes) -> Option<Outcome> {
        if !self.plugin().exports(Callback::ResponseBody) {
            return None;
        }
        self.call_data(Callback::ResponseBody, data.len(), None, |inst, _| {
            inst.state().buffer = Some(Buffer {
                kind: BufferType::HttpResponseBody,
                bytes: data.clone(),
                changed: false,
            });
        })
    }

    /// Waits (polling, without holding the instance) for the guest to resume a paused stream or
    /// send a local response, at most the plugin's `pause_timeout_ms`; on timeout the request
    /// continues without waiting (fail-open) and a `pause_timeout` fault is counted.
    /// Headers the guest changed meanwhile (e.g. from a callout's answer) are in `outcome`.
    pub(crate) async fn wait_resumed(&self, outcome: &mut Outcome) {
        let timeout = Duration::from_millis(self.plugin().config().pause_timeout_ms);
        let deadline = tokio::time::Instant::now() + timeout;
        let map = outcome.map;
        loop {
            let state = self.with(|inst, ctx| {
                let s = inst.state().streams.get_mut(&ctx);
                Ok(s.map(|s| {
                    let headers = changed_headers(s, map);
                    (
                        std::mem::take(&mut s.resumed),
                        s.local_response.take(),
                        headers,
                    )
                }))
            });
            let Some((resumed, local, headers)) = state.flatten() else {
                return;
            };
            if headers.is_some() {
                outcome.headers = headers;
            }
            if local.is_some() || resumed {
                outcome.local = local;
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                self.plugin().count_fault(FaultKind::PauseTimeout);
                tracing::warn!(plugin = %self.plugin().config().name, ?timeout, "plugin paused the request and did not resume it; continuing without it");
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
