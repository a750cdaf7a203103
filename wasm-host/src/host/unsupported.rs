//! Hostcalls this sidecar does not provide, linked so every SDK-built module instantiates, each
//! answering the status the Rust SDK 0.2.5 turns into an `Err` (never a panic): foreign
//! functions `NotFound` (Envoy's are Envoy-specific).

use wasmtime::Linker;

use super::{C, code};
use crate::abi::Status;
use crate::state::HostState;

/// Registers the stubs.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> i32 {
            code(Status::NotFound)
        },
    )?;
    Ok(())
}
