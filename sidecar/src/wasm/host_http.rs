//! The HTTP stream's data hostcalls: buffers (configurations and bodies) and header maps.
//! Maps unavailable in the current phase read as empty (`get_header_map_pairs` accepts only OK
//! in the Rust SDK) or `NotFound` (single values); writes to them are no-ops answering OK.

use wasmtime::{Caller, Linker};

use super::abi::{BufferType, MapType, Status};
use super::memory::{self, HostResult, copy_out, read, status};
use super::pairs;
use super::state::HostState;

type C<'a> = Caller<'a, HostState>;

fn ok() -> i32 {
    Status::Ok.into()
}

fn code(s: Status) -> i32 {
    s.into()
}

/// Registers the buffer and header-map hostcalls.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    buffers(linker)?;
    header_maps(linker)
}

fn buffer_bytes(state: &HostState, kind: BufferType) -> Option<&[u8]> {
    let config = &state.plugin.config;
    match kind {
        BufferType::VmConfiguration => Some(config.vm_configuration.as_bytes()),
        BufferType::PluginConfiguration => Some(config.configuration.as_bytes()),
        _ => state
            .buffer
            .as_ref()
            .filter(|b| b.kind == kind)
            .map(|b| b.bytes.as_slice()),
    }
}

fn buffers(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
            let slice = bytes[start..end].to_vec();
            copy_out(&mut c, &slice, ret_ptr, ret_len)
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
            buffer.bytes.splice(start..end, data);
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

fn read_key(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    Ok(String::from_utf8_lossy(&read(c, ptr, len)?).to_ascii_lowercase())
}

fn header_maps(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
