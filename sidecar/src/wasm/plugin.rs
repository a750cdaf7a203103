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
//! (fail-open). Tick timers run as tokio tasks per slot.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Engine, InstancePre};

use super::instance::{Fault, PluginInstance};
use super::metrics::host::{Callback, FaultKind, HostMetrics, PluginHandles};
use super::state::{HostState, PluginShared};

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
pub struct Lease {
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
    slots: Vec<Padded>,
    /// Which callbacks the module exports, by `Callback as usize` (the same for every instance).
    exports: [bool; Callback::ALL.len()],
    fingerprint: (usize, u64),
    this: Weak<Plugin>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Builds the pool and starts slot 0 as a canary: its failure is the load's failure.
    pub(super) fn start(
        engine: &Engine,
        pre: InstancePre<HostState>,
        shared: Arc<PluginShared>,
        metrics: &HostMetrics,
        fingerprint: (usize, u64),
    ) -> anyhow::Result<Arc<Plugin>> {
        let handles = PluginHandles::new(metrics, &shared.config.name);
        let count = match shared.config.instances {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
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
        let canary = PluginInstance::start(engine, &pre, shared.clone(), handles.for_slot(0))
            .map_err(|fault| {
                let critical = fault
                    .last_critical
                    .map(|c| format!(" (last critical log: {c})"))
                    .unwrap_or_default();
                anyhow::anyhow!("starting the plugin failed: {}{critical}", fault.message)
            })?;
        let exports = Callback::ALL.map(|c| canary.exported(c));
        let plugin = Arc::new_cyclic(|this| Plugin {
            shared,
            engine: engine.clone(),
            pre,
            handles,
            slots,
            exports,
            fingerprint,
            this: this.clone(),
        });
        {
            let mut slot = plugin.lock(0);
            slot.instance = Some(canary);
            plugin.after_call(&mut slot, 0);
        }
        Ok(plugin)
    }

    /// The plugin's configuration.
    pub fn config(&self) -> &super::config::PluginConfig {
        &self.shared.config
    }

    /// The module fingerprint (bytes length and hash).
    pub fn fingerprint(&self) -> (usize, u64) {
        self.fingerprint
    }

    /// Whether the module exports `callback`.
    pub fn exports(&self, callback: Callback) -> bool {
        self.exports[callback as usize]
    }

    /// Whether a request's context must live past the request phases: the module exports a
    /// response or end-of-request callback.
    pub fn needs_end(&self) -> bool {
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
    pub fn begin<R>(
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
    pub fn with<R>(
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
        match PluginInstance::start(
            &self.engine,
            &self.pre,
            self.shared.clone(),
            self.handles.for_slot(index),
        ) {
            Ok(instance) => {
                slot.instance = Some(instance);
                slot.retry_at = None;
                slot.start_failures = 0;
                // A replacement's root context re-arms its tick timer right away.
                self.after_call(slot, index);
            }
            Err(fault) => self.start_failed(slot, fault),
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
    fn start_failed(&self, slot: &mut Slot, fault: Fault) {
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
    }

    /// Counts a fault that does not discard the instance (a pause that timed out).
    pub fn count_fault(&self, kind: FaultKind) {
        self.handles.fault(kind);
    }

    fn after_call(&self, slot: &mut Slot, index: usize) {
        let Some(period) = slot
            .instance
            .as_mut()
            .and_then(PluginInstance::take_tick_period)
        else {
            return;
        };
        slot.tick = Some(period).filter(|p| !p.is_zero());
        if slot.tick.is_none() || slot.ticking {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %self.shared.config.name, "tick timer requested outside a tokio runtime; ignored");
            return;
        };
        slot.ticking = true;
        runtime.spawn(tick(self.this.clone(), index, slot.generation));
    }

    /// The current period of slot `index` while it runs `generation`; `None` stops the timer.
    fn tick_period(&self, index: usize, generation: u64) -> Option<Duration> {
        let mut slot = self.lock(index);
        if slot.generation != generation {
            return None;
        }
        if slot.tick.is_none() {
            slot.ticking = false;
        }
        slot.tick
    }

    /// Calls `on_tick` on slot `index` if it still runs `generation`.
    fn tick_once(&self, index: usize, generation: u64) {
        let mut slot = self.lock(index);
        if slot.generation == generation {
            self.run(&mut slot, index, PluginInstance::on_tick);
        }
    }
}

/// A root context's timer: re-armed after each tick with the current period; ends when the
/// period is set to 0, the instance is replaced, or the plugin is unloaded.
async fn tick(plugin: Weak<Plugin>, index: usize, generation: u64) {
    loop {
        let Some(period) = plugin
            .upgrade()
            .and_then(|p| p.tick_period(index, generation))
        else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(plugin) = plugin.upgrade() else {
            return;
        };
        plugin.tick_once(index, generation);
    }
}
