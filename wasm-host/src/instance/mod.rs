//! One warm instance of a plugin: a `Store<HostState>` plus the guest's exports, looked up once.
//! Starting it runs the Proxy-Wasm VM lifecycle (`_initialize` → `proxy_on_context_create(root,
//! 0)` → `proxy_on_vm_start` → `proxy_on_configure`); every later guest call goes through
//! [`PluginInstance::call`], which sets the context, arms the CPU deadline, times the call and
//! turns a failure into a [`Fault`]. After a fault the instance must be discarded: a trapped
//! guest is logically corrupt (the SDK's dispatcher stays borrowed). `exports.rs` finds the
//! callbacks once, `callbacks.rs` wraps each of them, `grpc.rs` delivers gRPC answers.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, InstancePre, Store, Trap, TypedFunc, WasmParams, WasmResults};

use super::abi::ROOT_CONTEXT_ID;
use super::limits::deadline_ticks;
use super::metrics::host::{Callback, FaultKind, PluginHandles, clock};
use super::queues::Owner;
use super::state::{HostState, PluginShared};

mod callbacks;
mod exports;
mod grpc;

use exports::{Exports, typed};

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

/// A started instance.
pub(crate) struct PluginInstance {
    store: Store<HostState>,
    exports: Exports,
    handles: PluginHandles,
    deadline: u64,
    reported_memory: i64,
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
            Exports::lookup(&instance, &mut store).map_err(|e| fail(FaultKind::Instantiate, e))?;
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
            exports,
            handles,
            deadline: start_deadline,
            reported_memory: 0,
        };
        if let Some(init) = init {
            this.call(Callback::Initialize, 0, &init, ())?;
        }
        this.call_export(
            Callback::ContextCreate,
            ROOT_CONTEXT_ID,
            |e| e.context_create.as_ref(),
            (ROOT_CONTEXT_ID as i32, 0),
        )?;
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

    /// Calls `func` for context `ctx` under the CPU deadline; a failure becomes a `Fault`.
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: Callback,
        ctx: u32,
        func: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, Fault> {
        self.split().1.call(callback, ctx, func, params)
    }

    /// Calls the export `select` picks, if the guest has it (`Ok(None)` if not).
    fn call_export<P: WasmParams, R: WasmResults>(
        &mut self,
        callback: Callback,
        ctx: u32,
        select: fn(&Exports) -> Option<&TypedFunc<P, R>>,
        params: P,
    ) -> Result<Option<R>, Fault> {
        let (exports, mut calls) = self.split();
        match select(exports) {
            Some(func) => calls.call(callback, ctx, func, params).map(Some),
            None => Ok(None),
        }
    }

    /// The exports beside what a call needs, borrowed apart (a call borrows an export while the
    /// store is borrowed mutably).
    fn split(&mut self) -> (&Exports, Calls<'_>) {
        (
            &self.exports,
            Calls {
                store: &mut self.store,
                handles: &self.handles,
                deadline: self.deadline,
                reported_memory: &mut self.reported_memory,
            },
        )
    }

    /// Whether the guest exports `callback` (what it does not export, the host need not prepare).
    pub(crate) fn exported(&self, callback: Callback) -> bool {
        self.exports.has(callback)
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
}

impl Drop for PluginInstance {
    fn drop(&mut self) {
        self.handles.memory_delta(-self.reported_memory);
    }
}

/// What one guest call needs of its instance.
struct Calls<'a> {
    store: &'a mut Store<HostState>,
    handles: &'a PluginHandles,
    deadline: u64,
    reported_memory: &'a mut i64,
}

impl Calls<'_> {
    fn call<P: WasmParams, R: WasmResults>(
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
        let result = func.call(&mut *self.store, params);
        let elapsed = clock.delta_as_nanos(started, clock.raw());
        self.handles.callback(callback, elapsed);
        let memory = self.store.data().limiter.memory_bytes as i64;
        if memory != *self.reported_memory {
            self.handles.memory_delta(memory - *self.reported_memory);
            *self.reported_memory = memory;
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
}
