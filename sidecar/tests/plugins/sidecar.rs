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
