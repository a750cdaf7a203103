//! Metric hostcalls: `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric` and
//! `proxy_get_metric`, thin ABI wrappers over the plugin's [`crate::metrics::MetricStore`],
//! which owns ids, the series cap and Envoy's semantics.

use wasmtime::Linker;

use super::{C, code};
use crate::abi::{MetricType, Status};
use crate::memory::{self, read, status};
use crate::state::HostState;

/// Registers the metric hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
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
