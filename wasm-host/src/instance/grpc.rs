//! Delivering a unary gRPC call's end, as Envoy does: `proxy_on_grpc_receive(ctx, token, size)`
//! with the message as the gRPC receive buffer, or `proxy_on_grpc_close(ctx, token, status)`
//! with `proxy_get_status` reporting the status and its message during the callback. Envoy's
//! unary client has no metadata callbacks; the SDK routes neither for a call token.

use super::{Fault, PluginInstance};
use crate::abi::{BufferType, ROOT_CONTEXT_ID};
use crate::grpc_call::{GrpcEnd, code};
use crate::metrics::host::Callback;
use crate::state::Buffer;

impl PluginInstance {
    /// Delivers `end` for call `token` of context `ctx`. Skipped when the call was cancelled or
    /// the asking request is gone (Envoy cancels its calls).
    pub(crate) fn on_grpc_end(&mut self, ctx: u32, token: u32, end: GrpcEnd) -> Result<(), Fault> {
        let exports = std::sync::Arc::clone(&self.exports);
        let state = self.store.data_mut();
        if !state.grpc_calls.remove(&token)
            || (ctx != ROOT_CONTEXT_ID && !state.streams.contains_key(&ctx))
        {
            return Ok(());
        }
        let result = match end {
            GrpcEnd::Message(message) => {
                let Some(f) = exports.grpc_receive.as_ref() else {
                    return Ok(());
                };
                let params = (ctx as i32, token as i32, message.len() as i32);
                state.grpc_status = Some((code::OK, String::new()));
                state.buffer = Some(Buffer {
                    kind: BufferType::GrpcReceiveBuffer,
                    bytes: message.into(),
                    changed: false,
                });
                self.call(Callback::GrpcReceive, ctx, f, params)
            }
            GrpcEnd::Close { status, message } => {
                let Some(f) = exports.grpc_close.as_ref() else {
                    return Ok(());
                };
                state.grpc_status = Some((status, message));
                self.call(
                    Callback::GrpcClose,
                    ctx,
                    f,
                    (ctx as i32, token as i32, status as i32),
                )
            }
        };
        let state = self.store.data_mut();
        state.grpc_status = None;
        state.buffer = None;
        result
    }
}
