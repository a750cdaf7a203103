//! The repository's YAML configuration files (Prometheus, compose, Grafana provisioning), read
//! as untyped YAML for the consistency tests.

use anyhow::Context;
use serde_yaml::Value;

use crate::workspace;

/// Parses a repository YAML file.
///
/// # Errors
/// If it is unreadable or not YAML.
pub fn yaml(relative: &str) -> anyhow::Result<Value> {
    serde_yaml::from_str(&workspace::read(relative)?).with_context(|| format!("parsing {relative}"))
}

/// A YAML scalar as text ("" when missing or not a string).
pub fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// One scrape job of a Prometheus config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// `job_name`.
    pub name: String,
    /// `metrics_path` ("" when defaulted).
    pub metrics_path: String,
    /// Static targets, `host:port`.
    pub targets: Vec<String>,
}

/// The scrape jobs of a parsed Prometheus config, in order.
pub fn jobs(cfg: &Value) -> Vec<Job> {
    cfg["scrape_configs"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|j| Job {
            name: text(&j["job_name"]).to_owned(),
            metrics_path: text(&j["metrics_path"]).to_owned(),
            targets: j["static_configs"]
                .as_sequence()
                .into_iter()
                .flatten()
                .flat_map(|sc| sc["targets"].as_sequence().cloned().unwrap_or_default())
                .map(|t| text(&t).to_owned())
                .collect(),
        })
        .collect()
}

/// The port of a `host:port` ("" when there is none).
pub fn port(target: &str) -> &str {
    target.rsplit_once(':').map_or("", |(_, p)| p)
}
