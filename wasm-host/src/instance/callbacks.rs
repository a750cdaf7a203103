//! The callbacks of a request's life and of the root context, each a thin wrapper over
//! [`PluginInstance::call`] that skips what the guest does not export.

use std::sync::Arc;
use std::time::Duration;

use super::{Fault, PluginInstance};
use crate::abi::{Action, BufferType, ROOT_CONTEXT_ID};
use crate::callout::CallAnswer;
use crate::metrics::host::Callback;
use crate::state::Buffer;

impl PluginInstance {
    /// `proxy_on_context_create(ctx, root)`.
    pub(crate) fn on_context_create(&mut self, ctx: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.context_create.as_ref() {
            Some(f) => self.call(
                Callback::ContextCreate,
                ctx,
                f,
                (ctx as i32, ROOT_CONTEXT_ID as i32),
            ),
            None => Ok(()),
        }
    }

    /// `proxy_on_request_headers` / `proxy_on_response_headers` / the body callbacks.
    pub(crate) fn on_data(
        &mut self,
        callback: Callback,
        ctx: u32,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Action, Fault> {
        let exports = Arc::clone(&self.exports);
        let func = match callback {
            Callback::RequestHeaders => exports.request_headers.as_ref(),
            Callback::RequestBody => exports.request_body.as_ref(),
            Callback::ResponseHeaders => exports.response_headers.as_ref(),
            Callback::ResponseBody => exports.response_body.as_ref(),
            _ => None,
        };
        match func {
            Some(f) => Ok(Action::from_i32(self.call(
                callback,
                ctx,
                f,
                (ctx as i32, size as i32, end_of_stream as i32),
            )?)),
            None => Ok(Action::Continue),
        }
    }

    /// `proxy_on_request_trailers` / `proxy_on_response_trailers`.
    pub(crate) fn on_trailers(
        &mut self,
        callback: Callback,
        ctx: u32,
        count: usize,
    ) -> Result<Action, Fault> {
        let exports = Arc::clone(&self.exports);
        let func = match callback {
            Callback::RequestTrailers => exports.request_trailers.as_ref(),
            Callback::ResponseTrailers => exports.response_trailers.as_ref(),
            _ => None,
        };
        match func {
            Some(f) => Ok(Action::from_i32(self.call(
                callback,
                ctx,
                f,
                (ctx as i32, count as i32),
            )?)),
            None => Ok(Action::Continue),
        }
    }

    /// Envoy's HTTP end of stream: `on_log` → `on_done` → `on_delete`. Returns whether
    /// `on_done` said the context is finished (false: it will call `proxy_done`).
    pub(crate) fn on_log_and_done(&mut self, ctx: u32) -> Result<bool, Fault> {
        let exports = Arc::clone(&self.exports);
        if let Some(f) = exports.log.as_ref() {
            self.call(Callback::Log, ctx, f, ctx as i32)?;
        }
        match exports.done.as_ref() {
            Some(f) => Ok(self.call(Callback::Done, ctx, f, ctx as i32)? != 0),
            None => Ok(true),
        }
    }

    /// `proxy_on_delete`, then forgets the request view.
    pub(crate) fn on_delete(&mut self, ctx: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        let result = match exports.delete.as_ref() {
            Some(f) => self.call(Callback::Delete, ctx, f, ctx as i32),
            None => Ok(()),
        };
        self.store.data_mut().streams.remove(&ctx);
        result
    }

    /// `proxy_on_tick(root)`.
    pub(crate) fn on_tick(&mut self) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.tick.as_ref() {
            Some(f) => self.call(Callback::Tick, ROOT_CONTEXT_ID, f, ROOT_CONTEXT_ID as i32),
            None => Ok(()),
        }
    }

    /// `proxy_on_http_call_response(ctx, token, headers, body, trailers)`, the answer readable
    /// during the call. Skipped when the asking request is gone (Envoy cancels its callouts).
    pub(crate) fn on_http_call_response(
        &mut self,
        ctx: u32,
        token: u32,
        answer: CallAnswer,
        body: bytes::Bytes,
    ) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        let Some(f) = exports.http_call_response.as_ref() else {
            return Ok(());
        };
        if ctx != ROOT_CONTEXT_ID && !self.store.data().streams.contains_key(&ctx) {
            return Ok(());
        }
        let params = (
            ctx as i32,
            token as i32,
            answer.header_count() as i32,
            body.len() as i32,
            answer.trailers.len() as i32,
        );
        let state = self.store.data_mut();
        state.call_answer = Some(answer);
        state.buffer = Some(Buffer {
            kind: BufferType::HttpCallResponseBody,
            bytes: body,
            changed: false,
        });
        let result = self.call(Callback::HttpCallResponse, ctx, f, params);
        let state = self.store.data_mut();
        state.call_answer = None;
        state.buffer = None;
        result
    }

    /// `proxy_on_queue_ready(root, queue)`.
    pub(crate) fn on_queue_ready(&mut self, queue: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.queue_ready.as_ref() {
            Some(f) => self.call(
                Callback::QueueReady,
                ROOT_CONTEXT_ID,
                f,
                (ROOT_CONTEXT_ID as i32, queue as i32),
            ),
            None => Ok(()),
        }
    }

    /// The tick period the guest asked for since the last look.
    pub(crate) fn take_tick_period(&mut self) -> Option<Duration> {
        self.store.data_mut().tick_period.take()
    }
}
