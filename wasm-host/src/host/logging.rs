//! Logging hostcalls: `proxy_log` turns a guest's log line into a `tracing` event carrying the
//! plugin's name, and `proxy_get_log_level` tells the guest which level the host keeps. [`log`]
//! is shared with the WASI `fd_write` of [`super::wasi`].

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::{LogLevel, Status};
use crate::memory::{self, read, status};
use crate::state::HostState;

/// Registers `proxy_log` and `proxy_get_log_level`.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
    Ok(())
}

/// A guest log line becomes a `tracing` event with the plugin's name; CRITICAL lines are kept,
/// because the SDK's panic hook logs the panic message there just before trapping.
pub(crate) fn log(state: &mut HostState, level: LogLevel, message: &str) {
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
