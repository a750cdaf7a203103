//! A loaded plugin: its compiled module (as an `InstancePre`, compiled once) and a pool of warm
//! instances. A request takes one slot for all its callbacks (its context id lives in that
//! instance). Slot locks are `std::sync::Mutex`es held only during synchronous guest calls,
//! never across an `.await`.
//!
//! A fault discards the slot's instance (never calling it again), counts the fault, logs the
//! plugin's last CRITICAL line, and schedules a replacement with exponential backoff; requests
//! meanwhile pass through without the plugin (fail-open). Tick timers run as tokio tasks per slot.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Engine, InstancePre};

use super::host_metrics::{FaultKind, HostMetrics, PluginHandles};
use super::instance::{Fault, PluginInstance};
use super::state::{HostState, PluginShared};

const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

struct Slot {
    instance: Option<PluginInstance>,
    generation: u64,
    retry_at: Option<Instant>,
    consecutive_faults: u32,
    /// The root context's tick period, if it asked for one.
    tick: Option<Duration>,
    /// Whether a timer task serves this slot's current generation.
    ticking: bool,
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
    slots: Vec<Mutex<Slot>>,
    next: AtomicUsize,
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
                Mutex::new(Slot {
                    instance: None,
                    generation: 0,
                    retry_at: None,
                    consecutive_faults: 0,
                    tick: None,
                    ticking: false,
                })
            })
            .collect();
        let plugin = Arc::new_cyclic(|this| Plugin {
            shared,
            engine: engine.clone(),
            pre,
            handles,
            slots,
            next: AtomicUsize::new(0),
            fingerprint,
            this: this.clone(),
        });
        let canary = PluginInstance::start(
            &plugin.engine,
            &plugin.pre,
            plugin.shared.clone(),
            plugin.handles.clone(),
        )
        .map_err(|fault| {
            let critical = fault
                .last_critical
                .map(|c| format!(" (last critical log: {c})"))
                .unwrap_or_default();
            anyhow::anyhow!("starting the plugin failed: {}{critical}", fault.message)
        })?;
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

    fn lock(&self, index: usize) -> MutexGuard<'_, Slot> {
        // A panic elsewhere while holding a slot must not take the plugin down with it.
        self.slots[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a live instance (a free one if any), starting a replacement if one is due.
    /// `None` when no instance is available: the request goes on without this plugin.
    pub fn begin<R>(
        &self,
        f: impl FnOnce(&mut PluginInstance) -> Result<R, Fault>,
    ) -> Option<(Lease, R)> {
        let n = self.slots.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // A free slot with a live instance (or one due for replacement), else wait for ours.
        let now = Instant::now();
        let mut guard = (0..n)
            .map(|i| (first + i) % n)
            .find_map(|i| {
                let slot = self.slots[i].try_lock().ok()?;
                let usable = slot.instance.is_some() || slot.retry_at.is_none_or(|at| at <= now);
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
                self.discard(slot, fault);
                None
            }
        }
    }

    fn ensure_started(&self, slot: &mut Slot, index: usize) {
        if slot.instance.is_some() || slot.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        match PluginInstance::start(
            &self.engine,
            &self.pre,
            self.shared.clone(),
            self.handles.clone(),
        ) {
            Ok(instance) => {
                slot.instance = Some(instance);
                slot.retry_at = None;
                // A replacement's root context re-arms its tick timer right away.
                self.after_call(slot, index);
                tracing::info!(plugin = %self.shared.config.name, "plugin instance started");
            }
            Err(fault) => self.discard(
                slot,
                Fault {
                    kind: FaultKind::Instantiate,
                    ..fault
                },
            ),
        }
    }

    fn discard(&self, slot: &mut Slot, fault: Fault) {
        self.handles.fault(fault.kind);
        slot.consecutive_faults = slot.consecutive_faults.saturating_add(1);
        let backoff = BACKOFF_BASE
            .saturating_mul(1 << slot.consecutive_faults.min(8))
            .min(BACKOFF_MAX);
        tracing::error!(
            plugin = %self.shared.config.name,
            kind = fault.kind.label(),
            error = %fault.message,
            last_critical = fault.last_critical.as_deref().unwrap_or(""),
            retry_in = ?backoff,
            "plugin instance discarded; requests pass through it unchanged until it is replaced"
        );
        slot.instance = None;
        slot.generation += 1;
        slot.tick = None;
        slot.ticking = false;
        slot.retry_at = Some(Instant::now() + backoff);
    }

    /// Marks a request finished cleanly on `lease`'s slot (resets the crash-loop backoff).
    pub fn healthy(&self, lease: Lease) {
        let mut slot = self.lock(lease.slot);
        if slot.generation == lease.generation {
            slot.consecutive_faults = 0;
        }
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
