//! A plugin that faults on demand (trap, endless loop, memory exhaustion), for the host's fault
//! tests: see README.md. Requests without `x-drill` are counted when their headers arrive.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

#[derive(Default)]
struct Root {
    seen: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match hostcalls::define_metric(MetricType::Counter, "drill_requests_seen_total") {
            Ok(seen) => {
                self.seen = seen;
                true
            }
            Err(_) => false,
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request { seen: self.seen }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    seen: u32,
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        match self.get_http_request_header("x-drill").as_deref() {
            Some("trap") => panic!("fault-drill: trap on request"),
            Some("loop") => {
                let mut spins = 0u64;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            Some("memory") => {
                // Grows without touching the pages: the limit, not the CPU deadline, stops it.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(Vec::with_capacity(4 << 20));
                    std::hint::black_box(&hoard);
                }
            }
            _ => {
                let _ = hostcalls::increment_metric(self.seen, 1);
            }
        }
        Action::Continue
    }
}
