//! Delivering gRPC answers as Envoy does. A unary call ends with one callback:
//! `proxy_on_grpc_receive(ctx, token, size)` with the message as the gRPC receive buffer, or
//! `proxy_on_grpc_close(ctx, token, status)` with `proxy_get_status` reporting the status and
//! its message (Envoy's unary client has no metadata callbacks). A stream delivers its initial
//! metadata, each message, its trailing metadata (maps 4 and 5) and its close, in that order.

use super::{Exports, Fault, Fn3, PluginInstance};
use crate::abi::{BufferType, MapType, ROOT_CONTEXT_ID};
use crate::grpc_call::{GrpcEnd, code};
use crate::grpc_stream::StreamEvent;
use crate::metrics::host::Callback;
use crate::state::Buffer;

impl PluginInstance {
    /// Whether `ctx` can still get callbacks (Envoy cancels a finished request's calls).
    fn context_alive(&self, ctx: u32) -> bool {
        ctx == ROOT_CONTEXT_ID || self.store.data().streams.contains_key(&ctx)
    }

    /// Delivers `end` for call `token` of context `ctx`, unless the call was cancelled.
    pub(crate) fn on_grpc_end(&mut self, ctx: u32, token: u32, end: GrpcEnd) -> Result<(), Fault> {
        if !self.store.data_mut().grpc_calls.remove(&token) || !self.context_alive(ctx) {
            return Ok(());
        }
        match end {
            GrpcEnd::Message(message) => self.grpc_message(ctx, token, message),
            GrpcEnd::Close { status, message } => self.grpc_close(ctx, token, status, message),
        }
    }

    /// Delivers one event of stream `token`; `false` once nothing more is wanted (cancelled,
    /// closed, or its context gone).
    pub(crate) fn on_grpc_stream_event(
        &mut self,
        ctx: u32,
        token: u32,
        event: StreamEvent,
    ) -> Result<bool, Fault> {
        if !self.store.data().grpc_streams.contains_key(&token) || !self.context_alive(ctx) {
            return Ok(false);
        }
        match event {
            StreamEvent::InitialMetadata(map) => {
                let kind = MapType::GrpcReceiveInitialMetadata;
                self.grpc_metadata(Callback::GrpcInitialMetadata, kind, ctx, token, map)?;
            }
            StreamEvent::Message(message) => self.grpc_message(ctx, token, message)?,
            StreamEvent::TrailingMetadata(map) => {
                let kind = MapType::GrpcReceiveTrailingMetadata;
                self.grpc_metadata(Callback::GrpcTrailingMetadata, kind, ctx, token, map)?;
            }
            StreamEvent::Close {
                status, message, ..
            } => {
                self.store.data_mut().grpc_streams.remove(&token);
                self.grpc_close(ctx, token, status, message)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn grpc_metadata(
        &mut self,
        callback: Callback,
        kind: MapType,
        ctx: u32,
        token: u32,
        map: http::HeaderMap,
    ) -> Result<(), Fault> {
        let select: fn(&Exports) -> Option<&Fn3<()>> = match kind {
            MapType::GrpcReceiveInitialMetadata => |e| e.grpc_initial_metadata.as_ref(),
            _ => |e| e.grpc_trailing_metadata.as_ref(),
        };
        if select(&self.exports).is_none() {
            return Ok(());
        }
        let params = (ctx as i32, token as i32, map.len() as i32);
        self.store.data_mut().grpc_metadata = Some((kind, map));
        let result = self.call_export(callback, ctx, select, params).map(drop);
        self.store.data_mut().grpc_metadata = None;
        result
    }

    fn grpc_message(&mut self, ctx: u32, token: u32, message: bytes::Bytes) -> Result<(), Fault> {
        if self.exports.grpc_receive.is_none() {
            return Ok(());
        }
        let params = (ctx as i32, token as i32, message.len() as i32);
        let state = self.store.data_mut();
        state.grpc_status = Some((code::OK, String::new()));
        state.buffer = Some(Buffer {
            kind: BufferType::GrpcReceiveBuffer,
            bytes: message,
            changed: false,
        });
        let result = self
            .call_export(
                Callback::GrpcReceive,
                ctx,
                |e| e.grpc_receive.as_ref(),
                params,
            )
            .map(drop);
        let state = self.store.data_mut();
        state.grpc_status = None;
        state.buffer = None;
        result
    }

    fn grpc_close(
        &mut self,
        ctx: u32,
        token: u32,
        status: u32,
        message: String,
    ) -> Result<(), Fault> {
        if self.exports.grpc_close.is_none() {
            return Ok(());
        }
        self.store.data_mut().grpc_status = Some((status, message));
        let params = (ctx as i32, token as i32, status as i32);
        let result = self
            .call_export(Callback::GrpcClose, ctx, |e| e.grpc_close.as_ref(), params)
            .map(drop);
        self.store.data_mut().grpc_status = None;
        result
    }
}
