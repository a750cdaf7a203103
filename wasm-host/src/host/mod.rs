//! `add_to_linker`: every `env.proxy_*` import of the Proxy-Wasm ABI 0.2.1 that the Rust SDK
//! 0.2.5 can ask for (37), plus `proxy_get_buffer_status` and `proxy_get_header_map_size` (C++
//! and Go SDKs), so any SDK-built module instantiates. Calls this host does not support answer
//! with a status the SDK survives (never `Unimplemented`, which makes it panic): lookups
//! `NotFound`, fire-and-forget setters `Ok`.
//!
//! Each hostcall acts on the *effective* context (the running callback's, or the one set with
//! `proxy_set_effective_context`). Hostcalls never re-enter the guest except through its
//! allocator; effects such as local responses are applied by the filter after the callback.
//!
//! One file per hostcall family: `logging`, `time`, `buffers`, `header_maps`, `properties`,
//! `shared_data`, `queues`, `callouts` (HTTP), `grpc`, `stream_control`,
//! `metrics`; [`unsupported`] links the calls this host
//! answers with a failure status, and [`wasi`] the WASI preview1 subset.

use wasmtime::{Caller, Linker};

use super::abi::Status;
use super::state::HostState;

mod buffers;
mod callouts;
mod grpc;
mod header_maps;
mod logging;
mod metrics;
mod properties;
mod queues;
mod shared_data;
mod stream_control;
mod time;
pub(crate) mod unsupported;
pub(crate) mod wasi;

pub(crate) use logging::log;

type C<'a> = Caller<'a, HostState>;

fn ok() -> i32 {
    Status::Ok.into()
}

fn code(s: Status) -> i32 {
    s.into()
}

/// Registers every hostcall in `linker` (module `env`), and the WASI subset in [`wasi`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging::add(linker)?;
    time::add(linker)?;
    buffers::add(linker)?;
    header_maps::add(linker)?;
    properties::add(linker)?;
    shared_data::add(linker)?;
    queues::add(linker)?;
    callouts::add(linker)?;
    grpc::add(linker)?;
    stream_control::add(linker)?;
    metrics::add(linker)?;
    unsupported::add_to_linker(linker)?;
    wasi::add_to_linker(linker)?;
    Ok(())
}
