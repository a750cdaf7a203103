//! Hostcalls this sidecar does not provide yet, linked so every SDK-built module instantiates,
//! each answering the status the Rust SDK 0.2.5 turns into an `Err` (never a panic): gRPC
//! callouts `InternalFailure` (they need HTTP/2 upstream, which the sidecar does not speak
//! yet), gRPC stream operations and foreign functions `NotFound`. `proxy_get_status` (the
//! gRPC status of the last gRPC answer) reports 0 with no message.

use wasmtime::Linker;

use super::{C, code};
use crate::abi::Status;
use crate::memory::{self, status};
use crate::state::HostState;

/// Registers the stubs.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |mut c: C<'_>, ret_code: i32, ret_ptr: i32, ret_len: i32| -> i32 {
            let written = memory::write_u32(&mut c, ret_code, 0)
                .and_then(|()| memory::write_u32(&mut c, ret_ptr, 0))
                .and_then(|()| memory::write_u32(&mut c, ret_len, 0));
            status(written)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |_: C<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> i32 { code(Status::InternalFailure) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            code(Status::InternalFailure)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32| -> i32 { code(Status::NotFound) },
    )?;
    for name in ["proxy_grpc_cancel", "proxy_grpc_close"] {
        linker.func_wrap("env", name, |_: C<'_>, _: i32| -> i32 {
            code(Status::NotFound)
        })?;
    }
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            code(Status::NotFound)
        },
    )?;
    Ok(())
}
