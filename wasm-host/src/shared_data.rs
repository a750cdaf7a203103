//! Shared data (`proxy_get_shared_data` / `proxy_set_shared_data`): a key-value store per VM id,
//! process-wide, with compare-and-swap tokens, so instances of a plugin (or plugins sharing a
//! VM id) can aggregate. Survives plugin reloads, like Envoy's per-VM-id store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// All VM ids' stores.
#[derive(Debug, Default)]
pub(crate) struct SharedDataRegistry {
    by_vm: Mutex<HashMap<String, Arc<SharedData>>>,
}

impl SharedDataRegistry {
    /// The store of `vm_id`, created on first use.
    pub(crate) fn get(&self, vm_id: &str) -> Arc<SharedData> {
        let mut by_vm = self.by_vm.lock().unwrap_or_else(|e| e.into_inner());
        by_vm.entry(vm_id.to_owned()).or_default().clone()
    }
}

/// Key → (value, CAS token).
type Entries = HashMap<Vec<u8>, (Vec<u8>, u32)>;

/// One VM id's key-value store.
#[derive(Debug, Default)]
pub(crate) struct SharedData {
    entries: Mutex<Entries>,
}

/// Why a write was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CasMismatch;

impl SharedData {
    /// The value and its CAS token.
    pub(crate) fn get(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    /// Writes `value`; for an existing key, a non-zero `cas` must equal the current token. Tokens start at 1 and
    /// never return to 0 (0 means "unconditional" and "absent" in the ABI).
    pub(crate) fn set(&self, key: &[u8], value: Vec<u8>, cas: u32) -> Result<(), CasMismatch> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(key) {
            Some((_, token)) if cas != 0 && cas != *token => Err(CasMismatch),
            Some(entry) => {
                let next = entry.1.wrapping_add(1).max(1);
                *entry = (value, next);
                Ok(())
            }
            // As in Envoy: a token for a key that does not exist is not checked.
            None => {
                entries.insert(key.to_vec(), (value, 1));
                Ok(())
            }
        }
    }
}
