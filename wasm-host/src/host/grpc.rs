//! Unary gRPC callouts: `proxy_grpc_call` to a `[[clusters]]` entry, `proxy_grpc_cancel` and
//! `proxy_grpc_close` of a call not answered yet, and `proxy_get_status`. The hostcall only
//! checks the call and records it ([`crate::callout::PendingCall`], kind gRPC); the plugin
//! starts it once the callback returns and delivers its end (see [`crate::grpc_call`]).
//!
//! The service argument is the cluster's name, which is what the Rust SDK passes; Envoy also
//! accepts a serialized `GrpcService` proto, which this host does not parse. An unknown
//! cluster, malformed metadata or a service or method name that cannot be a path answer
//! `ParseFailure` (Envoy answers `BadArgument` for an unknown cluster, on which the Rust SDK
//! 0.2.5's `dispatch_grpc_call` panics; `ParseFailure` it returns as an `Err`).

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::callout::{CallKind, PendingCall};
use crate::memory::{self, HostResult, copy_out, read};
use crate::pairs;
use crate::state::HostState;

/// What `proxy_grpc_call` read from the guest.
struct Args {
    cluster: Vec<u8>,
    service: Vec<u8>,
    method: Vec<u8>,
    metadata: Vec<u8>,
    message: Vec<u8>,
}

/// Records the call; its token, or the status to answer.
fn dispatch(c: &mut C<'_>, args: Args, timeout_ms: u32) -> Result<u32, Status> {
    let state = c.data();
    let text = |bytes: &[u8]| std::str::from_utf8(bytes).map(str::to_owned).ok();
    let cluster = text(&args.cluster)
        .and_then(|name| state.plugin.clusters.load().get(&name).cloned())
        .ok_or_else(|| {
            tracing::debug!(plugin = %state.plugin.config.name, cluster = %String::from_utf8_lossy(&args.cluster), "gRPC callout to an unknown cluster");
            Status::ParseFailure
        })?;
    let (service, method) = text(&args.service)
        .zip(text(&args.method))
        .ok_or(Status::ParseFailure)?;
    let metadata = pairs::parse(&args.metadata).ok_or(Status::ParseFailure)?;
    let request = crate::grpc_call::request(
        &cluster.config.address,
        &service,
        &method,
        &metadata,
        &args.message,
        cluster.timeout(timeout_ms),
    )
    .ok_or(Status::ParseFailure)?;
    let state = c.data_mut();
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    let ctx = state.effective;
    state.grpc_calls.insert(token);
    state.pending_calls.push(PendingCall {
        token,
        ctx,
        cluster,
        request,
        timeout_ms,
        kind: CallKind::Grpc,
    });
    Ok(token)
}

/// Cancels a unary call not answered yet (Envoy's `proxy_grpc_cancel` and `proxy_grpc_close`
/// both do on a call token): no callback follows. Streams do not exist here: `NotFound`.
fn cancel(c: &mut C<'_>, token: i32) -> i32 {
    let token = token as u32;
    let state = c.data_mut();
    if !state.grpc_calls.remove(&token) {
        return code(Status::NotFound);
    }
    // Not started yet if asked in the same callback; otherwise its answer will be dropped.
    state.pending_calls.retain(|call| call.token != token);
    ok()
}

/// Registers the gRPC callout hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: C<'_>,
         cptr: i32,
         clen: i32,
         sptr: i32,
         slen: i32,
         mptr: i32,
         mlen: i32,
         dptr: i32,
         dlen: i32,
         bptr: i32,
         blen: i32,
         timeout_ms: i32,
         ret_token: i32|
         -> i32 {
            let read_all = |c: &mut C<'_>| -> Result<Args, Status> {
                Ok(Args {
                    cluster: read(c, cptr, clen)?,
                    service: read(c, sptr, slen)?,
                    method: read(c, mptr, mlen)?,
                    metadata: read(c, dptr, dlen)?,
                    message: read(c, bptr, blen)?,
                })
            };
            let args = match read_all(&mut c) {
                Ok(args) => args,
                Err(s) => return code(s),
            };
            // Check the out-pointer before recording anything.
            if let Err(s) = memory::write_u32(&mut c, ret_token, 0) {
                return code(s);
            }
            match dispatch(&mut c, args, timeout_ms as u32) {
                Ok(token) => match memory::write_u32(&mut c, ret_token, token) {
                    Ok(()) => ok(),
                    Err(s) => code(s),
                },
                Err(s) => code(s),
            }
        },
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", |mut c: C<'_>, token: i32| {
        cancel(&mut c, token)
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |mut c: C<'_>, token: i32| {
        cancel(&mut c, token)
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: C<'_>, ret_code: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let (status, message) = c.data().grpc_status.clone().unwrap_or_default();
            if let Err(s) = memory::write_u32(&mut c, ret_code, status) {
                return Ok(code(s));
            }
            copy_out(&mut c, message.as_bytes(), ret_ptr, ret_len)
        },
    )?;
    Ok(())
}
