//! Property hostcalls: `proxy_get_property` reads a path through [`crate::properties`]
//! (request, plugin and route attributes), `proxy_set_property` stores a value on the current
//! stream, where later reads of the same path find it.

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::memory::{HostResult, copy_out, read, with_bytes};
use crate::properties;
use crate::state::HostState;

/// Registers `proxy_get_property` and `proxy_set_property`.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, ptr: i32, len: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            // The path is read in place; only the value is copied (to the guest, below).
            match with_bytes(&mut c, ptr, len, properties::get) {
                Ok(Some(value)) => copy_out(&mut c, &value, ret_ptr, ret_len),
                Ok(None) => Ok(code(Status::NotFound)),
                Err(s) => Ok(code(s)),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, ptr: i32, len: i32, vptr: i32, vlen: i32| -> i32 {
            let (path, value) =
                match read(&mut c, ptr, len).and_then(|p| Ok((p, read(&mut c, vptr, vlen)?))) {
                    Ok(pv) => pv,
                    Err(s) => return code(s),
                };
            if let Some(stream) = c.data_mut().stream_mut() {
                stream.properties.insert(path, value);
            }
            ok()
        },
    )?;
    Ok(())
}
