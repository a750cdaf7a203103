//! An auth-style filter over a unary gRPC callout, in the manner of the SDK's
//! `grpc_auth_random`: each request is paused while `dispatch_grpc_call` asks a gRPC health
//! service (`grpc.health.v1.Health/Check`, a `[[clusters]]` entry) whether the configured
//! service is SERVING; see README.md. SERVING lets the request through; anything else, the
//! health service's error or no answer at all (refused, timed out) denies it with a local 403
//! that carries the gRPC status and message the plugin saw. Decisions are counted.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root::default()));
}}

const DECISIONS: [&str; 3] = ["allow", "deny", "dispatch_failed"];

/// `grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

#[derive(Clone, Default)]
struct Settings {
    cluster: String,
    /// The service name asked about (`HealthCheckRequest.service`).
    service: String,
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
    /// Configuration: `<cluster> <service> <timeout_ms>`, e.g. `health redside.Items 300`.
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self
            .get_plugin_configuration()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let words: Vec<&str> = text.split_whitespace().collect();
        let [cluster, service, ms] = words[..] else {
            hostcalls::log(
                LogLevel::Error,
                "configuration: `<cluster> <service> <timeout_ms>`",
            )
            .ok();
            return false;
        };
        let Ok(ms) = ms.parse::<u64>() else {
            return false;
        };
        let mut decisions = Vec::new();
        for decision in DECISIONS {
            let name = format!("grpc_auth_decisions_total{{decision=\"{decision}\"}}");
            match hostcalls::define_metric(MetricType::Counter, &name) {
                Ok(id) => decisions.push(id),
                Err(_) => return false,
            }
        }
        self.settings = Settings {
            cluster: cluster.to_owned(),
            service: service.to_owned(),
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

    fn deny(&self, grpc_status: u32, why: &str) {
        self.count("deny");
        let status = grpc_status.to_string();
        self.send_http_response(
            403,
            vec![("x-grpc-auth", "denied"), ("x-grpc-status", &status)],
            Some(format!("{why}\n").as_bytes()),
        );
    }
}

/// `HealthCheckRequest { service }` in protobuf: field 1, length-delimited. Written by hand:
/// one string field does not justify a protobuf runtime in the module.
fn health_check_request(service: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(service.len()).ok().filter(|l| *l < 0x80)?;
    let mut message = vec![0x0a, len];
    message.extend_from_slice(service.as_bytes());
    Some(message)
}

/// `HealthCheckResponse.status` (field 1, varint) of a response message; absent is 0 (UNKNOWN).
fn serving_status(message: &[u8]) -> u64 {
    match message {
        [0x08, status, ..] if *status < 0x80 => u64::from(*status),
        _ => 0,
    }
}

impl Context for Check {
    fn on_grpc_call_response(&mut self, _token: u32, status_code: u32, size: usize) {
        if status_code != 0 {
            let (code, message) = self.get_grpc_status();
            self.deny(code, &message.unwrap_or_default());
            return;
        }
        let message = self
            .get_grpc_call_response_body(0, size)
            .unwrap_or_default();
        match serving_status(&message) {
            SERVING => {
                self.count("allow");
                self.set_http_request_header("x-auth-grpc", Some("serving"));
                self.resume_http_request();
            }
            other => self.deny(0, &format!("serving status {other}")),
        }
    }
}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let user = self.get_http_request_header("x-user").unwrap_or_default();
        let call = health_check_request(&self.settings.service)
            .ok_or(())
            .and_then(|message| {
                self.dispatch_grpc_call(
                    &self.settings.cluster,
                    "grpc.health.v1.Health",
                    "Check",
                    vec![("x-user", user.as_bytes())],
                    Some(&message),
                    self.settings.timeout,
                )
                .map_err(|_| ())
            });
        if call.is_err() {
            // An unknown cluster: fail closed, like a misconfigured ext_authz.
            self.count("dispatch_failed");
            self.send_http_response(500, vec![("x-grpc-auth", "dispatch-failed")], None);
        }
        Action::Pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_and_the_answer_are_protobuf() {
        assert_eq!(
            health_check_request("a.B").unwrap(),
            [0x0a, 3, b'a', b'.', b'B']
        );
        assert_eq!(health_check_request(""), Some(vec![0x0a, 0]));
        // Lengths past one varint byte are refused rather than mis-encoded.
        assert_eq!(health_check_request(&"x".repeat(128)), None);
        assert_eq!(serving_status(&[0x08, 1]), SERVING);
        assert_eq!(serving_status(&[0x08, 2]), 2);
        assert_eq!(serving_status(&[]), 0, "an empty message is UNKNOWN");
    }
}
