//! A loaded plugin: its compiled module (as an `InstancePre`, compiled once) and a pool of warm
//! instances. A request takes one slot for all its callbacks (its context id lives in that
//! instance). Slot locks are `std::sync::Mutex`es held only during synchronous guest calls,
//! never across an `.await`.
//!
//! A fault (trap, deadline, memory) costs only the callback that faulted, as Envoy's
//! `FAIL_RELOAD`: the slot's instance is discarded (a trapped guest is corrupt), the fault is
//! counted by kind and logged with the plugin's last CRITICAL line, and a fresh instance is
//! started from the `InstancePre` right away, so the next request runs on it. Contexts of other
//! requests that lived on the discarded instance are gone with it (those requests carry on
//! without the plugin). Backoff applies only when starting an instance fails (instantiate,
//! `on_vm_start` or `on_configure` fails or traps): counted as `instantiate`, logged, retried
//! after 200 ms doubling to 30 s; meanwhile requests pass without that slot's plugin
//! (fail-open). Tick timers, HTTP callouts and shared-queue deliveries run as tokio tasks
//! per slot ([`tasks`]). A service plugin (root context only) starts every slot at load and
//! retries a failed start on its own, since no request will.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Engine, InstancePre};

use super::instance::{Fault, PluginInstance};
use super::metrics::host::{Callback, FaultKind, HostMetrics, PluginHandles};
use super::queues::Owner;
use super::state::{HostState, PluginShared};

mod tasks;

const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct Slot {
    instance: Option<PluginInstance>,
    generation: u64,
    retry_at: Option<Instant>,
    /// Consecutive failures to start an instance (the backoff's exponent).
    start_failures: u32,
    /// The root context's tick period, if it asked for one.
    tick: Option<Duration>,
    /// Whether a timer task serves this slot's current generation.
    ticking: bool,
}

/// A slot on its own cache lines: workers lock their own slots, and must not share a line.
#[repr(align(128))]
struct Padded(Mutex<Slot>);

/// This thread's preferred slot number (modulo the pool size): each proxy worker is one thread,
/// so each worker keeps to its own instance and its lock stays uncontended.
fn home_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: Cell<Option<usize>> = const { Cell::new(None) };
    }
    HOME.with(|home| {
        home.get().unwrap_or_else(|| {
            let index = NEXT.fetch_add(1, Ordering::Relaxed);
            home.set(Some(index));
            index
        })
    })
}

/// Where a request's context lives: slot index and the instance generation it was created on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Slot index.
    pub slot: usize,
    /// Instance generation; a replaced instance no longer knows the context.
    pub generation: u64,
}

/// A plugin ready to serve.
pub struct Plugin {
    shared: Arc<PluginShared>,
    engine: Engine,
    pre: InstancePre<HostState>,
    handles: PluginHandles,
    /// For callouts' counts (not per request: a family lookup per callout is fine).
    metrics: HostMetrics,
    service: bool,
    slots: Vec<Padded>,
    /// Which callbacks the module exports, by `Callback as usize` (the same for every instance).
    exports: [bool; Callback::ALL.len()],
    fingerprint: (usize, u64),
    this: Weak<Plugin>,
    /// Set when a reload removed or replaced the plugin: its timers and queue deliveries stop
    /// now, not when the last worker's copy of the old list lets go of it.
    retired: AtomicBool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Builds the pool and starts slot 0 as a canary: its failure is the load's failure. A
    /// service starts every slot now (its ticks, queues and callouts run without requests).
    pub(super) fn start(
        engine: &Engine,
        pre: InstancePre<HostState>,
        shared: Arc<PluginShared>,
        metrics: &HostMetrics,
        fingerprint: (usize, u64),
    ) -> anyhow::Result<Arc<Plugin>> {
        let handles = PluginHandles::new(metrics, &shared.config.name);
        let count = shared.config.instance_count();
        let slots = (0..count)
            .map(|_| {
                Padded(Mutex::new(Slot {
                    instance: None,
                    generation: 0,
                    retry_at: None,
                    start_failures: 0,
                    tick: None,
                    ticking: false,
                }))
            })
            .collect();
        let mut failure = None;
        // Built cyclic: the canary's `on_configure` may register a queue, whose owner is this.
        let plugin = Arc::new_cyclic(|this: &Weak<Plugin>| {
            let owner = Owner {
                plugin: this.clone(),
                slot: 0,
                generation: 0,
            };
            let canary =
                PluginInstance::start(engine, &pre, shared.clone(), handles.for_slot(0), owner);
            let exports = match &canary {
                Ok(canary) => Callback::ALL.map(|c| canary.exported(c)),
                Err(_) => [false; Callback::ALL.len()],
            };
            let plugin = Plugin {
                service: shared.config.is_service(),
                shared,
                engine: engine.clone(),
                pre,
                handles,
                metrics: metrics.clone(),
                slots,
                exports,
                fingerprint,
                this: this.clone(),
                retired: AtomicBool::new(false),
            };
            match canary {
                Ok(canary) => plugin.lock(0).instance = Some(canary),
                Err(fault) => failure = Some(fault),
            }
            plugin
        });
        if let Some(fault) = failure {
            let critical = fault
                .last_critical
                .map(|c| format!(" (last critical log: {c})"))
                .unwrap_or_default();
            anyhow::bail!("starting the plugin failed: {}{critical}", fault.message);
        }
        {
            let mut slot = plugin.lock(0);
            plugin.after_call(&mut slot, 0);
        }
        if plugin.service {
            for index in 1..plugin.slots.len() {
                let mut slot = plugin.lock(index);
                plugin.ensure_started(&mut slot, index);
            }
        }
        Ok(plugin)
    }

    /// Out of service after a reload: background work stops (requests in flight finish).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    /// Whether this is a service (never attached to requests).
    pub(crate) fn is_service(&self) -> bool {
        self.service
    }

    /// The plugin's configuration.
    pub fn config(&self) -> &super::config::PluginConfig {
        &self.shared.config
    }

    /// The module fingerprint (bytes length and hash).
    pub(crate) fn fingerprint(&self) -> (usize, u64) {
        self.fingerprint
    }

    /// Whether the module exports `callback`.
    pub(crate) fn exports(&self, callback: Callback) -> bool {
        self.exports[callback as usize]
    }

    /// Whether a request's context must live past the request phases: the module exports a
    /// response or end-of-request callback.
    pub(crate) fn needs_end(&self) -> bool {
        [
            Callback::ResponseHeaders,
            Callback::ResponseBody,
            Callback::ResponseTrailers,
            Callback::Log,
            Callback::Done,
            Callback::Delete,
        ]
        .into_iter()
        .any(|c| self.exports(c))
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Slot> {
        // A panic elsewhere while holding a slot must not take the plugin down with it.
        self.slots[index]
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a live instance (a free one if any), starting a replacement if one is due.
    /// `None` when no instance is available: the request goes on without this plugin.
    pub(crate) fn begin<R>(
        &self,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, Fault>,
    ) -> Option<(Lease, R)> {
        let n = self.slots.len();
        let first = home_slot() % n;
        // This worker's slot if free and live (or due for a start), else another free one,
        // else wait for ours.
        let mut guard = (0..n)
            .map(|i| (first + i) % n)
            .find_map(|i| {
                let slot = self.slots[i].0.try_lock().ok()?;
                let usable =
                    slot.instance.is_some() || slot.retry_at.is_none_or(|at| at <= Instant::now());
                usable.then_some((i, slot))
            })
            .unwrap_or_else(|| (first, self.lock(first)));
        let (index, ref mut slot) = guard;
        self.ensure_started(slot, index);
        let lease = Lease {
            slot: index,
            generation: slot.generation,
        };
        self.run(slot, index, f).map(|r| (lease, r))
    }

    /// Runs `f` on the instance holding `lease`'s context; `None` if it has been replaced
    /// (or faults now).
    pub(crate) fn with<R>(
        &self,
        lease: Lease,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, Fault>,
    ) -> Option<R> {
        let mut slot = self.lock(lease.slot);
        if slot.generation != lease.generation {
            return None;
        }
        self.run(&mut slot, lease.slot, f)
    }

    fn run<R>(
        &self,
        slot: &mut Slot,
        index: usize,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, Fault>,
    ) -> Option<R> {
        let instance = slot.instance.as_mut()?;
        match f(instance) {
            Ok(r) => {
                self.after_call(slot, index);
                Some(r)
            }
            Err(fault) => {
                self.replace(slot, index, fault);
                None
            }
        }
    }

    /// Starts an instance in an empty slot unless a failed start's backoff is running.
    fn ensure_started(&self, slot: &mut Slot, index: usize) {
        if slot.instance.is_some() || slot.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let owner = Owner {
            plugin: self.this.clone(),
            slot: index,
            generation: slot.generation,
        };
        match PluginInstance::start(
            &self.engine,
            &self.pre,
            self.shared.clone(),
            self.handles.for_slot(index),
            owner,
        ) {
            Ok(instance) => {
                slot.instance = Some(instance);
                slot.retry_at = None;
                slot.start_failures = 0;
                // A replacement's root context re-arms its tick timer right away.
                self.after_call(slot, index);
            }
            Err(fault) => self.start_failed(slot, index, fault),
        }
    }

    /// A callback faulted: discard the instance and start a fresh one now.
    fn replace(&self, slot: &mut Slot, index: usize, fault: Fault) {
        self.handles.fault(fault.kind);
        tracing::error!(
            plugin = %self.shared.config.name,
            kind = fault.kind.label(),
            error = %fault.message,
            last_critical = fault.last_critical.as_deref().unwrap_or(""),
            "plugin instance faulted; the request goes on without it and the next one runs on a fresh instance"
        );
        slot.instance = None;
        slot.generation += 1;
        slot.tick = None;
        slot.ticking = false;
        slot.retry_at = None;
        self.ensure_started(slot, index);
    }

    /// Starting an instance failed: count it, log it, retry after a backoff.
    fn start_failed(&self, slot: &mut Slot, index: usize, fault: Fault) {
        self.handles.fault(FaultKind::Instantiate);
        slot.start_failures = slot.start_failures.saturating_add(1);
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << (slot.start_failures - 1).min(8))
            .min(BACKOFF_MAX);
        tracing::error!(
            plugin = %self.shared.config.name,
            kind = FaultKind::Instantiate.label(),
            error = %fault.message,
            last_critical = fault.last_critical.as_deref().unwrap_or(""),
            retry_in = ?backoff,
            "starting a plugin instance failed; requests pass without it until a retry succeeds"
        );
        slot.retry_at = Some(Instant::now() + backoff);
        // Nothing else would retry a service: no request ever asks for its instances.
        if self.service
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (plugin, generation) = (self.this.clone(), slot.generation);
            runtime.spawn(async move {
                tokio::time::sleep(backoff).await;
                if let Some(plugin) = plugin.upgrade() {
                    let mut slot = plugin.lock(index);
                    if slot.generation == generation {
                        plugin.ensure_started(&mut slot, index);
                    }
                }
            });
        }
    }

    /// Counts a fault that does not discard the instance (a pause that timed out).
    pub(crate) fn count_fault(&self, kind: FaultKind) {
        self.handles.fault(kind);
    }
}
