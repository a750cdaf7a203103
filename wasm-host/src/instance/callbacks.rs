//! The callbacks of a request's life and of the root context, each a thin wrapper over
//! [`PluginInstance::call`] that skips what the guest does not export.

use std::time::Duration;

use super::{Exports, Fault, Fn2, Fn3, PluginInstance};
use crate::abi::{Action, BufferType, ROOT_CONTEXT_ID};
use crate::callout::CallAnswer;
use crate::metrics::host::Callback;
use crate::state::Buffer;

impl PluginInstance {
    /// `proxy_on_context_create(ctx, root)`.
    pub(crate) fn on_context_create(&mut self, ctx: u32) -> Result<(), Fault> {
        self.call_export(
            Callback::ContextCreate,
            ctx,
            |e| e.context_create.as_ref(),
            (ctx as i32, ROOT_CONTEXT_ID as i32),
        )
        .map(drop)
    }

    /// `proxy_on_request_headers` / `proxy_on_response_headers` / the body callbacks.
    pub(crate) fn on_data(
        &mut self,
        callback: Callback,
        ctx: u32,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Action, Fault> {
        let select: fn(&Exports) -> Option<&Fn3> = match callback {
            Callback::RequestHeaders => |e| e.request_headers.as_ref(),
            Callback::RequestBody => |e| e.request_body.as_ref(),
            Callback::ResponseHeaders => |e| e.response_headers.as_ref(),
            Callback::ResponseBody => |e| e.response_body.as_ref(),
            _ => |_| None,
        };
        let params = (ctx as i32, size as i32, end_of_stream as i32);
        let action = self.call_export(callback, ctx, select, params)?;
        Ok(action.map_or(Action::Continue, Action::from_i32))
    }

    /// `proxy_on_request_trailers` / `proxy_on_response_trailers`.
    pub(crate) fn on_trailers(
        &mut self,
        callback: Callback,
        ctx: u32,
        count: usize,
    ) -> Result<Action, Fault> {
        let select: fn(&Exports) -> Option<&Fn2<i32>> = match callback {
            Callback::RequestTrailers => |e| e.request_trailers.as_ref(),
            Callback::ResponseTrailers => |e| e.response_trailers.as_ref(),
            _ => |_| None,
        };
        let action = self.call_export(callback, ctx, select, (ctx as i32, count as i32))?;
        Ok(action.map_or(Action::Continue, Action::from_i32))
    }

    /// Envoy's HTTP end of stream: `on_log` → `on_done` → `on_delete`. Returns whether
    /// `on_done` said the context is finished (false: it will call `proxy_done`).
    pub(crate) fn on_log_and_done(&mut self, ctx: u32) -> Result<bool, Fault> {
        self.call_export(Callback::Log, ctx, |e| e.log.as_ref(), ctx as i32)?;
        let done = self.call_export(Callback::Done, ctx, |e| e.done.as_ref(), ctx as i32)?;
        Ok(done.is_none_or(|done| done != 0))
    }

    /// `proxy_on_delete`, then forgets the request view.
    pub(crate) fn on_delete(&mut self, ctx: u32) -> Result<(), Fault> {
        let result = self.call_export(Callback::Delete, ctx, |e| e.delete.as_ref(), ctx as i32);
        self.store.data_mut().streams.remove(&ctx);
        result.map(drop)
    }

    /// `proxy_on_tick(root)`.
    pub(crate) fn on_tick(&mut self) -> Result<(), Fault> {
        let root = ROOT_CONTEXT_ID as i32;
        self.call_export(Callback::Tick, ROOT_CONTEXT_ID, |e| e.tick.as_ref(), root)
            .map(drop)
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
        if self.exports.http_call_response.is_none() {
            return Ok(());
        }
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
        let result = self.call_export(
            Callback::HttpCallResponse,
            ctx,
            |e| e.http_call_response.as_ref(),
            params,
        );
        let state = self.store.data_mut();
        state.call_answer = None;
        state.buffer = None;
        result.map(drop)
    }

    /// `proxy_on_queue_ready(root, queue)`.
    pub(crate) fn on_queue_ready(&mut self, queue: u32) -> Result<(), Fault> {
        let params = (ROOT_CONTEXT_ID as i32, queue as i32);
        self.call_export(
            Callback::QueueReady,
            ROOT_CONTEXT_ID,
            |e| e.queue_ready.as_ref(),
            params,
        )
        .map(drop)
    }

    /// The tick period the guest asked for since the last look.
    pub(crate) fn take_tick_period(&mut self) -> Option<Duration> {
        self.store.data_mut().tick_period.take()
    }
}
