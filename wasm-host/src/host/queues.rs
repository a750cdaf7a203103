//! Shared-queue hostcalls over the process-wide [`crate::queues::QueueRegistry`]:
//! register (the caller becomes the owner `on_queue_ready` goes to), resolve by VM id and name,
//! enqueue (bounded: a full queue drops the item, counted, and still answers OK) and dequeue
//! (`Empty` when there is nothing, which the Rust SDK reads as `None`).

use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::memory::{self, HostResult, copy_out, read, read_str};
use crate::queues::Owner;
use crate::state::HostState;

/// Registers the four queue hostcalls.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: C<'_>, nptr: i32, nlen: i32, ret: i32| -> i32 {
            let name = match read_str(&mut c, nptr, nlen) {
                Ok(name) => name,
                Err(s) => return code(s),
            };
            let state = c.data();
            let Some(owner) = state.owner.clone() else {
                return code(Status::InternalFailure);
            };
            let plugin = &state.plugin;
            let (id, changed) = plugin.queues.register(
                plugin.config.vm_id(),
                &name,
                Owner {
                    plugin: owner.plugin,
                    slot: owner.slot,
                    generation: owner.generation,
                },
                plugin.config.queue_capacity,
                plugin.queue_drops.clone(),
            );
            if let Err(s) = memory::write_u32(&mut c, ret, id) {
                return code(s);
            }
            if changed {
                c.data_mut().registered_queues.push(id);
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vptr: i32, vlen: i32, nptr: i32, nlen: i32, ret: i32| -> i32 {
            let (vm_id, name) = match read_str(&mut c, vptr, vlen)
                .and_then(|v| Ok((v, read_str(&mut c, nptr, nlen)?)))
            {
                Ok(vn) => vn,
                Err(s) => return code(s),
            };
            match c.data().plugin.queues.resolve(&vm_id, &name) {
                Some(id) => match memory::write_u32(&mut c, ret, id) {
                    Ok(()) => ok(),
                    Err(s) => code(s),
                },
                None => code(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: C<'_>, id: i32, ptr: i32, len: i32| -> i32 {
            let item = match read(&mut c, ptr, len) {
                Ok(item) => item,
                Err(s) => return code(s),
            };
            let Some(queue) = c.data().plugin.queues.get(id as u32) else {
                return code(Status::NotFound);
            };
            if !queue.enqueue(item) {
                tracing::debug!(plugin = %c.data().plugin.config.name, queue = id, "shared queue full; item dropped");
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ret_ptr: i32, ret_len: i32| -> HostResult {
            let Some(queue) = c.data().plugin.queues.get(id as u32) else {
                return Ok(code(Status::NotFound));
            };
            match queue.dequeue() {
                Some(item) => copy_out(&mut c, &item, ret_ptr, ret_len),
                None => Ok(code(Status::Empty)),
            }
        },
    )?;
    Ok(())
}
