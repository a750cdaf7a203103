//! The real stack in one process: the items API on a real PostgreSQL and the sidecar, both
//! in-process on 127.0.0.1:0, the example plugins from `plugins/dist/`, and a client.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use sidecar::test_support::InProcess;
use testkit::scrape::Scrape;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use testkit::plugins::dist;

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

pub async fn start_api() -> Running {
    let database_url = testkit::Postgres::shared().create_database();
    let config = api::Config::try_parse_from(["api", "--database-url", &database_url]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api::run(config, listener, async {
        let _ = stopped.await;
    }));
    wait_ok(&format!("http://{addr}/healthz")).await;
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// The sidecar in-process ([`InProcess`]: its addresses, `url`, `admin_url`, the file's path),
/// its TOML file in `dir`.
pub struct Sidecar(InProcess);

impl Deref for Sidecar {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.0
    }
}

impl Sidecar {
    pub async fn start(upstream: SocketAddr, dir: &Path, toml: &str) -> Sidecar {
        Sidecar::start_traced(upstream, dir, toml, traces::Settings::default()).await
    }

    /// [`Sidecar::start`] with these tracing settings instead of the defaults.
    pub async fn start_traced(
        upstream: SocketAddr,
        dir: &Path,
        toml: &str,
        tracing: traces::Settings,
    ) -> Sidecar {
        let upstream = format!("http://{upstream}");
        let config_path = dir.join("sidecar.toml");
        Sidecar(
            InProcess::start(&upstream, config_path, toml, tracing)
                .await
                .unwrap(),
        )
    }

    /// Shuts down and waits for `run` to return ([`InProcess::stop`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.0.stop().await
    }

    pub async fn scrape(&self) -> Scrape {
        Scrape::fetch(&self.admin_url("/metrics")).await
    }

    /// Scrapes until `done` (end-of-request callbacks run as the response body finishes).
    pub async fn scrape_until(&self, done: impl Fn(&Scrape) -> bool) -> Scrape {
        Scrape::fetch_until(&self.admin_url("/metrics"), done).await
    }
}

/// `method url` with a user agent and an optional JSON body: (status, body).
pub async fn call(method: Method, url: &str, agent: &str, json: Option<&str>) -> (u16, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(url)
        .header("user-agent", agent);
    if json.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(Full::new(Bytes::from(json.unwrap_or_default().to_owned())))
        .unwrap();
    let response = testkit::http::client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub fn id_of(body: &str) -> i64 {
    serde_json::from_str::<serde_json::Value>(body).unwrap()["id"]
        .as_i64()
        .unwrap()
}

/// Both example plugins, copied next to the TOML file and referenced relatively (relative paths
/// resolve against the file's directory).
pub fn both_plugins(dir: &Path, slo_threshold_ms: u64) -> String {
    for name in ["items-business", "client-slo"] {
        std::fs::copy(dist(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    format!(
        r#"
[[routes]]
template = "/items"
[[routes]]
template = "/items/{{id}}"

[[plugins]]
name = "items-business"
path = "items-business.wasm"
request_body = true
response_body = true
buckets = {{ business_item_price_cents = [1000, 5000, 10000, 50000] }}

[[plugins]]
name = "client-slo"
path = "client-slo.wasm"
configuration = '{{"threshold_ms": {slo_threshold_ms}}}'
"#
    )
}
