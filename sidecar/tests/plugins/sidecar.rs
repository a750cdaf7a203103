//! The sidecar in-process on 127.0.0.1:0 with its TOML file in a directory, and the example
//! plugins from `plugins/dist/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::scrape::Scrape;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A built example plugin; fails loudly when the build step was skipped.
pub fn dist(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run plugins/build (builds the example plugins for wasm32-unknown-unknown)",
        path.display()
    );
    path
}

/// A server task stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.abort();
    }
}

pub async fn wait_ok(url: &str) {
    for _ in 0..500 {
        if testkit::http::get(url).await.is_ok_and(|r| r.status == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{url} never answered 200");
}

/// The sidecar in-process, its TOML file in `dir`.
pub struct Sidecar {
    pub proxy: Running,
    pub admin: SocketAddr,
    pub config_path: PathBuf,
}

impl Sidecar {
    pub async fn start(upstream: SocketAddr, dir: &Path, toml: &str) -> Sidecar {
        let config_path = dir.join("sidecar.toml");
        std::fs::write(&config_path, toml).unwrap();
        let cli = sidecar::Cli {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: format!("http://{upstream}"),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            config: Some(config_path.clone()),
        };
        let config = sidecar::Config::load(&cli).unwrap();
        let proxy_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin) = (
            proxy_listener.local_addr().unwrap(),
            admin_listener.local_addr().unwrap(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sidecar::run(
            config,
            proxy_listener,
            admin_listener,
            async {
                let _ = stopped.await;
            },
        ));
        wait_ok(&format!("http://{admin}/healthz")).await;
        Sidecar {
            proxy: Running {
                addr,
                stop: Some(stop),
                task,
            },
            admin,
            config_path,
        }
    }

    /// Writes `toml` as the sidecar's file and reloads it; the reload must succeed.
    pub async fn reload(&self, toml: &str) {
        std::fs::write(&self.config_path, toml).unwrap();
        let reply = testkit::http::post(&format!("http://{}/reload", self.admin), "")
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr)
    }

    pub async fn scrape(&self) -> Scrape {
        let text = testkit::http::get(&format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text();
        Scrape::parse(&text).unwrap()
    }

    /// Scrapes until `done` (end-of-request callbacks run as the response body finishes).
    pub async fn scrape_until(&self, done: impl Fn(&Scrape) -> bool) -> Scrape {
        for _ in 0..500 {
            let scrape = self.scrape().await;
            if done(&scrape) {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "condition never met; last scrape: {:#?}",
            self.scrape().await.samples
        );
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
