//! For tests only, not part of the sidecar's interface: the whole sidecar inside a test process.
//! [`InProcess`] runs [`crate::run`] on `127.0.0.1:0` with a TOML file, as the binary would with
//! `--config`, and stops it as SIGTERM would. The sidecar's own integration tests and `e2e`'s
//! in-process stack start it this way, each wrapping it with the helpers its tests share
//! (scrapes with `testkit`, reloads, ...).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::Empty;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{Cli, Config};

/// How long [`InProcess::start`] waits for `/healthz` (plugins compile first).
const READY_WITHIN: Duration = Duration::from_secs(10);
/// How long [`InProcess::stop`] waits for [`crate::run`] to return.
const STOPPED_WITHIN: Duration = Duration::from_secs(15);

/// A sidecar running in this process; shut down (if still running) and aborted when dropped.
#[derive(Debug)]
pub struct InProcess {
    /// The proxy listener's address.
    pub proxy: SocketAddr,
    /// The admin listener's address.
    pub admin: SocketAddr,
    /// The TOML file, which `POST /reload` and SIGHUP re-read.
    pub config_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl InProcess {
    /// Writes `toml` to `config_path`, loads it as `sidecar --upstream <upstream> --config
    /// <config_path>` would, with `tracing` for the tracing flags, and runs the sidecar until
    /// its admin listener answers `/healthz`.
    ///
    /// # Errors
    /// What loading the configuration or [`crate::run`] failed with before the sidecar was
    /// ready: a bad file, a plugin that does not load, a required OpenAPI document that can't
    /// be fetched.
    ///
    /// # Panics
    /// When the file can't be written, a listener can't be bound, or the sidecar is neither
    /// ready nor failed after 10 s.
    #[allow(clippy::unwrap_used)] // a broken test machine, not a result a test checks
    pub async fn start(
        upstream: &str,
        config_path: PathBuf,
        toml: &str,
        tracing: traces::Settings,
    ) -> anyhow::Result<InProcess> {
        std::fs::write(&config_path, toml).unwrap();
        let cli = Cli {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: upstream.to_owned(),
            admin_listen: "127.0.0.1:0".parse().unwrap(),
            config: Some(config_path.clone()),
            wasm_cache_dir: None,
        };
        let mut config = Config::load(&cli)?;
        config.tracing = tracing;
        let proxy_listener = TcpListener::bind(cli.listen).await.unwrap();
        let admin_listener = TcpListener::bind(cli.admin_listen).await.unwrap();
        let (proxy, admin) = (
            proxy_listener.local_addr().unwrap(),
            admin_listener.local_addr().unwrap(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let mut task = tokio::spawn(crate::run(config, proxy_listener, admin_listener, async {
            let _ = stopped.await;
        }));
        // Ready when the admin answers, or failed if run returned.
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        let healthz = format!("http://{admin}/healthz");
        loop {
            if task.is_finished() {
                return Err((&mut task)
                    .await
                    .unwrap()
                    .expect_err("run returned Ok before stop"));
            }
            if get(&healthz).await == Some(StatusCode::OK) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sidecar did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(InProcess {
            proxy,
            admin,
            config_path,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `path` on the proxy listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// `path` on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Whether [`crate::run`] has returned (or its task was taken).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Triggers shutdown (as SIGTERM would).
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The task running [`crate::run`], for a test that awaits it itself; `None` once taken.
    pub fn take_task(&mut self) -> Option<JoinHandle<anyhow::Result<()>>> {
        self.task.take()
    }

    /// Shuts down and waits for [`crate::run`] to return, scraping `/metrics` meanwhile as
    /// Prometheus would (the admin listener waits for one scrape after the drain).
    ///
    /// # Errors
    /// What [`crate::run`] returned.
    ///
    /// # Panics
    /// When it has not returned after 15 s, or its task was taken or panicked.
    #[allow(clippy::unwrap_used)] // the panics above
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown();
        let deadline = tokio::time::Instant::now() + STOPPED_WITHIN;
        let metrics = self.admin_url("/metrics");
        while !self.is_finished() {
            let _ = get(&metrics).await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "sidecar did not stop"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.task.take().unwrap().await.unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// `GET url`'s status, `None` when there was no answer.
async fn get(url: &str) -> Option<StatusCode> {
    let uri: Uri = url.parse().ok()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(uri).await.ok()?;
    let status = response.status();
    // Read to the end, so the connection closes cleanly before the client is dropped.
    http_body_util::BodyExt::collect(response.into_body())
        .await
        .ok()?;
    Some(status)
}
