//! Stream-control hostcalls: resuming or closing a paused stream, answering with a local
//! response, switching the effective context, and `proxy_done`. They only record the guest's
//! wish on the stream's state; the filter acts on it once the callback has returned.

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::{ROOT_CONTEXT_ID, Status};
use crate::memory::read;
use crate::pairs;
use crate::state::{HostState, LocalResponse};

/// Registers the stream-control hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Resuming (or closing, which this fail-open host treats the same way) is recorded and
    // acted on by the filter once the callback returns.
    for name in ["proxy_continue_stream", "proxy_close_stream"] {
        linker.func_wrap("env", name, |mut c: C<'_>, _stream: i32| -> i32 {
            if let Some(stream) = c.data_mut().stream_mut() {
                stream.resumed = true;
            }
            ok()
        })?;
    }
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         status_code: i32,
         _dptr: i32,
         _dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         _grpc: i32|
         -> i32 {
            let (body, headers) =
                match read(&mut c, bptr, blen).and_then(|b| Ok((b, read(&mut c, hptr, hlen)?))) {
                    Ok(bh) => bh,
                    Err(s) => return code(s),
                };
            // A malformed header map is treated as empty (the body and status still apply).
            let headers = pairs::parse(&headers)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
                .collect();
            let status = u16::try_from(status_code)
                .ok()
                .filter(|s| (200..=599).contains(s))
                .unwrap_or(500);
            if let Some(stream) = c.data_mut().stream_mut() {
                // Envoy refuses a second local reply with BadArgument; one after the response
                // head has left cannot be sent either (Envoy would reset the stream).
                if stream.local_reply_sent || stream.head_sent {
                    return code(Status::BadArgument);
                }
                stream.local_reply_sent = true;
                stream.local_response = Some(Box::new(LocalResponse {
                    status,
                    body,
                    headers,
                }));
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| -> i32 {
            let id = id as u32;
            let state = c.data_mut();
            if id == ROOT_CONTEXT_ID || state.streams.contains_key(&id) {
                state.effective = id;
                ok()
            } else {
                code(Status::BadArgument)
            }
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut c: C<'_>| -> i32 {
        match c.data_mut().stream_mut() {
            Some(stream) => {
                stream.done = true;
                ok()
            }
            None => code(Status::NotFound),
        }
    })?;
    Ok(())
}
