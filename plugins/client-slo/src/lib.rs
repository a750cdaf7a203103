//! Client mix and latency SLO, as a Proxy-Wasm plugin: headers and properties, no bodies.
//!
//! - `client_requests_total{agent}`: requests per user-agent family, a closed set
//!   (`browser`, `curl`, `bot`, `load_test`, `other`) so a client cannot mint labels.
//! - `latency_slo_requests_total{route,result}`: requests per matched route template (the
//!   `route_name` property, bounded by the sidecar's route table) that finished within the
//!   configured threshold (`good`) or not (`bad`). The duration is the `request.duration`
//!   property (Envoy encoding: i64 nanoseconds, little-endian), read in `on_log`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

mod agent;
mod config;
use agent::Agent;
use config::Config;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

/// Metric ids per route, defined on first use: the route set is known only at run time.
type RouteMetrics = Rc<RefCell<HashMap<String, [u32; 2]>>>;

#[derive(Default)]
struct Root {
    config: Rc<Config>,
    agents: [u32; Agent::COUNT],
    routes: RouteMetrics,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => self.config = Rc::new(config),
            Err(message) => {
                let _ = hostcalls::log(LogLevel::Error, &message);
                return false;
            }
        }
        for (id, agent) in self.agents.iter_mut().zip(Agent::ALL) {
            let name = format!("client_requests_total{{agent=\"{}\"}}", agent.label());
            match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(defined) => *id = defined,
                Err(_) => return false,
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            config: self.config.clone(),
            agents: self.agents,
            routes: self.routes.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    config: Rc<Config>,
    agents: [u32; Agent::COUNT],
    routes: RouteMetrics,
}

impl Request {
    /// `request.duration` when the host has it; else now minus `request.time`.
    fn duration(&self) -> Option<Duration> {
        if let Some(nanos) = self
            .get_property(vec!["request", "duration"])
            .as_deref()
            .and_then(le_i64)
        {
            return u64::try_from(nanos).ok().map(Duration::from_nanos);
        }
        let start = self
            .get_property(vec!["request", "time"])
            .as_deref()
            .and_then(le_i64)?;
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(start).ok()?);
        self.get_current_time().duration_since(start).ok()
    }

    fn route_metrics(&self, route: &str) -> Option<[u32; 2]> {
        if let Some(ids) = self.routes.borrow().get(route) {
            return Some(*ids);
        }
        // Escaped as in the Prometheus text format, so a template like `/items/{id}` or any
        // quote stays inside the label value.
        let value = route.replace('\\', "\\\\").replace('"', "\\\"");
        let define = |result: &str| {
            let name =
                format!("latency_slo_requests_total{{route=\"{value}\",result=\"{result}\"}}");
            hostcalls::define_metric(MetricType::Counter, &name).ok()
        };
        let ids = [define("good")?, define("bad")?];
        self.routes.borrow_mut().insert(route.to_owned(), ids);
        Some(ids)
    }
}

fn le_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let agent = Agent::classify(self.get_http_request_header("user-agent").as_deref());
        let _ = hostcalls::increment_metric(self.agents[agent as usize], 1);
        Action::Continue
    }

    fn on_log(&mut self) {
        let Some(route) = self.get_property(vec!["route_name"]) else {
            return;
        };
        let Ok(route) = String::from_utf8(route) else {
            return;
        };
        if route.is_empty() {
            return;
        }
        let Some(duration) = self.duration() else {
            return;
        };
        let Some([good, bad]) = self.route_metrics(&route) else {
            return;
        };
        let id = if duration <= self.config.threshold(&route) {
            good
        } else {
            bad
        };
        let _ = hostcalls::increment_metric(id, 1);
    }
}
