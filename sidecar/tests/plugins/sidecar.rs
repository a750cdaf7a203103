//! The sidecar in-process on 127.0.0.1:0 ([`InProcess`]) with its TOML file in a directory,
//! and the example plugins from `plugins/dist/`.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;

use sidecar::test_support::InProcess;
use testkit::scrape::Scrape;

pub use testkit::plugins::dist;

/// The sidecar in-process ([`InProcess`]: its addresses, `url`, the file's path), its TOML
/// file in a directory.
pub struct Sidecar(InProcess);

impl Deref for Sidecar {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.0
    }
}

impl Sidecar {
    pub async fn start(upstream: SocketAddr, dir: &Path, toml: &str) -> Sidecar {
        let upstream = format!("http://{upstream}");
        let config_path = dir.join("sidecar.toml");
        let tracing = traces::Settings::default();
        Sidecar(
            InProcess::start(&upstream, config_path, toml, tracing)
                .await
                .unwrap(),
        )
    }

    /// Writes `toml` as the sidecar's file and reloads it; the reload must succeed.
    pub async fn reload(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
        let reply = testkit::http::post(&format!("http://{}/reload", self.admin), "")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    pub async fn scrape(&self) -> Scrape {
        Scrape::fetch(&self.admin_url("/metrics")).await
    }

    /// Scrapes until `done` (end-of-request callbacks run as the response body finishes).
    pub async fn scrape_until(&self, done: impl Fn(&Scrape) -> bool) -> Scrape {
        Scrape::fetch_until(&self.admin_url("/metrics"), done).await
    }
}

/// `sidecar_plugin_callouts_total` of one plugin, cluster and result (0 when absent).
pub fn callouts(scrape: &Scrape, plugin: &str, cluster: &str, result: &str) -> f64 {
    scrape
        .value(
            "sidecar_plugin_callouts_total",
            &[("plugin", plugin), ("cluster", cluster), ("result", result)],
        )
        .unwrap_or(0.0)
}

/// `sidecar_plugin_faults_total` of one plugin, every kind added up.
pub fn faults(scrape: &Scrape, plugin: &str) -> f64 {
    ["trap", "deadline", "memory", "instantiate", "pause_timeout"]
        .iter()
        .map(|kind| {
            scrape
                .value(
                    "sidecar_plugin_faults_total",
                    &[("plugin", plugin), ("kind", kind)],
                )
                .unwrap_or(0.0)
        })
        .sum()
}

/// A sidecar TOML with one `[[clusters]]` entry and one example plugin that calls out to it.
pub struct CalloutToml<'a> {
    /// The module in `plugins/dist/`, copied next to the TOML.
    pub module: &'a str,
    /// The `[[plugins]]` name.
    pub plugin: &'a str,
    /// The cluster's name and address.
    pub cluster: (&'a str, SocketAddr),
    /// Extra lines of the cluster entry.
    pub cluster_extra: &'a str,
}

impl CalloutToml<'_> {
    /// The TOML text with the plugin's `configuration`; copies the module into `dir`.
    pub fn text(&self, dir: &Path, configuration: &str) -> String {
        let module = self.module;
        std::fs::copy(dist(module), dir.join(format!("{module}.wasm"))).unwrap();
        let (name, address) = self.cluster;
        let (plugin, extra) = (self.plugin, self.cluster_extra);
        format!(
            r#"
[[clusters]]
name = "{name}"
address = "{address}"
connect_timeout_ms = 200
{extra}

[[plugins]]
name = "{plugin}"
path = "{module}.wasm"
configuration = "{configuration}"
pause_timeout_ms = 5000
"#
        )
    }
}
