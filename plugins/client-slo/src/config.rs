//! The plugin configuration (the `configuration` string of the sidecar's `[[plugins]]` entry),
//! JSON: `{"threshold_ms": 300, "route_threshold_ms": {"GET /items/{id}": 50}}`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

/// The latency objective: a default threshold and optional per-route ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A request is `good` when it completes within this many milliseconds.
    #[serde(default = "default_threshold_ms")]
    pub threshold_ms: u64,
    /// Per-route thresholds, keyed by route template exactly as `route_name` reports it.
    #[serde(default)]
    pub route_threshold_ms: HashMap<String, u64>,
}

fn default_threshold_ms() -> u64 {
    300
}

impl Default for Config {
    fn default() -> Self {
        Config {
            threshold_ms: default_threshold_ms(),
            route_threshold_ms: HashMap::new(),
        }
    }
}

impl Config {
    /// An absent or blank configuration means the defaults; anything else must be valid JSON.
    pub fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = bytes.unwrap_or_default();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Config::default());
        }
        serde_json::from_slice(bytes)
            .map_err(|e| format!("client-slo: invalid plugin configuration: {e}"))
    }

    pub fn threshold(&self, route: &str) -> Duration {
        let ms = self
            .route_threshold_ms
            .get(route)
            .copied()
            .unwrap_or(self.threshold_ms);
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_route_thresholds_override_the_default() {
        let config = Config::parse(Some(
            br#"{"threshold_ms": 250, "route_threshold_ms": {"/items/{id}": 100}}"#,
        ))
        .unwrap();
        assert_eq!(config.threshold("/items/{id}"), Duration::from_millis(100));
        assert_eq!(config.threshold("/items"), Duration::from_millis(250));
        assert_eq!(
            Config::parse(None).unwrap().threshold("/x"),
            Duration::from_millis(300)
        );
        assert!(
            Config::parse(Some(b"{\"treshold_ms\": 1}")).is_err(),
            "typos are refused"
        );
    }
}
