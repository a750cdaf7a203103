//! Coarse deadlines, for timeouts that only need to fire within a tick of when they are due: the
//! slowloris guard on request heads and the sidecar's upstream response-header timeout.
//!
//! Why not tokio's timer: a proxy arms and cancels these on every request and they almost never
//! fire. With tokio's, each request paid two timer registrations and removals under the time
//! driver's lock and three clock reads, about 0.15 µs of the sidecar's ~3.3 µs of user-space CPU
//! per request (perf, see docs/benchmarks/sidecar.md). Here a ticker task reads the clock once
//! per tick for everyone, and arming a deadline is an atomic store into a recycled slot: no lock,
//! no allocation, no clock read.
//!
//! A [`Deadlines`] wheel belongs to the runtime that started it. A [`Deadline`] leases one of its
//! slots until dropped. A deadline is early or late by at most one tick (`resolution`, see
//! [`Deadlines::resolution_for`]).

use std::{
    future::poll_fn,
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::task::AtomicWaker;

/// `due` of a slot nobody is waiting on.
const DISARMED: u64 = u64::MAX;

/// A runtime's coarse clock and the deadlines it watches. Cloning shares it.
#[derive(Clone, Debug)]
pub struct Deadlines(Arc<Wheel>);

#[derive(Debug)]
struct Wheel {
    origin: Instant,
    /// Nanoseconds from `origin` as of the last tick.
    now: AtomicU64,
    /// Every slot, for the ticker to scan; a slot only this list holds is dropped.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Slots ready to lease again.
    free: Mutex<Vec<Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    /// Nanoseconds from the wheel's origin, or [`DISARMED`].
    due: AtomicU64,
    waker: AtomicWaker,
}

impl Deadlines {
    /// Starts a wheel whose ticker runs every `resolution` on the current tokio runtime, until
    /// the last clone of the wheel is dropped.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(resolution: Duration) -> Self {
        let wheel = Arc::new(Wheel {
            origin: Instant::now(),
            now: AtomicU64::new(0),
            slots: Mutex::new(Vec::new()),
            free: Mutex::new(Vec::new()),
        });
        tokio::spawn(tick(Arc::downgrade(&wheel), resolution));
        Self(wheel)
    }

    /// A tick fine enough for timeouts of `shortest` and up: a sixteenth of it, between 1 ms and
    /// 100 ms (ten wake-ups a second for the default timeouts of seconds).
    pub fn resolution_for(shortest: Duration) -> Duration {
        (shortest / 16).clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// A disarmed deadline.
    pub fn lease(&self) -> Deadline {
        let recycled = self
            .0
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let slot = recycled.unwrap_or_else(|| {
            let slot = Arc::new(Slot {
                due: AtomicU64::new(DISARMED),
                waker: AtomicWaker::new(),
            });
            self.0
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&slot));
            slot
        });
        Deadline {
            slot,
            wheel: Arc::clone(&self.0),
        }
    }
}

/// One leased slot of a [`Deadlines`] wheel. Dropping it gives the slot back.
#[derive(Debug)]
pub struct Deadline {
    slot: Arc<Slot>,
    wheel: Arc<Wheel>,
}

impl Deadline {
    /// Makes the deadline due `after` from the wheel's clock (as of its last tick, so early by
    /// up to a tick).
    pub fn arm_after(&self, after: Duration) {
        let now = self.wheel.now.load(Ordering::Acquire);
        let due = now.saturating_add(nanos(after)).min(DISARMED - 1);
        self.slot.due.store(due, Ordering::Release);
    }

    /// Makes the deadline never due.
    pub fn disarm(&self) {
        self.slot.due.store(DISARMED, Ordering::Release);
    }

    /// Ready once the deadline is armed and the wheel's clock has passed it; until then, the
    /// ticker wakes `cx` when it does.
    pub fn poll_due(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_due() {
            return Poll::Ready(());
        }
        // Registered before the second look, so a tick between the two is not missed.
        self.slot.waker.register(cx.waker());
        if self.is_due() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Has the ticker wake `waker` whenever the deadline is due, until another is registered:
    /// for a task that checks [`Deadline::is_due`] on every poll and keeps its waker.
    pub fn register(&self, waker: &std::task::Waker) {
        self.slot.waker.register(waker);
    }

    /// Completes when [`Deadline::poll_due`] would be ready.
    pub async fn due(&self) {
        poll_fn(|cx| self.poll_due(cx)).await;
    }

    /// Whether the deadline is armed and the wheel's clock has passed it.
    pub fn is_due(&self) -> bool {
        self.slot.due.load(Ordering::Acquire) <= self.wheel.now.load(Ordering::Acquire)
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.disarm();
        // Held by the scan list and us alone: nobody can still arm it, so it can be leased again.
        // Otherwise the ticker drops it once the last other holder has.
        if Arc::strong_count(&self.slot) == 2 {
            self.wheel
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&self.slot));
        }
    }
}

/// `duration` in the wheel's units, short of [`DISARMED`].
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).map_or(DISARMED - 1, |n| n.min(DISARMED - 1))
}

/// Advances the clock every `resolution` and wakes every slot that is due.
async fn tick(wheel: Weak<Wheel>, resolution: Duration) {
    let mut interval = tokio::time::interval(resolution);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut due = Vec::new();
    loop {
        interval.tick().await;
        let Some(wheel) = wheel.upgrade() else { return };
        let now = nanos(wheel.origin.elapsed());
        wheel.now.store(now, Ordering::Release);
        {
            let mut slots = wheel.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.retain(|slot| Arc::strong_count(slot) > 1);
            due.extend(
                slots
                    .iter()
                    .filter(|slot| slot.due.load(Ordering::Acquire) <= now)
                    .cloned(),
            );
        }
        // Woken outside the lock: a woken task may lease or drop a deadline at once.
        for slot in due.drain(..) {
            slot.waker.wake();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(5);

    fn armed(deadlines: &Deadlines, after: Duration) -> Deadline {
        let deadline = deadlines.lease();
        deadline.arm_after(after);
        deadline
    }

    fn clock(deadlines: &Deadlines) -> Instant {
        deadlines.0.origin + Duration::from_nanos(deadlines.0.now.load(Ordering::Acquire))
    }

    #[tokio::test]
    async fn an_armed_deadline_fires_within_a_tick() {
        let deadlines = Deadlines::start(TICK);
        let started = Instant::now();
        armed(&deadlines, Duration::from_millis(50)).due().await;
        let waited = started.elapsed();
        // Armed from the coarse clock, which lags by up to a tick: early by at most a tick.
        assert!(waited >= Duration::from_millis(50) - TICK, "{waited:?}");
    }

    #[tokio::test]
    async fn a_disarmed_deadline_never_fires() {
        let deadlines = Deadlines::start(TICK);
        let deadline = armed(&deadlines, Duration::from_millis(10));
        deadline.disarm();
        let fired = tokio::time::timeout(Duration::from_millis(100), deadline.due()).await;
        assert!(fired.is_err(), "a disarmed deadline fired");
    }

    #[tokio::test]
    async fn rearming_moves_the_deadline() {
        let deadlines = Deadlines::start(TICK);
        let deadline = armed(&deadlines, Duration::from_secs(3600));
        deadline.arm_after(Duration::from_millis(20));
        tokio::time::timeout(Duration::from_secs(5), deadline.due())
            .await
            .expect("the moved deadline fired");
    }

    #[tokio::test]
    async fn slots_are_recycled_and_dropped_when_unused() {
        let deadlines = Deadlines::start(TICK);
        for _ in 0..100 {
            let deadline = armed(&deadlines, Duration::from_secs(1));
            drop(deadline);
        }
        assert_eq!(
            deadlines.0.slots.lock().unwrap().len(),
            1,
            "one slot, reused"
        );
        let held: Vec<_> = (0..3).map(|_| deadlines.lease()).collect();
        assert_eq!(deadlines.0.slots.lock().unwrap().len(), 3);
        drop(held);
        assert_eq!(deadlines.0.free.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_clock_follows_real_time() {
        let deadlines = Deadlines::start(TICK);
        let before = clock(&deadlines);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(clock(&deadlines) > before, "the clock did not move");
        // A tick behind on an idle machine; the bound leaves room for a loaded one.
        let lag = Instant::now() - clock(&deadlines);
        assert!(lag < Duration::from_millis(500), "{lag:?}");
    }
}
