//! Guardrails: a per-instance memory limit (a `ResourceLimiter` that remembers it refused a
//! growth, so the fault is counted as `memory`, not `trap`), and per-callback CPU deadlines: the
//! epoch ticker measures wall time (`Store::set_epoch_deadline` before each guest call), and
//! [`CpuDeadline`] decides, when that passes, whether the guest really used the CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{EngineWeak, ResourceLimiter, UpdateDeadline};

/// How often the epoch advances: the unit (and resolution) of callback deadlines. Each tick
/// wakes a thread, which on a saturated machine preempts a worker: at 1 ms the ticker took
/// 2.7 % of the sidecar's CPU samples under load (1.6 µs per request at 8k req/s), at 10 ms a
/// tenth of that, and deadlines (100 ms by default) are rounded up to it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

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

/// Epoch ticks for a deadline, rounded up (at least one).
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()).max(1) as u64
}

/// A callback's deadline is CPU time, but epochs count wall time: on a machine busy elsewhere a
/// callback can be descheduled past its deadline without running (the stress test saw plugins
/// faulted at 800 concurrent users on two cores). So the first time the wall-clock deadline
/// passes, the thread's CPU clock is read and the guest goes on; it is stopped once it has used
/// a whole deadline of CPU after that (checked every quarter deadline of wall time). A guest
/// that spins is stopped after one to two deadlines of CPU; a slow machine stops no one. The
/// clock is read only past a deadline, never on the hot path.
#[derive(Debug, Default)]
pub(crate) struct CpuDeadline {
    ticks: u64,
    cpu_at_expiry: Option<Duration>,
}

impl CpuDeadline {
    /// Arms the deadline for one guest call; the ticks to give `Store::set_epoch_deadline`.
    pub(crate) fn arm(&mut self, ticks: u64) -> u64 {
        self.ticks = ticks;
        self.cpu_at_expiry = None;
        ticks
    }

    /// The epoch deadline passed: stop the guest, or give it more ticks.
    pub(crate) fn expired(&mut self) -> UpdateDeadline {
        let now = thread_cpu_time();
        let check_again = UpdateDeadline::Continue((self.ticks / 4).max(1));
        match self.cpu_at_expiry {
            None => {
                self.cpu_at_expiry = Some(now);
                check_again
            }
            Some(at) if now.saturating_sub(at) >= EPOCH_TICK * self.ticks as u32 => {
                UpdateDeadline::Interrupt
            }
            Some(_) => check_again,
        }
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn stopped(deadline: &mut CpuDeadline) -> bool {
        matches!(deadline.expired(), UpdateDeadline::Interrupt)
    }

    #[test]
    fn waiting_is_not_spinning() {
        let mut deadline = CpuDeadline::default();
        deadline.arm(deadline_ticks(Duration::from_millis(20)));
        for _ in 0..5 {
            // Descheduled: wall time passes, the thread's CPU clock hardly moves.
            std::thread::sleep(Duration::from_millis(25));
            assert!(!stopped(&mut deadline));
        }
    }

    #[test]
    fn spinning_is_stopped_after_a_deadline_of_cpu() {
        let mut deadline = CpuDeadline::default();
        deadline.arm(deadline_ticks(Duration::from_millis(20)));
        assert!(
            !stopped(&mut deadline),
            "the first expiry only reads the clock"
        );
        let started = Instant::now();
        let spin_until = thread_cpu_time() + Duration::from_millis(20);
        while thread_cpu_time() < spin_until {
            std::hint::black_box(0u64);
        }
        assert!(
            stopped(&mut deadline),
            "{:?} of wall time",
            started.elapsed()
        );
        // A new call starts afresh.
        deadline.arm(deadline_ticks(Duration::from_millis(20)));
        assert!(!stopped(&mut deadline));
    }

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        assert_eq!(deadline_ticks(Duration::from_millis(100)), 10);
        assert_eq!(deadline_ticks(Duration::from_millis(15)), 2);
        assert_eq!(deadline_ticks(Duration::from_millis(1)), 1);
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
    }
}
