//! A loaded plugin: its compiled module (as an `InstancePre`, compiled once) and a pool of warm
//! instances. A request takes one slot for all its callbacks (its context id lives in that
//! instance). Slot locks are `std::sync::Mutex`es held only during synchronous guest calls,
//! never across an `.await`.
//!
//! A fault costs only the callback that faulted: the slot's instance is replaced at once, and a
//! failed start backs off ([`slot`]). Tick timers, HTTP callouts and shared-queue deliveries run
//! as tokio tasks per slot ([`tasks`]). A service plugin (root context only) starts every slot
//! at load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use wasmtime::{Engine, InstancePre};

use super::instance::{Fault, PluginInstance};
use super::metrics::host::{Callback, FaultKind, HostMetrics, PluginHandles};
use super::queues::Owner;
use super::state::{HostState, PluginShared};

mod slot;
mod tasks;

use slot::{Padded, Slot, home_slot};

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
    /// The module exports a response or end-of-request callback (asked once per request).
    needs_end: bool,
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
            .map(|_| Padded(Mutex::new(Slot::empty())))
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
            let needs_end = [
                Callback::ResponseHeaders,
                Callback::ResponseBody,
                Callback::ResponseTrailers,
                Callback::Log,
                Callback::Done,
                Callback::Delete,
            ]
            .iter()
            .any(|c| exports[*c as usize]);
            let plugin = Plugin {
                service: shared.config.is_service(),
                needs_end,
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
        self.needs_end
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

    /// Counts a fault that does not discard the instance (a pause that timed out).
    pub(crate) fn count_fault(&self, kind: FaultKind) {
        self.handles.fault(kind);
    }
}
