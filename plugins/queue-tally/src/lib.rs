//! Filters enqueue, a singleton service counts: one module, two roles chosen by its plugin
//! configuration (see README.md).
//!
//! - `service` (a `kind = "service"` entry): registers the shared queue `events`, drains it in
//!   `on_queue_ready`, and on every tick publishes how many items it has counted as the gauge
//!   `tally_events`. An item `trap` makes it panic (to show the host restarting a service).
//! - `service-hold`: registers the queue but never drains it (to show the queue's bound).
//! - `filter <vm_id>`: for each request, enqueues its path into `events` of the service's VM id
//!   (resolved on first use: the service may start after the filter).

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

const QUEUE: &str = "events";

#[derive(Default, PartialEq)]
enum Role {
    #[default]
    Unset,
    Service,
    Hold,
    Filter(String),
}

#[derive(Default)]
struct Root {
    role: Role,
    queue: Option<u32>,
    counted: u64,
    gauge: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self
            .get_plugin_configuration()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let mut words = text.split_whitespace();
        self.role = match (words.next(), words.next()) {
            (Some("service"), None) => Role::Service,
            (Some("service-hold"), None) => Role::Hold,
            (Some("filter"), Some(vm_id)) => Role::Filter(vm_id.to_owned()),
            _ => {
                let _ = hostcalls::log(
                    LogLevel::Error,
                    "configuration: `service`, `service-hold` or `filter <vm_id>`",
                );
                return false;
            }
        };
        if matches!(self.role, Role::Service | Role::Hold) {
            self.queue = Some(self.register_shared_queue(QUEUE));
            match hostcalls::define_metric(MetricType::Gauge, "tally_events") {
                Ok(id) => self.gauge = id,
                Err(_) => return false,
            }
            self.set_tick_period(Duration::from_millis(20));
        }
        true
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        if self.role != Role::Service {
            return;
        }
        while let Ok(Some(item)) = self.dequeue_shared_queue(queue_id) {
            if item == b"trap" {
                panic!("queue-tally: asked to trap");
            }
            self.counted += 1;
        }
    }

    fn on_tick(&mut self) {
        let _ = hostcalls::record_metric(self.gauge, self.counted);
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let Role::Filter(vm_id) = &self.role else {
            return None;
        };
        Some(Box::new(Enqueue {
            vm_id: vm_id.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        matches!(self.role, Role::Filter(_)).then_some(ContextType::HttpContext)
    }
}

struct Enqueue {
    vm_id: String,
}

impl Context for Enqueue {}

impl HttpContext for Enqueue {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let item = match self.get_http_request_header("x-tally").as_deref() {
            Some("trap") => "trap".to_owned(),
            _ => self.get_http_request_header(":path").unwrap_or_default(),
        };
        if let Some(queue) = self.resolve_shared_queue(&self.vm_id, QUEUE) {
            let _ = self.enqueue_shared_queue(queue, Some(item.as_bytes()));
        }
        Action::Continue
    }
}
