//! The WASI preview1 subset Proxy-Wasm plugins built for `wasm32-wasip1` import (the spec's list):
//! `fd_write` to stdout/stderr becomes an INFO/ERROR log line, `environ_*` see only the plugin's
//! configured `env`, args are empty, clocks and randomness work, `proc_exit` traps. Every other
//! WASI import is linked as a trap by `define_unknown_imports_as_traps`.

use std::hash::{BuildHasher, Hasher};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wasmtime::Linker;

use super::C;
use crate::abi::LogLevel;
use crate::memory::{self, read};
use crate::state::HostState;

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const FAULT: i32 = 21;
const INVAL: i32 = 28;

fn errno(result: Result<(), crate::abi::Status>) -> i32 {
    if result.is_ok() { SUCCESS } else { FAULT }
}

fn environ(state: &HostState) -> Vec<Vec<u8>> {
    state
        .plugin
        .config
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v}\0").into_bytes())
        .collect()
}

/// Registers the subset under both module names WASI SDKs use.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let process_start = Instant::now();
    for module in ["wasi_snapshot_preview1", "wasi_unstable"] {
        linker.func_wrap(
            module,
            "fd_write",
            |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, ret: i32| -> i32 {
                let level = match fd {
                    1 => LogLevel::Info,
                    2 => LogLevel::Error,
                    _ => return BADF,
                };
                let mut text = Vec::new();
                for i in 0..iovs_len.clamp(0, 1024) {
                    let Ok(iov) = read(&mut c, iovs.wrapping_add(i * 8), 8) else {
                        return FAULT;
                    };
                    let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                    let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                    match read(&mut c, ptr, len) {
                        Ok(bytes) => text.extend(bytes),
                        Err(_) => return FAULT,
                    }
                }
                let written = text.len() as u32;
                let message =
                    String::from_utf8_lossy(text.strip_suffix(b"\n").unwrap_or(&text)).into_owned();
                super::log(c.data_mut(), level, &message);
                errno(memory::write_u32(&mut c, ret, written))
            },
        )?;
        linker.func_wrap(
            module,
            "environ_sizes_get",
            |mut c: C<'_>, ret_count: i32, ret_size: i32| -> i32 {
                let env = environ(c.data());
                let size: usize = env.iter().map(Vec::len).sum();
                errno(
                    memory::write_u32(&mut c, ret_count, env.len() as u32)
                        .and_then(|()| memory::write_u32(&mut c, ret_size, size as u32)),
                )
            },
        )?;
        linker.func_wrap(
            module,
            "environ_get",
            |mut c: C<'_>, array: i32, buf: i32| -> i32 {
                let mut at = buf;
                for (i, entry) in environ(c.data()).iter().enumerate() {
                    let written =
                        memory::write_u32(&mut c, array.wrapping_add(4 * i as i32), at as u32)
                            .and_then(|()| memory::write(&mut c, at, entry));
                    if written.is_err() {
                        return FAULT;
                    }
                    at = at.wrapping_add(entry.len() as i32);
                }
                SUCCESS
            },
        )?;
        linker.func_wrap(
            module,
            "args_sizes_get",
            |mut c: C<'_>, ret_count: i32, ret_size: i32| -> i32 {
                errno(
                    memory::write_u32(&mut c, ret_count, 0)
                        .and_then(|()| memory::write_u32(&mut c, ret_size, 0)),
                )
            },
        )?;
        linker.func_wrap(module, "args_get", |_: C<'_>, _: i32, _: i32| -> i32 {
            SUCCESS
        })?;
        linker.func_wrap(
            module,
            "clock_time_get",
            move |mut c: C<'_>, id: i32, _precision: i64, ret: i32| -> i32 {
                let nanos = match id {
                    0 => SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_nanos() as u64,
                    1 => process_start.elapsed().as_nanos() as u64,
                    _ => return INVAL,
                };
                errno(memory::write_u64(&mut c, ret, nanos))
            },
        )?;
        linker.func_wrap(
            module,
            "random_get",
            |mut c: C<'_>, buf: i32, len: i32| -> i32 {
                if !(0..=65536).contains(&len) {
                    return INVAL;
                }
                // SipHash with the process's random keys: fine for a plugin's sampling or ids,
                // not meant for cryptography.
                let state = std::collections::hash_map::RandomState::new();
                let bytes: Vec<u8> = (0..len as u64)
                    .step_by(8)
                    .flat_map(|i| {
                        let mut h = state.build_hasher();
                        h.write_u64(i);
                        h.finish().to_le_bytes()
                    })
                    .take(len as usize)
                    .collect();
                errno(memory::write(&mut c, buf, &bytes))
            },
        )?;
        linker.func_wrap(
            module,
            "proc_exit",
            |_: C<'_>, code: i32| -> wasmtime::Result<()> {
                wasmtime::bail!("plugin called proc_exit({code})")
            },
        )?;
    }
    Ok(())
}
