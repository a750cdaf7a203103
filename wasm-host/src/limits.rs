//! Guardrails: a per-instance memory limit (a `ResourceLimiter` that remembers it refused a
//! growth, so the fault is counted as `memory`, not `trap`), and the epoch ticker that makes
//! per-callback CPU deadlines work (`Store::set_epoch_deadline` before each guest call).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{EngineWeak, ResourceLimiter};

/// How often the epoch advances: the unit of callback deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Memory and table limits of one instance.
#[derive(Debug)]
pub(crate) struct Limiter {
    max_memory: usize,
    /// Set when a growth past the limit was refused (the guest then traps).
    pub denied: bool,
    /// Current linear memory size in bytes.
    pub memory_bytes: usize,
}

impl Limiter {
    /// A limiter allowing `max_memory` bytes of linear memory.
    pub(crate) fn new(max_memory: usize) -> Limiter {
        Limiter {
            max_memory,
            denied: false,
            memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.denied = true;
            // An error (not `Ok(false)`) traps right away instead of letting the guest's
            // allocator limp on with `memory.grow == -1`.
            wasmtime::bail!(
                "plugin memory limit of {} bytes reached (wanted {desired})",
                self.max_memory
            );
        }
        self.memory_bytes = desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A thread advancing the engine's epoch every [`EPOCH_TICK`]; stops when dropped (or when the
/// engine is gone: it holds only a weak reference).
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub(crate) fn start(engine: EngineWeak) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Epoch ticks for a deadline (at least one).
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64
}
