//! Shared-data hostcalls: `proxy_get_shared_data` and `proxy_set_shared_data` over the key-value
//! store every plugin instance shares ([`crate::shared_data`]), with compare-and-swap
//! tokens so concurrent writers notice each other (`CasMismatch`).

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::memory::{self, HostResult, copy_out, read};
use crate::state::HostState;

/// Registers `proxy_get_shared_data` and `proxy_set_shared_data`.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>,
         kptr: i32,
         klen: i32,
         ret_ptr: i32,
         ret_len: i32,
         ret_cas: i32|
         -> HostResult {
            let key = match read(&mut c, kptr, klen) {
                Ok(key) => key,
                Err(s) => return Ok(code(s)),
            };
            let Some((value, cas)) = c.data().plugin.shared_data.get(&key) else {
                return Ok(code(Status::NotFound));
            };
            if let Err(s) = memory::write_u32(&mut c, ret_cas, cas) {
                return Ok(code(s));
            }
            copy_out(&mut c, &value, ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> i32 {
            let (key, value) =
                match read(&mut c, kptr, klen).and_then(|k| Ok((k, read(&mut c, vptr, vlen)?))) {
                    Ok(kv) => kv,
                    Err(s) => return code(s),
                };
            match c.data().plugin.shared_data.set(&key, value, cas as u32) {
                Ok(()) => ok(),
                Err(_) => code(Status::CasMismatch),
            }
        },
    )?;
    Ok(())
}
