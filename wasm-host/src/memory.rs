//! Bounds-checked access to a guest's linear memory, and the Proxy-Wasm memory protocol for
//! handing bytes to the guest: allocate exactly `len` bytes with the guest's own allocator
//! (`malloc` or `proxy_on_memory_allocate`), copy, then write `(ptr, len)` to two out-pointers.
//!
//! Every `(ptr, len)` from the guest is checked against the memory's current size; a bad one is
//! `Status::InvalidMemoryAccess`, never a host panic. Ownership of allocated bytes passes to the
//! guest (the Rust SDK frees them with capacity == len, hence "exactly").

use wasmtime::{AsContext, AsContextMut, Caller};

use super::abi::Status;
use super::state::HostState;

/// A hostcall's outcome: a status for the guest, or an error that traps the guest (only when
/// the guest's allocator itself trapped).
pub(crate) type HostResult = wasmtime::Result<i32>;

/// A value on its way to the guest, copied out of the host state because handing it over calls
/// into the guest (its allocator), which needs the store the state lives in. Header values and
/// properties nearly always fit on the stack, so the host allocates nothing for them (three
/// allocations per request for client-slo, counted: `bench/plugin-allocs.sh`).
pub(crate) type Outgoing = smallvec::SmallVec<[u8; 128]>;

fn memory(caller: &mut Caller<'_, HostState>) -> Result<wasmtime::Memory, Status> {
    caller.data().memory.ok_or(Status::InvalidMemoryAccess)
}

fn range(ptr: i32, len: i32, size: usize) -> Result<std::ops::Range<usize>, Status> {
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(Status::InvalidMemoryAccess)?;
    if end > size {
        return Err(Status::InvalidMemoryAccess);
    }
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<Vec<u8>, Status> {
    let memory = memory(caller)?;
    let data = memory.data(caller.as_context());
    Ok(data[range(ptr, len, data.len())?].to_vec())
}

/// Runs `f` with the host state and the `len` bytes at `ptr`, borrowed in place: what a
/// hostcall only reads (a header name, a property path) needs no copy on the heap.
pub(crate) fn with_bytes<R>(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&HostState, &[u8]) -> R,
) -> Result<R, Status> {
    let memory = memory(caller)?;
    let (data, state) = memory.data_and_store_mut(caller);
    let bytes = &data[range(ptr, len, data.len())?];
    Ok(f(state, bytes))
}

/// Copies a guest string (lossy UTF-8 is the caller's choice: names must be valid).
pub(crate) fn read_str(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Result<String, Status> {
    String::from_utf8(read(caller, ptr, len)?).map_err(|_| Status::BadArgument)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    bytes: &[u8],
) -> Result<(), Status> {
    let memory = memory(caller)?;
    let data = memory.data_mut(caller.as_context_mut());
    let range = range(ptr, bytes.len() as i32, data.len())?;
    data[range].copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 (no alignment needed).
pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u32,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64.
pub(crate) fn write_u64(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u64,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Hands `bytes` to the guest: allocates, copies and writes `(ptr, len)` to `ret_ptr`/`ret_len`.
/// Empty bytes are `(0, 0)` without an allocation. Returns the status for the guest; an error
/// only if the guest's allocator trapped (the whole callback then fails as a trap).
pub(crate) fn copy_out(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    // Validate the out-pointers first: a bad one must not leak a guest allocation.
    let size = memory(caller)
        .map(|m| m.data_size(caller.as_context()))
        .unwrap_or(0);
    if range(ret_ptr, 4, size).is_err() || range(ret_len, 4, size).is_err() {
        return Ok(Status::InvalidMemoryAccess.into());
    }
    if bytes.is_empty() {
        return Ok(status(
            write_u32(caller, ret_ptr, 0).and_then(|()| write_u32(caller, ret_len, 0)),
        ));
    }
    let Some(alloc) = caller.data().alloc.clone() else {
        return Ok(Status::InvalidMemoryAccess.into());
    };
    let Ok(len) = i32::try_from(bytes.len()) else {
        return Ok(Status::BadArgument.into());
    };
    let ptr = alloc.call(&mut *caller, len)?;
    if ptr == 0 {
        return Ok(Status::InvalidMemoryAccess.into());
    }
    // Re-fetched inside `write`: the allocation may have grown memory.
    let written = write(caller, ptr, bytes)
        .and_then(|()| write_u32(caller, ret_ptr, ptr as u32))
        .and_then(|()| write_u32(caller, ret_len, len as u32));
    Ok(status(written))
}

/// `Ok(())` → `Status::Ok`, else the error status, as the guest's `i32`.
pub(crate) fn status(result: Result<(), Status>) -> i32 {
    match result {
        Ok(()) => Status::Ok.into(),
        Err(status) => status.into(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::range;

    proptest! {
        // Guest pointers and lengths are any i32 (negative ones are large u32s): a range is
        // given only when it lies inside memory, and then it is exactly what was asked for.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn a_guest_range_is_inside_memory_or_refused(ptr in any::<i32>(), len in any::<i32>(), size in 0..(1usize << 33)) {
            let (start, len) = (ptr as u32 as u64, len as u32 as u64);
            match range(ptr, len as u32 as i32, size) {
                Ok(r) => {
                    prop_assert!(r.end <= size);
                    prop_assert_eq!((r.start as u64, (r.end - r.start) as u64), (start, len));
                }
                Err(_) => prop_assert!(start + len > size as u64),
            }
        }
    }
}
