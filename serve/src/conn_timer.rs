//! hyper's timer for one connection, on a [`Deadlines`] wheel.
//!
//! hyper's HTTP/1 server arms its header-read timeout each time it starts reading a request head
//! and drops it once the head is in: one sleep per request. Each connection leases one slot for
//! its lifetime and every such sleep reuses it, so a request costs hyper's box for the sleep and
//! an atomic store. hyper's deadlines come from [`Timer::now`], the wheel's coarse clock, so it
//! reads no clock per request either.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use hyper::rt::{Sleep, Timer};

use crate::deadlines::{Deadline, Deadlines};

/// A connection's timer: pass it to hyper's connection builder.
#[derive(Clone, Debug)]
pub struct ConnTimer {
    deadlines: Deadlines,
    own: Arc<Owned>,
}

#[derive(Debug)]
struct Owned {
    deadline: Deadline,
    /// Whether a sleep holds `deadline`; a second sleep at the same time leases its own slot.
    taken: AtomicBool,
}

impl ConnTimer {
    /// A timer leasing one slot of `deadlines` for the connection.
    pub fn new(deadlines: &Deadlines) -> Self {
        Self {
            deadlines: deadlines.clone(),
            own: Arc::new(Owned {
                deadline: deadlines.lease(),
                taken: AtomicBool::new(false),
            }),
        }
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        if self.own.taken.swap(true, Ordering::AcqRel) {
            let leased = self.deadlines.lease();
            leased.arm(deadline);
            return Box::pin(LeasedSleep(leased));
        }
        self.own.deadline.arm(deadline);
        Box::pin(OwnSleep(Arc::clone(&self.own)))
    }

    fn now(&self) -> Instant {
        self.deadlines.now()
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        if let Some(own) = sleep.as_mut().downcast_mut_pin::<OwnSleep>() {
            own.0.deadline.arm(new_deadline);
        } else if let Some(leased) = sleep.as_mut().downcast_mut_pin::<LeasedSleep>() {
            leased.0.arm(new_deadline);
        } else {
            *sleep = self.sleep_until(new_deadline);
        }
    }
}

/// A sleep on the connection's own slot; gives it back when dropped.
struct OwnSleep(Arc<Owned>);

impl Future for OwnSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.deadline.poll_due(cx)
    }
}

impl Sleep for OwnSleep {}

impl Drop for OwnSleep {
    fn drop(&mut self) {
        self.0.deadline.disarm();
        self.0.taken.store(false, Ordering::Release);
    }
}

/// A sleep on a slot of its own, while another holds the connection's.
struct LeasedSleep(Deadline);

impl Future for LeasedSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_due(cx)
    }
}

impl Sleep for LeasedSleep {}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(5);

    #[tokio::test]
    async fn sleeps_fire_and_a_dropped_one_frees_the_slot() {
        let timer = ConnTimer::new(&Deadlines::start(TICK));
        timer.sleep(Duration::from_millis(20)).await;
        assert!(!timer.own.taken.load(Ordering::Acquire), "slot given back");
        // Two at once: the second leases its own slot, and both fire.
        let first = timer.sleep(Duration::from_millis(20));
        let second = timer.sleep(Duration::from_millis(30));
        tokio::time::timeout(Duration::from_secs(5), async {
            first.await;
            second.await;
        })
        .await
        .expect("both sleeps fired");
    }

    #[tokio::test]
    async fn reset_moves_a_sleep() {
        let timer = ConnTimer::new(&Deadlines::start(TICK));
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        timer.reset(&mut sleep, timer.now() + Duration::from_millis(20));
        tokio::time::timeout(Duration::from_secs(5), sleep)
            .await
            .expect("the reset sleep fired");
    }
}
