//! The sidecar in-process on 127.0.0.1:0 ([`InProcess`]) with its TOML file in a directory of
//! its own, next to the example plugins it names, copied from `plugins/dist/`.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;

use sidecar::test_support::InProcess;
use tempfile::TempDir;
use testkit::scrape::Scrape;

pub use testkit::plugins::dist;

/// The sidecar in-process ([`InProcess`]: its addresses, `url`, the file's path), its TOML
/// file in a directory that lives as long as it.
pub struct Sidecar {
    process: InProcess,
    /// The TOML file and the modules it names.
    dir: TempDir,
}

impl Deref for Sidecar {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.process
    }
}

impl Sidecar {
    /// Starts the sidecar in front of `upstream` with `toml`, whose `[[plugins]]` paths name
    /// modules of `plugins/dist/` (`path = "client-slo.wasm"`).
    pub async fn start(upstream: SocketAddr, toml: &str) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        copy_modules(dir.path(), toml);
        let upstream = format!("http://{upstream}");
        let config_path = dir.path().join("sidecar.toml");
        let tracing = traces::Settings::default();
        let process = InProcess::start(&upstream, config_path, toml, tracing)
            .await
            .unwrap();
        Sidecar { process, dir }
    }

    /// Writes `toml` as the sidecar's file (with the modules it names) and reloads it; the
    /// reload must succeed.
    pub async fn reload(&self, toml: &str) {
        copy_modules(self.dir.path(), toml);
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

/// Copies the modules `toml`'s `[[plugins]]` name from `plugins/dist/` into `dir`.
fn copy_modules(dir: &Path, toml: &str) {
    let file: toml::Table = toml::from_str(toml).unwrap();
    let plugins = file.get("plugins").and_then(|p| p.as_array());
    for plugin in plugins.into_iter().flatten() {
        let path = plugin["path"].as_str().unwrap();
        let module = path.strip_suffix(".wasm").unwrap();
        std::fs::copy(dist(module), dir.join(path)).unwrap();
    }
}

/// A sidecar TOML with one `[[clusters]]` entry and one example plugin that calls out to it.
pub struct CalloutToml<'a> {
    /// The module in `plugins/dist/`.
    pub module: &'a str,
    /// The `[[plugins]]` name.
    pub plugin: &'a str,
    /// The cluster's name and address.
    pub cluster: (&'a str, SocketAddr),
    /// Extra lines of the cluster entry.
    pub cluster_extra: &'a str,
    /// A service (root context only) rather than a filter, whose requests wait for its
    /// callouts up to 5 s.
    pub service: bool,
}

impl CalloutToml<'_> {
    /// The TOML text with the plugin's `configuration`.
    pub fn text(&self, configuration: &str) -> String {
        let module = self.module;
        let (name, address) = self.cluster;
        let (plugin, extra) = (self.plugin, self.cluster_extra);
        let role = if self.service {
            "kind = \"service\""
        } else {
            "pause_timeout_ms = 5000"
        };
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
{role}
"#
        )
    }
}
