//! gRPC callouts: `proxy_grpc_call` (unary) and `proxy_grpc_stream` to a `[[clusters]]` entry,
//! `proxy_grpc_send` on a stream, `proxy_grpc_cancel` and `proxy_grpc_close`, and
//! `proxy_get_status`. The hostcalls only check the call and record it
//! ([`crate::callout::PendingCall`] of kind gRPC, [`crate::grpc_stream::PendingStream`]); the
//! plugin starts it once the callback returns and delivers what comes back (see
//! [`crate::grpc_call`], [`crate::grpc_stream`]).
//!
//! The service argument is the cluster's name, which is what the Rust SDK passes; Envoy also
//! accepts a serialized `GrpcService` proto, which this host does not parse. An unknown
//! cluster, malformed metadata or a service or method name that cannot be a path answer
//! `ParseFailure` (Envoy answers `BadArgument` for an unknown cluster, on which the Rust SDK
//! 0.2.5's `dispatch_grpc_call` panics; `ParseFailure` it returns as an `Err`).

use std::sync::Arc;

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::callout::{CallKind, PendingCall};
use crate::cluster::Cluster;
use crate::memory::{self, HostResult, copy_out, read};
use crate::pairs;
use crate::state::HostState;

/// What `proxy_grpc_call` and `proxy_grpc_stream` read from the guest.
struct Args {
    cluster: Vec<u8>,
    service: Vec<u8>,
    method: Vec<u8>,
    metadata: Vec<u8>,
}

/// The arguments checked: the cluster, service and method names, the metadata pairs.
type Target = (Arc<Cluster>, String, String, Vec<(Vec<u8>, Vec<u8>)>);

fn target(c: &C<'_>, args: &Args) -> Result<Target, Status> {
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
    Ok((cluster, service, method, metadata))
}

/// A new token (shared with HTTP callouts: the SDK routes answers by token).
fn next_token(state: &mut HostState) -> u32 {
    let token = state.next_token;
    state.next_token = state.next_token.wrapping_add(1).max(1);
    token
}

/// Records the call; its token, or the status to answer.
fn dispatch(c: &mut C<'_>, args: Args, message: Vec<u8>, timeout_ms: u32) -> Result<u32, Status> {
    let (cluster, service, method, metadata) = target(c, &args)?;
    let request = crate::grpc_call::request(
        &cluster.config.address,
        &service,
        &method,
        &metadata,
        &message,
        cluster.timeout(timeout_ms),
    )
    .ok_or(Status::ParseFailure)?;
    let state = c.data_mut();
    let token = next_token(state);
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

/// Opens a stream; its token, or the status to answer.
fn open(c: &mut C<'_>, args: Args) -> Result<u32, Status> {
    let (cluster, service, method, metadata) = target(c, &args)?;
    let head = crate::grpc_call::head(&cluster.config.address, &service, &method, &metadata)
        .ok_or(Status::ParseFailure)?;
    let state = c.data_mut();
    let token = next_token(state);
    let (handle, pending) = crate::grpc_stream::open(token, state.effective, cluster, head)
        .ok_or(Status::ParseFailure)?;
    state.grpc_streams.insert(token, handle);
    state.pending_streams.push(pending);
    Ok(token)
}

/// Cancels a unary call not answered yet or a stream (Envoy's `proxy_grpc_cancel`, and
/// `proxy_grpc_close` on a call token): no callback follows.
fn cancel(c: &mut C<'_>, token: u32) -> i32 {
    let state = c.data_mut();
    if state.grpc_calls.remove(&token) {
        // Not started yet if asked in the same callback; otherwise its answer will be dropped.
        state.pending_calls.retain(|call| call.token != token);
        return ok();
    }
    // Dropping the handle stops the stream's task.
    if state.grpc_streams.remove(&token).is_some() {
        state.pending_streams.retain(|stream| stream.token != token);
        return ok();
    }
    code(Status::NotFound)
}

/// `proxy_grpc_close`: a stream's side is closed (its close callback still comes, as in Envoy);
/// a unary call is cancelled.
fn close(c: &mut C<'_>, token: u32) -> i32 {
    match c.data_mut().grpc_streams.get_mut(&token) {
        Some(stream) => {
            stream.send = None;
            ok()
        }
        None => cancel(c, token),
    }
}

/// `proxy_grpc_send`: one message on a stream, then maybe the end of the plugin's side.
fn send(c: &mut C<'_>, token: u32, message: &[u8], end_stream: bool) -> i32 {
    let Some(stream) = c.data_mut().grpc_streams.get_mut(&token) else {
        return code(Status::NotFound);
    };
    let Some(sender) = stream.send.as_ref() else {
        return code(Status::BadArgument);
    };
    let Some(framed) = crate::grpc_call::frame(message) else {
        return code(Status::BadArgument);
    };
    // A stream already ended drops it; its close callback says how it ended.
    let _ = sender.send(framed);
    if end_stream {
        stream.send = None;
    }
    ok()
}

/// Reads the cluster, service, method and metadata (pointer, length) pairs.
fn read_args(c: &mut C<'_>, at: [i32; 8]) -> Result<Args, Status> {
    Ok(Args {
        cluster: read(c, at[0], at[1])?,
        service: read(c, at[2], at[3])?,
        method: read(c, at[4], at[5])?,
        metadata: read(c, at[6], at[7])?,
    })
}

/// Checks the token's out-pointer, runs `record`, writes the token it gave.
fn with_token(
    c: &mut C<'_>,
    ret_token: i32,
    record: impl FnOnce(&mut C<'_>) -> Result<u32, Status>,
) -> i32 {
    // The out-pointer first: nothing is recorded for a guest that cannot learn the token.
    if let Err(s) = memory::write_u32(c, ret_token, 0) {
        return code(s);
    }
    match record(c).and_then(|token| memory::write_u32(c, ret_token, token)) {
        Ok(()) => ok(),
        Err(s) => code(s),
    }
}

/// Registers the gRPC hostcalls.
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
            let read_all = |c: &mut C<'_>| -> Result<_, Status> {
                let args = read_args(c, [cptr, clen, sptr, slen, mptr, mlen, dptr, dlen])?;
                Ok((args, read(c, bptr, blen)?))
            };
            let (args, message) = match read_all(&mut c) {
                Ok(read) => read,
                Err(s) => return code(s),
            };
            with_token(&mut c, ret_token, |c| {
                dispatch(c, args, message, timeout_ms as u32)
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: C<'_>,
         cptr: i32,
         clen: i32,
         sptr: i32,
         slen: i32,
         mptr: i32,
         mlen: i32,
         dptr: i32,
         dlen: i32,
         ret_token: i32|
         -> i32 {
            match read_args(&mut c, [cptr, clen, sptr, slen, mptr, mlen, dptr, dlen]) {
                Ok(args) => with_token(&mut c, ret_token, |c| open(c, args)),
                Err(s) => code(s),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |mut c: C<'_>, token: i32, ptr: i32, len: i32, end_stream: i32| -> i32 {
            match read(&mut c, ptr, len) {
                Ok(message) => send(&mut c, token as u32, &message, end_stream != 0),
                Err(s) => code(s),
            }
        },
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", |mut c: C<'_>, token: i32| {
        cancel(&mut c, token as u32)
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |mut c: C<'_>, token: i32| {
        close(&mut c, token as u32)
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
