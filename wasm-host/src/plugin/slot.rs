//! One slot of a plugin's pool and the life of the instance in it.
//!
//! A fault (trap, deadline, memory) costs only the callback that faulted, as Envoy's
//! `FAIL_RELOAD`: the slot's instance is discarded (a trapped guest is corrupt), the fault is
//! counted by kind and logged with the plugin's last CRITICAL line, and a fresh instance is
//! started from the `InstancePre` right away, so the next request runs on it. Contexts of other
//! requests that lived on the discarded instance are gone with it (those requests carry on
//! without the plugin). Backoff applies only when starting an instance fails (instantiate,
//! `on_vm_start` or `on_configure` fails or traps): counted as `instantiate`, logged, retried
//! after 200 ms doubling to 30 s; meanwhile requests pass without that slot's plugin
//! (fail-open). A service plugin retries a failed start on its own, since no request will.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Plugin;
use crate::instance::{Fault, PluginInstance};
use crate::metrics::host::FaultKind;
use crate::queues::Owner;

const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// One place in the pool: at most one live instance, and the generation that tells a
/// request's context (or a task) whether the instance it knew is still there.
pub(super) struct Slot {
    pub(super) instance: Option<PluginInstance>,
    pub(super) generation: u64,
    /// When a failed start may be tried again.
    pub(super) retry_at: Option<Instant>,
    /// Consecutive failures to start an instance (the backoff's exponent).
    start_failures: u32,
    /// The root context's tick period, if it asked for one.
    pub(super) tick: Option<Duration>,
    /// Whether a timer task serves this slot's current generation.
    pub(super) ticking: bool,
}

impl Slot {
    /// A slot whose instance has not started yet.
    pub(super) fn empty() -> Slot {
        Slot {
            instance: None,
            generation: 0,
            retry_at: None,
            start_failures: 0,
            tick: None,
            ticking: false,
        }
    }
}

/// A slot on its own cache lines: workers lock their own slots, and must not share a line.
#[repr(align(128))]
pub(super) struct Padded(pub(super) Mutex<Slot>);

/// This thread's preferred slot number (modulo the pool size): each proxy worker is one thread,
/// so each worker keeps to its own instance and its lock stays uncontended.
pub(super) fn home_slot() -> usize {
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

impl Plugin {
    /// Starts an instance in an empty slot unless a failed start's backoff is running.
    pub(super) fn ensure_started(&self, slot: &mut Slot, index: usize) {
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
    pub(super) fn replace(&self, slot: &mut Slot, index: usize, fault: Fault) {
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
}
