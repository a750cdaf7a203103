//! Buffer hostcalls: `proxy_get_buffer_bytes`, `proxy_set_buffer_bytes` and
//! `proxy_get_buffer_status` over the VM and plugin configurations (read-only) and the buffered
//! request or response body of the current callback, if any.

use bytes::Bytes;
use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::{BufferType, Status};
use crate::memory::{self, HostResult, copy_out, read, status};
use crate::state::HostState;

/// The buffer's bytes: a shared handle on a body (no copy), a copy of a configuration (read
/// once, at start).
fn buffer_bytes(state: &HostState, kind: BufferType) -> Option<Bytes> {
    let config = &state.plugin.config;
    match kind {
        BufferType::VmConfiguration => {
            Some(Bytes::copy_from_slice(config.vm_configuration.as_bytes()))
        }
        BufferType::PluginConfiguration => {
            Some(Bytes::copy_from_slice(config.configuration.as_bytes()))
        }
        _ => state
            .buffer
            .as_ref()
            .filter(|b| b.kind == kind)
            .map(|b| b.bytes.clone()),
    }
}

/// Registers the buffer hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let Some(bytes) = BufferType::from_i32(kind).and_then(|k| buffer_bytes(c.data(), k))
            else {
                return Ok(code(Status::NotFound));
            };
            // 64-bit arithmetic: the SDK asks for max = u32::MAX, which must clamp, not fail.
            let start = (start as u32 as usize).min(bytes.len());
            let end = start.saturating_add(max as u32 as usize).min(bytes.len());
            copy_out(&mut c, &bytes.slice(start..end), ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| -> i32 {
            let data = match read(&mut c, ptr, len) {
                Ok(data) => data,
                Err(s) => return code(s),
            };
            let Some(kind) = BufferType::from_i32(kind) else {
                return ok();
            };
            // Configurations are read-only; a missing body is a no-op (the SDK accepts only OK).
            let Some(buffer) = c.data_mut().buffer.as_mut().filter(|b| b.kind == kind) else {
                return ok();
            };
            let start = (start as u32 as usize).min(buffer.bytes.len());
            let end = start
                .saturating_add(size as u32 as usize)
                .min(buffer.bytes.len());
            let mut bytes = Vec::from(std::mem::take(&mut buffer.bytes));
            bytes.splice(start..end, data);
            buffer.bytes = bytes.into();
            buffer.changed = true;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: C<'_>, kind: i32, ret_len: i32, ret_flags: i32| -> i32 {
            let Some(len) = BufferType::from_i32(kind)
                .and_then(|k| buffer_bytes(c.data(), k))
                .map(|b| b.len())
            else {
                return code(Status::NotFound);
            };
            // Bodies are handed over complete, so the end-of-stream flag is always set.
            status(
                memory::write_u32(&mut c, ret_len, len as u32)
                    .and_then(|()| memory::write_u32(&mut c, ret_flags, 1)),
            )
        },
    )?;
    Ok(())
}
