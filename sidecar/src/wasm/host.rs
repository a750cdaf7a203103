//! `add_to_linker`: every `env.proxy_*` import of the Proxy-Wasm ABI 0.2.1 that the Rust SDK
//! 0.2.5 can ask for (37), plus `proxy_get_buffer_status` and `proxy_get_header_map_size` (C++
//! and Go SDKs), so any SDK-built module instantiates. Calls this host does not support answer
//! with a status the SDK survives (never `Unimplemented`, which makes it panic): callouts
//! `InternalFailure`, lookups `NotFound`, fire-and-forget setters `Ok`.
//!
//! Each hostcall acts on the *effective* context (the running callback's, or the one set with
//! `proxy_set_effective_context`). Hostcalls never re-enter the guest except through its
//! allocator; effects such as local responses are applied by the filter after the callback.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Linker};

use super::abi::{LogLevel, MetricType, ROOT_CONTEXT_ID, Status};
use super::memory::{self, HostResult, copy_out, read, status};
use super::pairs;
use super::properties;
use super::state::{HostState, LocalResponse};

type C<'a> = Caller<'a, HostState>;

fn ok() -> i32 {
    Status::Ok.into()
}

fn code(s: Status) -> i32 {
    s.into()
}

/// Registers every hostcall in `linker` (module `env`), and the WASI subset in [`super::wasi`].
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    logging_and_time(linker)?;
    super::host_http::add_to_linker(linker)?;
    properties_and_shared_data(linker)?;
    stream_control(linker)?;
    metrics(linker)?;
    super::unsupported::add_to_linker(linker)?;
    super::wasi::add_to_linker(linker)?;
    Ok(())
}

fn logging_and_time(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| -> i32 {
            let Some(level) = LogLevel::from_i32(level) else {
                return code(Status::BadArgument);
            };
            let message = match read(&mut c, ptr, len) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(s) => return code(s),
            };
            log(c.data_mut(), level, &message);
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: C<'_>, ret: i32| -> i32 {
            let level = c.data().log_level as u32;
            status(memory::write_u32(&mut c, ret, level))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ret: i32| -> i32 {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            status(memory::write_u64(&mut c, ret, now))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| -> i32 {
            c.data_mut().tick_period = Some(Duration::from_millis(u64::from(period as u32)));
            ok()
        },
    )?;
    Ok(())
}

/// A guest log line becomes a `tracing` event with the plugin's name; CRITICAL lines are kept,
/// because the SDK's panic hook logs the panic message there just before trapping.
pub fn log(state: &mut HostState, level: LogLevel, message: &str) {
    let plugin = state.plugin.config.name.as_str();
    match level {
        LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        LogLevel::Debug => tracing::debug!(plugin, "{message}"),
        LogLevel::Info => tracing::info!(plugin, "{message}"),
        LogLevel::Warn => tracing::warn!(plugin, "{message}"),
        LogLevel::Error => tracing::error!(plugin, "{message}"),
        LogLevel::Critical => {
            tracing::error!(plugin, critical = true, "{message}");
            state.last_critical = Some(message.chars().take(1024).collect());
        }
    }
}

fn properties_and_shared_data(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, ptr: i32, len: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let path = match read(&mut c, ptr, len) {
                Ok(path) => path,
                Err(s) => return Ok(code(s)),
            };
            match properties::get(c.data(), &path) {
                Some(value) => copy_out(&mut c, &value, ret_ptr, ret_len),
                None => Ok(code(Status::NotFound)),
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

fn stream_control(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    // Resuming (or closing, which this fail-open host treats the same way) is recorded and
    // acted on by the filter once the callback returns.
    for name in ["proxy_continue_stream", "proxy_close_stream"] {
        linker.func_wrap("env", name, |mut c: C<'_>, _stream: i32| -> i32 {
            if let Some(stream) = c.data_mut().stream_mut() {
                stream.resumed = true;
            }
            ok()
        })?;
    }
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         status_code: i32,
         _dptr: i32,
         _dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         _grpc: i32|
         -> i32 {
            let (body, headers) =
                match read(&mut c, bptr, blen).and_then(|b| Ok((b, read(&mut c, hptr, hlen)?))) {
                    Ok(bh) => bh,
                    Err(s) => return code(s),
                };
            // A malformed header map is treated as empty (the body and status still apply).
            let headers = pairs::parse(&headers)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (String::from_utf8_lossy(&k).to_ascii_lowercase(), v))
                .collect();
            let status = u16::try_from(status_code)
                .ok()
                .filter(|s| (200..=599).contains(s))
                .unwrap_or(500);
            if let Some(stream) = c.data_mut().stream_mut() {
                stream.local_response = Some(LocalResponse {
                    status,
                    body,
                    headers,
                });
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| -> i32 {
            let id = id as u32;
            let state = c.data_mut();
            if id == ROOT_CONTEXT_ID || state.streams.contains_key(&id) {
                state.effective = id;
                ok()
            } else {
                code(Status::BadArgument)
            }
        },
    )?;
    linker.func_wrap("env", "proxy_done", |mut c: C<'_>| -> i32 {
        match c.data_mut().stream_mut() {
            Some(stream) => {
                stream.done = true;
                ok()
            }
            None => code(Status::NotFound),
        }
    })?;
    Ok(())
}

fn metrics(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, ptr: i32, len: i32, ret: i32| -> i32 {
            let Some(kind) = MetricType::from_i32(kind) else {
                return code(Status::BadArgument);
            };
            let name = match read(&mut c, ptr, len) {
                Ok(name) => String::from_utf8_lossy(&name).into_owned(),
                Err(s) => return code(s),
            };
            let id = c.data().plugin.metrics.define(kind, &name);
            status(memory::write_u32(&mut c, ret, id))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: C<'_>, id: i32, delta: i64| -> i32 {
            code(c.data().plugin.metrics.increment(id as u32, delta))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: C<'_>, id: i32, value: i64| -> i32 {
            code(c.data().plugin.metrics.record(id as u32, value as u64))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, ret: i32| -> i32 {
            match c.data().plugin.metrics.get(id as u32) {
                Ok(value) => status(memory::write_u64(&mut c, ret, value)),
                Err(s) => code(s),
            }
        },
    )?;
    Ok(())
}
