//! Header-map hostcalls: read, replace, add and remove request/response headers and trailers of
//! the current stream, and the headers and trailers of a callout's answer (read-only). Maps unavailable in the current phase read as empty
//! (`get_header_map_pairs` accepts only OK in the Rust SDK) or `NotFound` (single values); writes
//! to them are no-ops answering OK. Keys are lower-cased on the way in. Reads serialise straight
//! from the request's own `HeaderMap` (pseudo-headers made on the spot); writes go to the
//! stream's copy, made on the first write. Writes to pseudo-headers and invalid names or values
//! are ignored (the sidecar could not forward them).

use http::{HeaderMap, HeaderName, HeaderValue};
use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::{MapType, Status};
use crate::memory::{self, HostResult, Outgoing, copy_out, read, status};
use crate::pairs;
use crate::state::HostState;

fn read_key(c: &mut C<'_>, ptr: i32, len: i32) -> Result<String, Status> {
    memory::with_bytes(c, ptr, len, |_, bytes| lowercased(bytes, str::to_owned))
}

/// Runs `f` with the host state and the key at `ptr` lower-cased (a header read is the commonest
/// hostcall: its name is not copied to the heap).
fn with_key<R>(
    c: &mut C<'_>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&HostState, &str) -> R,
) -> Result<R, Status> {
    memory::with_bytes(c, ptr, len, |state, bytes| {
        lowercased(bytes, |key| f(state, key))
    })
}

/// `bytes` lower-cased (lossy UTF-8), on the stack when short and valid UTF-8.
fn lowercased<R>(bytes: &[u8], f: impl FnOnce(&str) -> R) -> R {
    let mut short = [0u8; 64];
    if let Some(key) = short.get_mut(..bytes.len()) {
        key.copy_from_slice(bytes);
        key.make_ascii_lowercase();
        if let Ok(key) = std::str::from_utf8(key) {
            return f(key);
        }
    }
    f(&String::from_utf8_lossy(bytes).to_ascii_lowercase())
}

/// A guest's header, if the sidecar can carry it.
fn header(name: &[u8], value: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        (Ok(name), Ok(value)) if !name.as_str().starts_with(':') => Some((name, value)),
        _ => {
            tracing::debug!(header = %String::from_utf8_lossy(name), "plugin set a header the sidecar cannot carry; ignored");
            None
        }
    }
}

/// The map `map` of the effective stream, for writing.
fn target<'a>(c: &'a mut C<'_>, map: i32) -> Option<&'a mut HeaderMap> {
    c.data_mut().stream_mut()?.map_mut(MapType::from_i32(map)?)
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
                        .with_map(m, |view| pairs::serialize_iter(|| view.pairs()))
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
            if let Some(target) = target(&mut c, map) {
                target.clear();
                for (name, value) in parsed.iter().filter_map(|(k, v)| header(k, v)) {
                    target.append(name, value);
                }
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, map: i32, kptr: i32, klen: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            // NotFound, not BadArgument, when the map is missing in this phase (envoy#26485).
            let value = with_key(&mut c, kptr, klen, |state, key| {
                MapType::from_i32(map).and_then(|m| {
                    state
                        .with_map(m, |view| view.get(key).map(Outgoing::from_slice))
                        .flatten()
                })
            });
            let value = match value {
                Ok(value) => value,
                Err(s) => return Ok(code(s)),
            };
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
                if let Some(target) = target(&mut c, map)
                    && let Some((name, value)) = header(key.as_bytes(), &value)
                {
                    if replace {
                        target.insert(name, value);
                    } else {
                        target.append(name, value);
                    }
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
            if let Some(target) = target(&mut c, map) {
                target.remove(key.as_str());
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: C<'_>, map: i32, ret: i32| -> i32 {
            let size = MapType::from_i32(map)
                .and_then(|m| c.data().with_map(m, |view| view.len()))
                .unwrap_or(0);
            status(memory::write_u32(&mut c, ret, size as u32))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::lowercased;

    fn owned(bytes: &[u8]) -> String {
        lowercased(bytes, str::to_owned)
    }

    #[test]
    fn keys_are_lower_cased_on_the_stack_or_on_the_heap_alike() {
        assert_eq!(owned(b"User-Agent"), "user-agent");
        assert_eq!(owned(b":Path"), ":path");
        assert_eq!(owned(b""), "");
        let long = "X-".repeat(40);
        assert_eq!(
            owned(long.as_bytes()),
            "x-".repeat(40),
            "past the stack buffer"
        );
        let edge = "A".repeat(64);
        assert_eq!(owned(edge.as_bytes()), "a".repeat(64));
        assert_eq!(
            owned(b"X-\xff"),
            "x-\u{fffd}",
            "invalid UTF-8 reads lossily"
        );
    }
}
