//! One warm instance of a plugin: a `Store<HostState>` plus the guest's exports, looked up once.
//! Starting it runs the Proxy-Wasm VM lifecycle (`_initialize` → `proxy_on_context_create(root,
//! 0)` → `proxy_on_vm_start` → `proxy_on_configure`); every later guest call goes through
//! [`PluginInstance::call`], which sets the context, arms the CPU deadline, times the call and
//! turns a failure into a [`Fault`]. After a fault the instance must be discarded: a trapped
//! guest is logically corrupt (the SDK's dispatcher stays borrowed).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Instance, InstancePre, Store, Trap, TypedFunc, WasmParams, WasmResults};

use super::abi::BufferType;
use super::abi::{Action, ROOT_CONTEXT_ID};
use super::callout::CallAnswer;
use super::limits::deadline_ticks;
use super::metrics::host::{Callback, FaultKind, PluginHandles, clock};
use super::queues::Owner;
use super::state::{Buffer, HostState, PluginShared};

mod grpc;

/// Why an instance stopped being usable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub(crate) struct Fault {
    /// The `kind` label of `sidecar_plugin_faults_total`.
    pub kind: FaultKind,
    /// What wasmtime (or the lifecycle) said.
    pub message: String,
    /// The plugin's last CRITICAL log line (the SDK logs panics there).
    pub last_critical: Option<String>,
}

/// The least CPU deadline of the start-up callbacks (`_initialize`, `on_vm_start`,
/// `on_configure`).
const START_DEADLINE: Duration = Duration::from_secs(1);

type Fn2<R> = TypedFunc<(i32, i32), R>;
type Fn3<R = i32> = TypedFunc<(i32, i32, i32), R>;
/// `proxy_on_http_call_response(ctx, token, headers, body, trailers)`.
type CallResponseFn = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The callbacks the host calls, when exported.
struct Exports {
    context_create: Option<Fn2<()>>,
    request_headers: Option<Fn3>,
    request_body: Option<Fn3>,
    request_trailers: Option<Fn2<i32>>,
    response_headers: Option<Fn3>,
    response_body: Option<Fn3>,
    response_trailers: Option<Fn2<i32>>,
    log: Option<TypedFunc<i32, ()>>,
    done: Option<TypedFunc<i32, i32>>,
    delete: Option<TypedFunc<i32, ()>>,
    tick: Option<TypedFunc<i32, ()>>,
    http_call_response: Option<CallResponseFn>,
    queue_ready: Option<Fn2<()>>,
    grpc_receive: Option<Fn3<()>>,
    grpc_close: Option<Fn3<()>>,
    grpc_initial_metadata: Option<Fn3<()>>,
    grpc_trailing_metadata: Option<Fn3<()>>,
}

/// A started instance.
pub(crate) struct PluginInstance {
    store: Store<HostState>,
    /// Shared so a call can borrow an export while `self` is borrowed mutably; cloning a
    /// `TypedFunc` itself is not free (it takes a type-registry reference).
    exports: Arc<Exports>,
    handles: PluginHandles,
    deadline: u64,
    reported_memory: i64,
}

fn typed<P: WasmParams, R: WasmResults>(
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

impl PluginInstance {
    /// Instantiates and starts the VM and root context. Any failure is a `Fault` of kind
    /// `Instantiate` (or the guest's own fault kind if it trapped while starting).
    pub(crate) fn start(
        engine: &Engine,
        pre: &InstancePre<HostState>,
        shared: Arc<PluginShared>,
        handles: PluginHandles,
        owner: Owner,
    ) -> Result<PluginInstance, Fault> {
        let deadline = deadline_ticks(shared.config.deadline());
        // Start-up callbacks (parsing configuration, defining metrics) get at least a second:
        // the deadline is wall-clock, and on a loaded machine a 100 ms one failed whole loads.
        let start_deadline = deadline.max(deadline_ticks(START_DEADLINE));
        let vm_config_len = shared.config.vm_configuration.len() as i32;
        let plugin_config_len = shared.config.configuration.len() as i32;
        let mut store = Store::new(engine, HostState::new(shared, owner));
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|mut store| Ok(store.data_mut().deadline.expired()));
        let ticks = store.data_mut().deadline.arm(start_deadline);
        store.set_epoch_deadline(ticks);
        let fail = |kind, e: wasmtime::Error| Fault {
            kind,
            message: format!("{e:#}"),
            last_critical: None,
        };
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| fail(FaultKind::Instantiate, e))?;
        let exports =
            Self::exports(&instance, &mut store).map_err(|e| fail(FaultKind::Instantiate, e))?;
        let init = typed::<(), ()>(&instance, &mut store, "_initialize")
            .and_then(|f| match f {
                Some(f) => Ok(Some(f)),
                None => typed::<(), ()>(&instance, &mut store, "_start"),
            })
            .map_err(|e| fail(FaultKind::Instantiate, e))?;
        let vm_start = typed::<(i32, i32), i32>(&instance, &mut store, "proxy_on_vm_start")
            .map_err(|e| fail(FaultKind::Instantiate, e))?;
        let configure = typed::<(i32, i32), i32>(&instance, &mut store, "proxy_on_configure")
            .map_err(|e| fail(FaultKind::Instantiate, e))?;
        let mut this = PluginInstance {
            store,
            exports: Arc::new(exports),
            handles,
            deadline: start_deadline,
            reported_memory: 0,
        };
        if let Some(init) = init {
            this.call(Callback::Initialize, 0, &init, ())?;
        }
        let exports = Arc::clone(&this.exports);
        if let Some(create) = exports.context_create.as_ref() {
            this.call(
                Callback::ContextCreate,
                ROOT_CONTEXT_ID,
                create,
                (ROOT_CONTEXT_ID as i32, 0),
            )?;
        }
        let root = ROOT_CONTEXT_ID as i32;
        if let Some(vm_start) = vm_start
            && this.call(
                Callback::VmStart,
                ROOT_CONTEXT_ID,
                &vm_start,
                (root, vm_config_len),
            )? == 0
        {
            return Err(this.refused("proxy_on_vm_start returned false"));
        }
        if let Some(configure) = configure
            && this.call(
                Callback::Configure,
                ROOT_CONTEXT_ID,
                &configure,
                (root, plugin_config_len),
            )? == 0
        {
            return Err(
                this.refused("proxy_on_configure returned false (plugin configuration rejected)")
            );
        }
        this.deadline = deadline;
        Ok(this)
    }

    fn refused(&mut self, message: &str) -> Fault {
        Fault {
            kind: FaultKind::Instantiate,
            message: message.to_owned(),
            last_critical: self.store.data_mut().last_critical.take(),
        }
    }

    fn exports(instance: &Instance, store: &mut Store<HostState>) -> wasmtime::Result<Exports> {
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

    /// Calls `func` for context `ctx` under the CPU deadline; a failure becomes a `Fault`.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: Callback,
        ctx: u32,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, Fault> {
        let state = self.store.data_mut();
        state.current = ctx;
        state.effective = ctx;
        let ticks = state.deadline.arm(self.deadline);
        self.store.set_epoch_deadline(ticks);
        let clock = clock();
        let started = clock.raw();
        let result = func.call(&mut self.store, params);
        let elapsed = clock.delta_as_nanos(started, clock.raw());
        self.handles.callback(callback, elapsed);
        let memory = self.store.data().limiter.memory_bytes as i64;
        if memory != self.reported_memory {
            self.handles.memory_delta(memory - self.reported_memory);
            self.reported_memory = memory;
        }
        result.map_err(|error| {
            let state = self.store.data_mut();
            let kind = if state.limiter.denied {
                FaultKind::Memory
            } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                FaultKind::Deadline
            } else {
                FaultKind::Trap
            };
            Fault {
                kind,
                message: format!("{error:#}"),
                last_critical: state.last_critical.take(),
            }
        })
    }

    /// Whether the guest exports `callback` (what it does not export, the host need not prepare).
    pub(crate) fn exported(&self, callback: Callback) -> bool {
        let e = &self.exports;
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

    /// The host state (request views, buffers).
    pub(crate) fn state(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// A new context id for a request (ids are unique per instance, never reused).
    pub(crate) fn next_context_id(&mut self) -> u32 {
        let state = self.store.data_mut();
        let id = state.next_context_id;
        state.next_context_id = state.next_context_id.wrapping_add(1).max(2);
        id
    }

    /// `proxy_on_context_create(ctx, root)`.
    pub(crate) fn on_context_create(&mut self, ctx: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.context_create.as_ref() {
            Some(f) => self.call(
                Callback::ContextCreate,
                ctx,
                f,
                (ctx as i32, ROOT_CONTEXT_ID as i32),
            ),
            None => Ok(()),
        }
    }

    /// `proxy_on_request_headers` / `proxy_on_response_headers` / the body callbacks.
    pub(crate) fn on_data(
        &mut self,
        callback: Callback,
        ctx: u32,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Action, Fault> {
        let exports = Arc::clone(&self.exports);
        let func = match callback {
            Callback::RequestHeaders => exports.request_headers.as_ref(),
            Callback::RequestBody => exports.request_body.as_ref(),
            Callback::ResponseHeaders => exports.response_headers.as_ref(),
            Callback::ResponseBody => exports.response_body.as_ref(),
            _ => None,
        };
        match func {
            Some(f) => Ok(Action::from_i32(self.call(
                callback,
                ctx,
                f,
                (ctx as i32, size as i32, end_of_stream as i32),
            )?)),
            None => Ok(Action::Continue),
        }
    }

    /// `proxy_on_request_trailers` / `proxy_on_response_trailers`.
    pub(crate) fn on_trailers(
        &mut self,
        callback: Callback,
        ctx: u32,
        count: usize,
    ) -> Result<Action, Fault> {
        let exports = Arc::clone(&self.exports);
        let func = match callback {
            Callback::RequestTrailers => exports.request_trailers.as_ref(),
            Callback::ResponseTrailers => exports.response_trailers.as_ref(),
            _ => None,
        };
        match func {
            Some(f) => Ok(Action::from_i32(self.call(
                callback,
                ctx,
                f,
                (ctx as i32, count as i32),
            )?)),
            None => Ok(Action::Continue),
        }
    }

    /// Envoy's HTTP end of stream: `on_log` → `on_done` → `on_delete`. Returns whether
    /// `on_done` said the context is finished (false: it will call `proxy_done`).
    pub(crate) fn on_log_and_done(&mut self, ctx: u32) -> Result<bool, Fault> {
        let exports = Arc::clone(&self.exports);
        if let Some(f) = exports.log.as_ref() {
            self.call(Callback::Log, ctx, f, ctx as i32)?;
        }
        match exports.done.as_ref() {
            Some(f) => Ok(self.call(Callback::Done, ctx, f, ctx as i32)? != 0),
            None => Ok(true),
        }
    }

    /// `proxy_on_delete`, then forgets the request view.
    pub(crate) fn on_delete(&mut self, ctx: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        let result = match exports.delete.as_ref() {
            Some(f) => self.call(Callback::Delete, ctx, f, ctx as i32),
            None => Ok(()),
        };
        self.store.data_mut().streams.remove(&ctx);
        result
    }

    /// `proxy_on_tick(root)`.
    pub(crate) fn on_tick(&mut self) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.tick.as_ref() {
            Some(f) => self.call(Callback::Tick, ROOT_CONTEXT_ID, f, ROOT_CONTEXT_ID as i32),
            None => Ok(()),
        }
    }

    /// `proxy_on_http_call_response(ctx, token, headers, body, trailers)`, the answer readable
    /// during the call. Skipped when the asking request is gone (Envoy cancels its callouts).
    pub(crate) fn on_http_call_response(
        &mut self,
        ctx: u32,
        token: u32,
        answer: CallAnswer,
        body: bytes::Bytes,
    ) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        let Some(f) = exports.http_call_response.as_ref() else {
            return Ok(());
        };
        if ctx != ROOT_CONTEXT_ID && !self.store.data().streams.contains_key(&ctx) {
            return Ok(());
        }
        let params = (
            ctx as i32,
            token as i32,
            answer.header_count() as i32,
            body.len() as i32,
            answer.trailers.len() as i32,
        );
        let state = self.store.data_mut();
        state.call_answer = Some(answer);
        state.buffer = Some(Buffer {
            kind: BufferType::HttpCallResponseBody,
            bytes: body.into(),
            changed: false,
        });
        let result = self.call(Callback::HttpCallResponse, ctx, f, params);
        let state = self.store.data_mut();
        state.call_answer = None;
        state.buffer = None;
        result
    }

    /// `proxy_on_queue_ready(root, queue)`.
    pub(crate) fn on_queue_ready(&mut self, queue: u32) -> Result<(), Fault> {
        let exports = Arc::clone(&self.exports);
        match exports.queue_ready.as_ref() {
            Some(f) => self.call(
                Callback::QueueReady,
                ROOT_CONTEXT_ID,
                f,
                (ROOT_CONTEXT_ID as i32, queue as i32),
            ),
            None => Ok(()),
        }
    }

    /// The tick period the guest asked for since the last look.
    pub(crate) fn take_tick_period(&mut self) -> Option<Duration> {
        self.store.data_mut().tick_period.take()
    }
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        self.handles.memory_delta(-self.reported_memory);
    }
}
