//! Below the interface, for tests and benchmarks: the loaded plugins themselves ([`snapshot`],
//! which the reload tests compare by identity), and one plugin's callbacks driven by hand with
//! no request around them ([`HandDriven`]: `examples/plugin_callback.rs` times a callback round
//! trip with it, the slot lock, context switch, epoch deadline, guest call and host metrics
//! the filter pays per callback).

use std::sync::Arc;

use crate::PluginSet;
use crate::metrics::host::Callback;
use crate::plugin::Lease;
pub use crate::plugin::Plugin;
use crate::state::{RequestInfo, Stream};

/// The plugins a request starting now would run, in order. The same `Arc` across a reload is a
/// plugin kept warm; a new one was loaded anew.
pub fn snapshot(set: &PluginSet) -> Arc<Vec<Arc<Plugin>>> {
    set.snapshot()
}

/// One stream context on one plugin instance, kept for repeated calls.
pub struct HandDriven {
    plugin: Arc<Plugin>,
    lease: Lease,
    ctx: u32,
}

impl HandDriven {
    /// Creates a stream context (a `GET /` with no headers) on `set`'s first plugin, on the
    /// instance the calls will then go to. `None` when the set is empty or the plugin faults.
    pub fn start(set: &PluginSet) -> Option<HandDriven> {
        let plugin = set.snapshot().first()?.clone();
        let info = Arc::new(RequestInfo {
            method: http::Method::GET,
            uri: http::Uri::from_static("/"),
            version: http::Version::HTTP_11,
            started: RequestInfo::now(),
            route: None,
            peer: None,
        });
        let (lease, ctx) = plugin.begin(|instance| {
            let ctx = instance.next_context_id();
            instance
                .state()
                .streams
                .insert(ctx, Stream::new(info, Arc::default()));
            instance.on_context_create(ctx)?;
            Ok(ctx)
        })?;
        Some(HandDriven { plugin, lease, ctx })
    }

    /// Calls `proxy_on_request_headers(ctx, num_headers, end_of_stream = false)` as the filter
    /// does; `false` when the call faulted.
    pub fn on_request_headers(&self, num_headers: usize) -> bool {
        self.plugin
            .with(self.lease, |instance| {
                instance.on_data(Callback::RequestHeaders, self.ctx, num_headers, false)
            })
            .is_some()
    }
}
