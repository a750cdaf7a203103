//! The guest's exports the host calls, looked up once per instance: which callbacks exist
//! decides which phases the host prepares at all.

use std::sync::Arc;

use wasmtime::{Instance, Store, TypedFunc, WasmParams, WasmResults};

use super::{CallResponseFn, Fn2, Fn3};
use crate::metrics::host::Callback;
use crate::state::HostState;

/// The callbacks the host calls, when exported.
pub(super) struct Exports {
    pub(super) context_create: Option<Fn2<()>>,
    pub(super) request_headers: Option<Fn3>,
    pub(super) request_body: Option<Fn3>,
    pub(super) request_trailers: Option<Fn2<i32>>,
    pub(super) response_headers: Option<Fn3>,
    pub(super) response_body: Option<Fn3>,
    pub(super) response_trailers: Option<Fn2<i32>>,
    pub(super) log: Option<TypedFunc<i32, ()>>,
    pub(super) done: Option<TypedFunc<i32, i32>>,
    pub(super) delete: Option<TypedFunc<i32, ()>>,
    pub(super) tick: Option<TypedFunc<i32, ()>>,
    pub(super) http_call_response: Option<CallResponseFn>,
    pub(super) queue_ready: Option<Fn2<()>>,
    pub(super) grpc_receive: Option<Fn3<()>>,
    pub(super) grpc_close: Option<Fn3<()>>,
    pub(super) grpc_initial_metadata: Option<Fn3<()>>,
    pub(super) grpc_trailing_metadata: Option<Fn3<()>>,
}

pub(super) fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> wasmtime::Result<Option<TypedFunc<P, R>>> {
    match instance.get_func(&mut *store, name) {
        Some(func) => Ok(Some(func.typed(&*store).map_err(|e| {
            e.context(format!("export {name} has the wrong signature"))
        })?)),
        None => Ok(None),
    }
}

impl Exports {
    /// Looks up every callback (and the memory and allocator, into the host state).
    pub(super) fn lookup(
        instance: &Instance,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Exports> {
        let memory = instance.get_memory(&mut *store, "memory");
        let alloc = match typed::<i32, i32>(instance, store, "malloc")? {
            Some(f) => Some(f),
            None => typed::<i32, i32>(instance, store, "proxy_on_memory_allocate")?,
        };
        let state = store.data_mut();
        state.memory = memory;
        state.alloc = alloc.map(Arc::new);
        Ok(Exports {
            context_create: typed(instance, store, "proxy_on_context_create")?,
            request_headers: typed(instance, store, "proxy_on_request_headers")?,
            request_body: typed(instance, store, "proxy_on_request_body")?,
            request_trailers: typed(instance, store, "proxy_on_request_trailers")?,
            response_headers: typed(instance, store, "proxy_on_response_headers")?,
            response_body: typed(instance, store, "proxy_on_response_body")?,
            response_trailers: typed(instance, store, "proxy_on_response_trailers")?,
            log: typed(instance, store, "proxy_on_log")?,
            done: typed(instance, store, "proxy_on_done")?,
            delete: typed(instance, store, "proxy_on_delete")?,
            tick: typed(instance, store, "proxy_on_tick")?,
            http_call_response: typed(instance, store, "proxy_on_http_call_response")?,
            queue_ready: typed(instance, store, "proxy_on_queue_ready")?,
            grpc_receive: typed(instance, store, "proxy_on_grpc_receive")?,
            grpc_close: typed(instance, store, "proxy_on_grpc_close")?,
            grpc_initial_metadata: typed(
                instance,
                store,
                "proxy_on_grpc_receive_initial_metadata",
            )?,
            grpc_trailing_metadata: typed(
                instance,
                store,
                "proxy_on_grpc_receive_trailing_metadata",
            )?,
        })
    }

    /// Whether the guest exports `callback` (what it does not export, the host need not prepare).
    pub(super) fn has(&self, callback: Callback) -> bool {
        let e = self;
        match callback {
            Callback::ContextCreate => e.context_create.is_some(),
            Callback::RequestHeaders => e.request_headers.is_some(),
            Callback::RequestBody => e.request_body.is_some(),
            Callback::RequestTrailers => e.request_trailers.is_some(),
            Callback::ResponseHeaders => e.response_headers.is_some(),
            Callback::ResponseBody => e.response_body.is_some(),
            Callback::ResponseTrailers => e.response_trailers.is_some(),
            Callback::Log => e.log.is_some(),
            Callback::Done => e.done.is_some(),
            Callback::Delete => e.delete.is_some(),
            Callback::Tick => e.tick.is_some(),
            Callback::HttpCallResponse => e.http_call_response.is_some(),
            Callback::QueueReady => e.queue_ready.is_some(),
            Callback::GrpcReceive => e.grpc_receive.is_some(),
            Callback::GrpcClose => e.grpc_close.is_some(),
            Callback::GrpcInitialMetadata => e.grpc_initial_metadata.is_some(),
            Callback::GrpcTrailingMetadata => e.grpc_trailing_metadata.is_some(),
            Callback::Initialize | Callback::VmStart | Callback::Configure => true,
        }
    }
}
