//! The real processes: the api on a throwaway PostgreSQL database and the sidecar in front of
//! it with the repository's `config/sidecar.toml` (and so the example plugins), on free ports.

use std::time::Duration;

use anyhow::{Context, bail};
use testkit::{Process, Scrape};

use crate::workspace;

const READY: Duration = Duration::from_secs(60);

/// The api and the sidecar, both running.
pub struct Stack {
    /// The api process (`None` while stopped).
    pub api: Option<Process>,
    /// The sidecar process.
    pub sidecar: Process,
    /// The api's `host:port`.
    pub api_addr: String,
    /// The proxy's base URL, `http://127.0.0.1:<port>`.
    pub proxy_url: String,
    /// The sidecar admin listener's `host:port`.
    pub admin_addr: String,
    database_url: String,
}

impl Stack {
    /// Starts the api on `database_url`, then the sidecar in front of it; waits for both.
    ///
    /// # Errors
    /// When a binary, the plugins or the sidecar config are missing, or a process never gets
    /// ready (the error carries its output).
    pub async fn start(database_url: &str) -> anyhow::Result<Stack> {
        // E2E_SIDECAR_CONFIG points at another file (e.g. a work-in-progress configuration).
        let config = std::env::var_os("E2E_SIDECAR_CONFIG").map_or_else(
            || workspace::path("config/sidecar.toml"),
            std::path::PathBuf::from,
        );
        Self::start_with_config(database_url, &config).await
    }

    /// [`Stack::start`] with the sidecar on another configuration file.
    ///
    /// # Errors
    /// As [`Stack::start`].
    pub async fn start_with_config(
        database_url: &str,
        config: &std::path::Path,
    ) -> anyhow::Result<Stack> {
        let sidecar_bin = workspace::binary("sidecar")?;
        workspace::binary("api")?;
        workspace::plugins()?;
        if !config.is_file() {
            bail!(
                "{} is missing (the stack's sidecar configuration)",
                config.display()
            );
        }
        let api_addr = format!("127.0.0.1:{}", testkit::free_port());
        let api = Self::spawn_api(&api_addr, database_url).await?;
        let listen = format!("127.0.0.1:{}", testkit::free_port());
        let admin_addr = format!("127.0.0.1:{}", testkit::free_port());
        let upstream = format!("http://{api_addr}");
        let config = config.to_string_lossy().into_owned();
        let mut sidecar = Process::spawn(
            &sidecar_bin,
            &[
                "--listen",
                &listen,
                "--upstream",
                &upstream,
                "--admin-listen",
                &admin_addr,
                "--config",
                &config,
            ],
            [("RUST_LOG", "warn")],
        );
        sidecar
            .wait_ready(&format!("http://{admin_addr}/readyz"), READY)
            .await?;
        Ok(Stack {
            api: Some(api),
            sidecar,
            api_addr,
            proxy_url: format!("http://{listen}"),
            admin_addr,
            database_url: database_url.to_owned(),
        })
    }

    async fn spawn_api(addr: &str, database_url: &str) -> anyhow::Result<Process> {
        let bin = workspace::binary("api")?;
        let mut api = Process::spawn(
            &bin,
            &["--listen", addr],
            [("DATABASE_URL", database_url), ("RUST_LOG", "warn")],
        );
        api.wait_ready(&format!("http://{addr}/readyz"), READY)
            .await?;
        Ok(api)
    }

    /// Stops the api with SIGTERM and waits for it to exit.
    ///
    /// # Errors
    /// If it does not exit within 15 s.
    pub async fn stop_api(&mut self) -> anyhow::Result<()> {
        if let Some(mut api) = self.api.take() {
            api.signal(testkit::process::UnixSignal::SIGTERM);
            api.wait_exit(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// Kills the api with SIGKILL (no drain: in-flight requests are cut) and waits for it.
    ///
    /// # Errors
    /// If it does not exit within 15 s.
    pub async fn kill_api(&mut self) -> anyhow::Result<()> {
        if let Some(mut api) = self.api.take() {
            api.signal(testkit::process::UnixSignal::SIGKILL);
            api.wait_exit(Duration::from_secs(15)).await?;
        }
        Ok(())
    }

    /// Starts the api again on the same address and database.
    ///
    /// # Errors
    /// As [`Stack::start`].
    pub async fn restart_api(&mut self) -> anyhow::Result<()> {
        self.stop_api().await?;
        self.api = Some(Self::spawn_api(&self.api_addr, &self.database_url).await?);
        Ok(())
    }

    /// Runs the sample traffic generator (`loadgen/traffic.py`) against the proxy; its summary.
    ///
    /// # Errors
    /// If python3 is missing or the generator fails.
    pub async fn traffic(&self, requests: u32, seconds: u32) -> anyhow::Result<String> {
        let python = workspace::program("python3", "python3")?;
        let out = tokio::process::Command::new(python)
            .arg(workspace::path("loadgen/traffic.py"))
            .args([
                "--base-url",
                &self.proxy_url,
                "--requests",
                &requests.to_string(),
            ])
            .args(["--duration", &seconds.to_string(), "--concurrency", "4"])
            .output()
            .await
            .context("running loadgen/traffic.py")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!("loadgen/traffic.py failed ({}): {text}", out.status);
        }
        Ok(text)
    }

    /// Keeps sending `GET /items` through the proxy (a few per 100 ms) until the handle is
    /// aborted, so rates stay defined while a test waits for an alert.
    pub fn background_load(&self) -> tokio::task::JoinHandle<()> {
        let url = format!("{}/items", self.proxy_url);
        tokio::spawn(async move {
            loop {
                let _ = testkit::http::get(&url).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }

    /// Scrapes the api's `/metrics` (fails while it is stopped).
    ///
    /// # Errors
    /// On a failed request or an invalid exposition.
    pub async fn scrape_api(&self) -> anyhow::Result<Scrape> {
        scrape(&format!("http://{}/metrics", self.api_addr)).await
    }

    /// Scrapes the sidecar's admin `/metrics`.
    ///
    /// # Errors
    /// On a failed request or an invalid exposition.
    pub async fn scrape_sidecar(&self) -> anyhow::Result<Scrape> {
        scrape(&format!("http://{}/metrics", self.admin_addr)).await
    }
}

/// Scrapes `url` as Prometheus does (OpenMetrics) and parses the exposition.
///
/// # Errors
/// On a failed request, a non-200 or an invalid exposition.
pub async fn scrape(url: &str) -> anyhow::Result<Scrape> {
    let resp = testkit::http::get(url)
        .await
        .with_context(|| format!("GET {url}"))?;
    if !resp.status.is_success() {
        bail!("GET {url}: {}", resp.status);
    }
    let text = resp.text();
    Scrape::parse(&text).with_context(|| format!("parsing {url}:\n{text}"))
}
