//! Trailers and late local replies (see README.md):
//!
//! - counts the request and response trailers it is shown, by side and name
//!   (`trailers_seen_total{side,name}`; names from a closed list, others are `other`);
//! - answers `418` from `on_http_response_headers` when the request had `x-late: headers`
//!   (the response head has not left: the host replaces the upstream's answer);
//! - asks for a local reply from `on_log` when the request had `x-late: log`, after the
//!   response has left: the host refuses it as Envoy does, and the SDK turns that refusal into
//!   a panic (counted as a fault; the client already has its answer);
//! - with `x-show-view: 1` on the request, returns how it saw the request in response headers
//!   (`x-seen-method`, `-path`, `-authority`, `-upgrade`, `-protocol` from `:method`, `:path`,
//!   `:authority`, `upgrade` and the `request.protocol` property; `x-seen-status` from the
//!   response's `:status`), so a test can check what plugins are shown of an HTTP/2, gRPC or
//!   WebSocket request.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

const NAMES: [&str; 3] = ["x-checksum", "grpc-status", "other"];
const SIDES: [&str; 2] = ["request", "response"];

#[derive(Default)]
struct Root {
    /// By side, then name.
    ids: Vec<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        for side in SIDES {
            for name in NAMES {
                let metric = format!("trailers_seen_total{{side=\"{side}\",name=\"{name}\"}}");
                match hostcalls::define_metric(MetricType::Counter, &metric) {
                    Ok(id) => self.ids.push(id),
                    Err(_) => return false,
                }
            }
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Watch {
            ids: self.ids.clone(),
            late: None,
            view: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Watch {
    ids: Vec<u32>,
    late: Option<String>,
    /// What the request looked like, to be shown in the response when it asked.
    view: Vec<(&'static str, String)>,
}

impl Watch {
    fn count(&self, side: usize, trailers: Vec<(String, String)>) {
        for (name, _) in trailers {
            let i = NAMES
                .iter()
                .position(|n| *n == name)
                .unwrap_or(NAMES.len() - 1);
            let _ = hostcalls::increment_metric(self.ids[side * NAMES.len() + i], 1);
        }
    }
}

impl Context for Watch {}

impl HttpContext for Watch {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.late = self.get_http_request_header("x-late");
        if self.get_http_request_header("x-show-view").is_some() {
            for (shown, pseudo) in [
                ("x-seen-method", ":method"),
                ("x-seen-path", ":path"),
                ("x-seen-authority", ":authority"),
                ("x-seen-upgrade", "upgrade"),
            ] {
                let value = self.get_http_request_header(pseudo).unwrap_or_default();
                self.view.push((shown, value));
            }
            let protocol = self
                .get_property(vec!["request", "protocol"])
                .and_then(|p| String::from_utf8(p).ok())
                .unwrap_or_default();
            self.view.push(("x-seen-protocol", protocol));
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _n: usize) -> Action {
        self.count(0, self.get_http_request_trailers());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        if self.late.as_deref() == Some("headers") {
            self.send_http_response(418, vec![("x-late", "headers")], Some(b"replaced late\n"));
            return Action::Pause;
        }
        if !self.view.is_empty() {
            let status = self.get_http_response_header(":status").unwrap_or_default();
            self.view.push(("x-seen-status", status));
        }
        for (name, value) in &self.view {
            self.add_http_response_header(name, value);
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _n: usize) -> Action {
        self.count(1, self.get_http_response_trailers());
        Action::Continue
    }

    fn on_log(&mut self) {
        if self.late.as_deref() == Some("log") {
            self.send_http_response(418, vec![], Some(b"too late\n"));
        }
    }
}
