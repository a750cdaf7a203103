//! An auth-style filter: each request is paused while an HTTP callout asks an auth service
//! (a `[[clusters]]` entry) about the request's `x-user`; see README.md. The answer decides:
//! 200 lets the request through with what the service said (a header, the body, a trailer)
//! added as request headers, 403 denies it, any other status or no answer at all (refused,
//! timed out, over the cluster's cap) answers 503 locally. Decisions are counted.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

const DECISIONS: [&str; 5] = ["allow", "deny", "error", "unavailable", "dispatch_failed"];

#[derive(Clone, Default)]
struct Settings {
    cluster: String,
    timeout: Duration,
    /// Metric ids by `DECISIONS` order.
    decisions: Vec<u32>,
}

#[derive(Default)]
struct Root {
    settings: Settings,
}

impl Context for Root {}

impl RootContext for Root {
    /// Configuration: `<cluster> <timeout_ms>`, e.g. `auth 300`.
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self
            .get_plugin_configuration()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let mut words = text.split_whitespace();
        let (Some(cluster), Some(Ok(ms))) = (words.next(), words.next().map(str::parse::<u64>))
        else {
            proxy_wasm::hostcalls::log(
                LogLevel::Error,
                "configuration must be `<cluster> <timeout_ms>`",
            )
            .ok();
            return false;
        };
        let mut decisions = Vec::new();
        for decision in DECISIONS {
            let name = format!("auth_decisions_total{{decision=\"{decision}\"}}");
            match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(id) => decisions.push(id),
                Err(_) => return false,
            }
        }
        self.settings = Settings {
            cluster: cluster.to_owned(),
            timeout: Duration::from_millis(ms),
            decisions,
        };
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Check {
            settings: self.settings.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Check {
    settings: Settings,
}

impl Check {
    fn count(&self, decision: &str) {
        if let Some(i) = DECISIONS.iter().position(|d| *d == decision) {
            let _ = hostcalls::increment_metric(self.settings.decisions[i], 1);
        }
    }
}

impl Context for Check {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
        if headers == 0 {
            self.count("unavailable");
            self.send_http_response(
                503,
                vec![("x-auth", "unavailable")],
                Some(b"auth service unavailable\n"),
            );
            return;
        }
        match self.get_http_call_response_header(":status").as_deref() {
            Some("200") => {
                self.count("allow");
                let user = self
                    .get_http_call_response_header("x-auth-user")
                    .unwrap_or_default();
                let body = self
                    .get_http_call_response_body(0, usize::MAX)
                    .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
                    .unwrap_or_default();
                let trailer = self
                    .get_http_call_response_trailer("x-auth-trailer")
                    .unwrap_or_default();
                self.set_http_request_header("x-auth-user", Some(&user));
                self.set_http_request_header("x-auth-body", Some(&body));
                self.set_http_request_header("x-auth-trailer", Some(&trailer));
                self.resume_http_request();
            }
            Some("403") => {
                self.count("deny");
                self.send_http_response(403, vec![("x-auth", "denied")], Some(b"denied\n"));
            }
            _ => {
                self.count("error");
                self.send_http_response(
                    503,
                    vec![("x-auth", "error")],
                    Some(b"auth service failed\n"),
                );
            }
        }
    }
}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let user = self.get_http_request_header("x-user").unwrap_or_default();
        let call = self.dispatch_http_call(
            &self.settings.cluster,
            vec![
                (":method", "GET"),
                (":path", "/check"),
                (":authority", "auth"),
                ("x-user", &user),
            ],
            None,
            vec![],
            self.settings.timeout,
        );
        match call {
            Ok(_) => Action::Pause,
            Err(_) => {
                // An unknown cluster: fail closed, like a misconfigured ext_authz.
                self.count("dispatch_failed");
                self.send_http_response(500, vec![("x-auth", "dispatch-failed")], None);
                Action::Pause
            }
        }
    }
}
