//! Header-map hostcalls: read, replace, add and remove request/response headers and trailers of
//! the current stream. Maps unavailable in the current phase read as empty
//! (`get_header_map_pairs` accepts only OK in the Rust SDK) or `NotFound` (single values); writes
//! to them are no-ops answering OK. Keys are lower-cased on the way in.

use wasmtime::Linker;

use super::{C, code, ok};
use crate::wasm::abi::{MapType, Status};
use crate::wasm::memory::{self, HostResult, copy_out, read, status};
use crate::wasm::pairs;
use crate::wasm::state::HostState;

fn read_key(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).to_ascii_lowercase())
}

/// Registers the header-map hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, map: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            // The SDK accepts only OK here: an unavailable map is an empty one.
            let bytes = MapType::from_i32(map)
                .and_then(|m| {
                    c.data()
                        .stream()
                        .and_then(|s| s.map(m))
                        .map(|pairs| pairs::serialize(pairs))
                })
                .unwrap_or_default();
            copy_out(&mut c, &bytes, ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, map: i32, ptr: i32, len: i32| -> i32 {
            let bytes = match read(&mut c, ptr, len) {
                Ok(bytes) => bytes,
                Err(s) => return code(s),
            };
            let Some(parsed) = pairs::parse(&bytes) else {
                return code(Status::BadArgument);
            };
            let parsed = parsed
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
                .collect();
            if let Some(target) =
                MapType::from_i32(map).and_then(|m| c.data_mut().stream_mut()?.map_mut(m))
            {
                *target = parsed;
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, map: i32, kptr: i32, klen: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let key = match read_key(&mut c, kptr, klen) {
                Ok(key) => key,
                Err(s) => return Ok(code(s)),
            };
            // NotFound, not BadArgument, when the map is missing in this phase (envoy#26485).
            let value = MapType::from_i32(map)
                .and_then(|m| c.data().stream()?.map(m))
                .and_then(|pairs| {
                    pairs
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| v.clone())
                });
            match value {
                Some(value) => copy_out(&mut c, &value, ret_ptr, ret_len),
                None => Ok(code(Status::NotFound)),
            }
        },
    )?;
    for (name, replace) in [
        ("proxy_add_header_map_value", false),
        ("proxy_replace_header_map_value", true),
    ] {
        linker.func_wrap(
            "env",
            name,
            move |mut c: C<'_>, map: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> i32 {
                let (key, value) = match read_key(&mut c, kptr, klen)
                    .and_then(|k| Ok((k, read(&mut c, vptr, vlen)?)))
                {
                    Ok(kv) => kv,
                    Err(s) => return code(s),
                };
                if let Some(pairs) =
                    MapType::from_i32(map).and_then(|m| c.data_mut().stream_mut()?.map_mut(m))
                {
                    if replace {
                        pairs.retain(|(k, _)| *k != key);
                    }
                    pairs.push((key, value));
                }
                ok()
            },
        )?;
    }
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, map: i32, kptr: i32, klen: i32| -> i32 {
            let key = match read_key(&mut c, kptr, klen) {
                Ok(key) => key,
                Err(s) => return code(s),
            };
            if let Some(pairs) =
                MapType::from_i32(map).and_then(|m| c.data_mut().stream_mut()?.map_mut(m))
            {
                pairs.retain(|(k, _)| *k != key);
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: C<'_>, map: i32, ret: i32| -> i32 {
            let size = MapType::from_i32(map)
                .and_then(|m| c.data().stream()?.map(m))
                .map_or(0, |p| p.len());
            status(memory::write_u32(&mut c, ret, size as u32))
        },
    )?;
    Ok(())
}
