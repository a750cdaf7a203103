//! Time hostcalls: the wall clock (`proxy_get_current_time_nanoseconds`) and the root context's
//! tick timer (`proxy_set_tick_period_milliseconds`), whose period the instance reads back to
//! drive `proxy_on_tick`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::Linker;

use super::{C, ok};
use crate::memory::{self, status};
use crate::state::HostState;

/// Registers the clock and the tick timer.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
