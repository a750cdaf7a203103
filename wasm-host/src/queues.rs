//! Shared queues (`proxy_{register,resolve,enqueue,dequeue}_shared_queue`): process-wide FIFO
//! queues of byte strings, named by (VM id, name), so filters on every worker can hand work to
//! one instance (typically a singleton service) that drains them in `proxy_on_queue_ready`.
//!
//! As in Envoy, registering an existing (VM id, name) returns the same id and makes the caller
//! the queue's owner: the one instance `on_queue_ready` is delivered to. Delivery runs in a task
//! per owner, never inside the enqueuing guest call, and is coalesced: after a wake-up the owner
//! is called again as long as each call drained something. Queues are bounded (the owner's
//! `queue_capacity`); an item enqueued into a full queue is dropped (the guest still gets OK,
//! which is all the Rust SDK accepts) and counted in `sidecar_plugin_queue_drops_total`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::plugin::Plugin;

/// Who receives `on_queue_ready`: one instance (slot and generation) of one plugin.
#[derive(Clone, Debug)]
pub(crate) struct Owner {
    /// The plugin (weak: an unloaded plugin stops owning).
    pub plugin: Weak<Plugin>,
    /// Its slot.
    pub slot: usize,
    /// The slot's instance generation.
    pub generation: u64,
}

impl Owner {
    fn same(&self, other: &Owner) -> bool {
        Weak::ptr_eq(&self.plugin, &other.plugin)
            && self.slot == other.slot
            && self.generation == other.generation
    }
}

/// One queue.
#[derive(Debug)]
pub(crate) struct Queue {
    /// Its id (never 0).
    pub id: u32,
    items: Mutex<VecDeque<Vec<u8>>>,
    capacity: usize,
    owner: Mutex<Option<Owner>>,
    ready: Notify,
    drops: Counter,
}

impl Queue {
    /// Appends `item`; `false` when the queue was full and the item was dropped.
    pub(crate) fn enqueue(&self, item: Vec<u8>) -> bool {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() >= self.capacity {
            drop(items);
            self.drops.inc();
            return false;
        }
        items.push_back(item);
        drop(items);
        self.ready.notify_one();
        true
    }

    /// The oldest item, if any.
    pub(crate) fn dequeue(&self) -> Option<Vec<u8>> {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Items waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no item waits.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `owner` still owns the queue.
    pub(crate) fn owned_by(&self, owner: &Owner) -> bool {
        self.owner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|o| o.same(owner))
    }

    /// Waits for an enqueue (a permit left by an earlier one counts).
    pub(crate) async fn wait(&self) {
        self.ready.notified().await;
    }

    /// Passes a wake-up on (an owner that stepped down must not swallow one).
    pub(crate) fn wake(&self) {
        self.ready.notify_one();
    }
}

#[derive(Debug, Default)]
struct Inner {
    by_name: HashMap<(String, String), u32>,
    queues: HashMap<u32, Arc<Queue>>,
    next: u32,
}

/// Every queue of the process.
#[derive(Debug, Default)]
pub(crate) struct QueueRegistry {
    inner: Mutex<Inner>,
}

impl QueueRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers (or re-registers) `name` in `vm_id` with `owner`; returns the id and whether
    /// the owner changed (then the new owner needs a delivery task).
    pub(crate) fn register(
        &self,
        vm_id: &str,
        name: &str,
        owner: Owner,
        capacity: usize,
        drops: Counter,
    ) -> (u32, bool) {
        let mut inner = self.lock();
        let key = (vm_id.to_owned(), name.to_owned());
        let queue = match inner.by_name.get(&key).copied() {
            Some(id) => inner.queues[&id].clone(),
            None => {
                inner.next = inner.next.wrapping_add(1).max(1);
                let id = inner.next;
                let queue = Arc::new(Queue {
                    id,
                    items: Mutex::new(VecDeque::new()),
                    capacity: capacity.max(1),
                    owner: Mutex::new(None),
                    ready: Notify::new(),
                    drops,
                });
                inner.by_name.insert(key, id);
                inner.queues.insert(id, queue.clone());
                queue
            }
        };
        drop(inner);
        let mut current = queue.owner.lock().unwrap_or_else(|e| e.into_inner());
        let changed = !current.as_ref().is_some_and(|o| o.same(&owner));
        *current = Some(owner);
        (queue.id, changed)
    }

    /// The id of `name` in `vm_id`.
    pub(crate) fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.lock()
            .by_name
            .get(&(vm_id.to_owned(), name.to_owned()))
            .copied()
    }

    /// The queue `id`.
    pub(crate) fn get(&self, id: u32) -> Option<Arc<Queue>> {
        self.lock().queues.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(slot: usize) -> Owner {
        Owner {
            plugin: Weak::new(),
            slot,
            generation: 0,
        }
    }

    #[test]
    fn a_name_is_one_queue_per_vm_id_and_the_last_registrant_owns_it() {
        let registry = QueueRegistry::default();
        let (a, changed) = registry.register("vm", "q", owner(0), 8, Counter::default());
        assert!(changed);
        let (same, changed) = registry.register("vm", "q", owner(0), 8, Counter::default());
        assert_eq!((same, changed), (a, false), "re-registering is idempotent");
        let (again, changed) = registry.register("vm", "q", owner(1), 8, Counter::default());
        assert_eq!((again, changed), (a, true), "a new owner");
        let queue = registry.get(a).unwrap();
        assert!(queue.owned_by(&owner(1)) && !queue.owned_by(&owner(0)));
        let (other, _) = registry.register("other-vm", "q", owner(0), 8, Counter::default());
        assert_ne!(other, a);
        assert_eq!(registry.resolve("vm", "q"), Some(a));
        assert_eq!(registry.resolve("vm", "nope"), None);
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_keeps_its_order() {
        let registry = QueueRegistry::default();
        let drops = Counter::default();
        let (id, _) = registry.register("vm", "q", owner(0), 2, drops.clone());
        let queue = registry.get(id).unwrap();
        assert!(queue.enqueue(b"1".to_vec()));
        assert!(queue.enqueue(b"2".to_vec()));
        assert!(!queue.enqueue(b"3".to_vec()));
        assert_eq!(drops.get(), 1);
        assert_eq!(queue.dequeue().as_deref(), Some(&b"1"[..]));
        assert_eq!(queue.dequeue().as_deref(), Some(&b"2"[..]));
        assert_eq!(queue.dequeue(), None);
        assert!(queue.is_empty());
    }
}
