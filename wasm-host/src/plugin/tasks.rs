//! A plugin's work outside requests, on the tokio runtime of the callback that asked for it:
//! tick timers, HTTP and gRPC callouts and their answers, gRPC streams, shared-queue deliveries. Each task holds the
//! plugin weakly and names the instance (slot and generation) it serves: a replaced instance
//! or an unloaded plugin ends it. Nothing here re-enters a guest call in progress: work starts
//! after the callback that asked has returned ([`Plugin::after_call`]).

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Plugin, Slot};
use crate::callout::{CallEnd, CallResult, PendingCall};
use crate::grpc_stream::{PendingStream, StreamEvent};
use crate::instance::PluginInstance;
use crate::queues::{Owner, Queue};

impl Plugin {
    /// What a callback asked for that runs outside it: callouts, queue deliveries, its timer.
    pub(super) fn after_call(&self, slot: &mut Slot, index: usize) {
        let Some(instance) = slot.instance.as_mut() else {
            return;
        };
        let state = instance.state();
        // The common case, checked before anything moves: the guest asked for nothing.
        if state.pending_calls.is_empty()
            && state.pending_streams.is_empty()
            && state.registered_queues.is_empty()
            && state.tick_period.is_none()
        {
            return;
        }
        let calls = std::mem::take(&mut state.pending_calls);
        let streams = std::mem::take(&mut state.pending_streams);
        let queues = std::mem::take(&mut state.registered_queues);
        let period = instance.take_tick_period();
        if calls.is_empty() && streams.is_empty() && queues.is_empty() && period.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(plugin = %self.shared.config.name, "timer, callout or queue outside a tokio runtime; ignored");
            return;
        };
        let generation = slot.generation;
        for call in calls {
            runtime.spawn(callout(self.this.clone(), index, generation, call));
        }
        for stream in streams {
            runtime.spawn(grpc_stream(self.this.clone(), index, generation, stream));
        }
        for id in queues {
            if let Some(queue) = self.shared.queues.get(id) {
                let owner = Owner {
                    plugin: self.this.clone(),
                    slot: index,
                    generation,
                };
                runtime.spawn(deliver_queue(queue, owner));
            }
        }
        let Some(period) = period else {
            return;
        };
        slot.tick = Some(period).filter(|p| !p.is_zero());
        if slot.tick.is_none() || slot.ticking {
            return;
        }
        slot.ticking = true;
        runtime.spawn(tick(self.this.clone(), index, generation));
    }

    /// Hands a callout's answer to the instance that asked, if it still runs `generation`.
    fn answer(&self, index: usize, generation: u64, d: Delivery) {
        self.metrics
            .callout(&self.shared.config.name, &d.cluster, d.result.label());
        let mut slot = self.lock(index);
        if slot.generation == generation {
            self.run(&mut slot, index, |inst| match d.end {
                CallEnd::Http(answer, body) => {
                    inst.on_http_call_response(d.ctx, d.token, answer, body)
                }
                CallEnd::Grpc(end) => inst.on_grpc_end(d.ctx, d.token, end),
            });
        }
    }

    /// Hands a gRPC stream's event to the instance that opened it; `false` once nothing more
    /// of the stream is wanted.
    fn stream_event(
        &self,
        at: (usize, u64),
        ctx: u32,
        token: u32,
        cluster: &str,
        event: StreamEvent,
    ) -> bool {
        if let StreamEvent::Close { result, .. } = &event {
            self.metrics
                .callout(&self.shared.config.name, cluster, result.label());
        }
        let (index, generation) = at;
        let mut slot = self.lock(index);
        if slot.generation != generation {
            return false;
        }
        self.run(&mut slot, index, |inst| {
            inst.on_grpc_stream_event(ctx, token, event)
        })
        .unwrap_or(false)
    }

    /// Calls `on_queue_ready` on `owner`'s instance; `false` once it no longer exists.
    fn queue_ready(&self, owner: &Owner, queue: u32) -> bool {
        let mut slot = self.lock(owner.slot);
        if slot.generation != owner.generation || slot.instance.is_none() || self.is_retired() {
            return false;
        }
        self.run(&mut slot, owner.slot, |inst| inst.on_queue_ready(queue))
            .is_some()
    }

    /// The current period of slot `index` while it runs `generation`; `None` stops the timer.
    fn tick_period(&self, index: usize, generation: u64) -> Option<Duration> {
        let mut slot = self.lock(index);
        if slot.generation != generation {
            return None;
        }
        if self.is_retired() {
            slot.ticking = false;
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

/// A callout's end, on its way to the instance that asked.
struct Delivery {
    ctx: u32,
    token: u32,
    cluster: String,
    result: CallResult,
    end: CallEnd,
}

/// Runs a callout and delivers its answer (or failure) to the instance that made it.
async fn callout(plugin: Weak<Plugin>, index: usize, generation: u64, call: PendingCall) {
    let (ctx, token) = (call.ctx, call.token);
    let cluster = call.cluster.config.name.clone();
    let (result, end) = crate::callout::run(call).await;
    if let Some(plugin) = plugin.upgrade() {
        let delivery = Delivery {
            ctx,
            token,
            cluster,
            result,
            end,
        };
        plugin.answer(index, generation, delivery);
    }
}

/// Runs a gRPC stream, delivering its events to the instance that opened it.
async fn grpc_stream(plugin: Weak<Plugin>, index: usize, generation: u64, stream: PendingStream) {
    let (ctx, token) = (stream.ctx, stream.token);
    let cluster = stream.cluster.config.name.clone();
    crate::grpc_stream::run(stream, |event| {
        plugin.upgrade().is_some_and(|plugin| {
            plugin.stream_event((index, generation), ctx, token, &cluster, event)
        })
    })
    .await;
}

/// Delivers `on_queue_ready` to `owner` while it owns `queue`: once per wake-up, and again as
/// long as each call drained something (a plugin may dequeue one item per call).
async fn deliver_queue(queue: Arc<Queue>, owner: Owner) {
    loop {
        queue.wait().await;
        loop {
            let Some(plugin) = owner.plugin.upgrade() else {
                queue.wake();
                return;
            };
            if !queue.owned_by(&owner) {
                queue.wake();
                return;
            }
            let before = queue.len();
            if !plugin.queue_ready(&owner, queue.id) {
                queue.wake();
                return;
            }
            let after = queue.len();
            if after == 0 || after >= before {
                break;
            }
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
