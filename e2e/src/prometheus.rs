//! A real Prometheus server (Debian's `/usr/bin/prometheus`) on a free loopback port, with the
//! repository's own `prometheus.yml` (targets and intervals rewritten for the test) and rule
//! files, and a small client for its HTTP API.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use serde_yaml::Value as Yaml;
use tempfile::TempDir;
use testkit::Process;

use crate::workspace;

/// A running Prometheus; killed on drop.
pub struct PrometheusServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    process: Process,
    _dir: TempDir,
}

/// Where the test's Prometheus scrapes.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The api's `host:port`.
    pub api: String,
    /// The sidecar admin listener's `host:port`.
    pub sidecar: String,
}

/// The repository's `prometheus/prometheus.yml` with the targets replaced, every interval at
/// `interval`, the rule files made absolute, and no Alertmanager (none runs in the test).
///
/// # Errors
/// If the file is unreadable or not shaped as expected.
pub fn test_config(targets: &Targets, self_addr: &str, interval: &str) -> anyhow::Result<String> {
    let mut cfg: Yaml = serde_yaml::from_str(&workspace::read("prometheus/prometheus.yml")?)?;
    let global = cfg
        .get_mut("global")
        .context("prometheus.yml has no global section")?;
    global["scrape_interval"] = Yaml::from(interval);
    global["scrape_timeout"] = Yaml::from(interval);
    global["evaluation_interval"] = Yaml::from(interval);
    let rules = workspace::path("prometheus");
    let files = cfg["rule_files"]
        .as_sequence_mut()
        .context("prometheus.yml has no rule_files")?;
    for f in files.iter_mut() {
        let rel = f.as_str().context("rule file is not a string")?.to_owned();
        *f = Yaml::from(rules.join(rel).to_string_lossy().into_owned());
    }
    if let Some(map) = cfg.as_mapping_mut() {
        map.remove("alerting");
    }
    for job in cfg["scrape_configs"]
        .as_sequence_mut()
        .context("no scrape_configs")?
    {
        let addr = match job["job_name"].as_str() {
            Some("api") => targets.api.clone(),
            Some("sidecar") => targets.sidecar.clone(),
            Some("prometheus") => self_addr.to_owned(),
            other => bail!("unexpected job {other:?} in prometheus.yml"),
        };
        if let Some(m) = job.as_mapping_mut() {
            m.remove("scrape_interval");
            m.remove("scrape_timeout");
        }
        job["static_configs"] = serde_yaml::from_str(&format!("[{{targets: [\"{addr}\"]}}]"))?;
    }
    Ok(serde_yaml::to_string(&cfg)?)
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` every `interval` (e.g. "1s") and waits until ready.
    ///
    /// # Errors
    /// If Prometheus is not installed or does not become ready.
    pub async fn start(targets: &Targets, interval: &str) -> anyhow::Result<PrometheusServer> {
        let bin = workspace::program("prometheus", "prometheus")?;
        let dir = tempfile::tempdir()?;
        let port = testkit::free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, test_config(targets, &addr, interval)?)?;
        let data = dir.path().join("data");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address={addr}"),
            // As every Prometheus redside starts: exemplars from OpenMetrics scrapes are kept.
            "--enable-feature=exemplar-storage".to_owned(),
            "--log.level=warn".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = Process::spawn(&bin, &args, std::iter::empty::<(&str, &str)>());
        let url = format!("http://{addr}");
        process
            .wait_ready(&format!("{url}/-/ready"), Duration::from_secs(30))
            .await?;
        Ok(PrometheusServer {
            url,
            process,
            _dir: dir,
        })
    }

    /// Prometheus' own log, for failure messages.
    pub fn log(&self) -> String {
        self.process.output_text()
    }

    async fn api(&self, path_and_query: &str) -> anyhow::Result<Value> {
        let resp = testkit::http::get(&format!("{}{path_and_query}", self.url)).await?;
        let body: Value = serde_json::from_slice(&resp.body)
            .with_context(|| format!("{path_and_query}: not JSON: {}", resp.text()))?;
        if body["status"] != "success" {
            bail!("{path_and_query}: {}", body);
        }
        Ok(body["data"].clone())
    }

    /// An instant query; the `result` array.
    ///
    /// # Errors
    /// On a failed request or a query error (with Prometheus' message).
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let data = self.api(&format!("/api/v1/query?query={q}")).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// A range query over the last `seconds` at `step` seconds; the `result` array.
    ///
    /// # Errors
    /// On a failed request or a query error.
    pub async fn query_range(
        &self,
        expr: &str,
        seconds: u64,
        step: u64,
    ) -> anyhow::Result<Vec<Value>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let start = now.saturating_sub(seconds);
        let data = self
            .api(&format!(
                "/api/v1/query_range?query={q}&start={start}&end={now}&step={step}"
            ))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The `trace_id`s of the exemplars stored for series matching `selector` over the last
    /// `seconds` (`/api/v1/query_exemplars`), each with its series' labels.
    ///
    /// # Errors
    /// On a failed request or a query error.
    pub async fn exemplar_trace_ids(
        &self,
        selector: &str,
        seconds: u64,
    ) -> anyhow::Result<Vec<(Value, String)>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let q: String = form_urlencoded::byte_serialize(selector.as_bytes()).collect();
        let start = now.saturating_sub(seconds);
        let data = self
            .api(&format!(
                "/api/v1/query_exemplars?query={q}&start={start}&end={}",
                now + 1
            ))
            .await?;
        let mut out = Vec::new();
        for series in data.as_array().into_iter().flatten() {
            for exemplar in series["exemplars"].as_array().into_iter().flatten() {
                if let Some(id) = exemplar["labels"]["trace_id"].as_str() {
                    out.push((series["seriesLabels"].clone(), id.to_owned()));
                }
            }
        }
        Ok(out)
    }

    /// Values of `label` on series matching `selector`.
    ///
    /// # Errors
    /// On a failed request.
    pub async fn label_values(&self, label: &str, selector: &str) -> anyhow::Result<Vec<String>> {
        let m: String = form_urlencoded::byte_serialize(selector.as_bytes()).collect();
        let data = self
            .api(&format!("/api/v1/label/{label}/values?match[]={m}"))
            .await?;
        Ok(data
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }

    /// The active alerts (`/api/v1/alerts`).
    ///
    /// # Errors
    /// On a failed request.
    pub async fn alerts(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.api("/api/v1/alerts").await?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Every loaded rule (`/api/v1/rules`), groups flattened.
    ///
    /// # Errors
    /// On a failed request.
    pub async fn rules(&self) -> anyhow::Result<Vec<Value>> {
        let data = self.api("/api/v1/rules").await?;
        Ok(data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The scrape targets (`/api/v1/targets`, active ones).
    ///
    /// # Errors
    /// On a failed request.
    pub async fn targets(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.api("/api/v1/targets").await?["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// Polls `check` every 250 ms until it returns `Ok(Some(_))` or `timeout` passes; the last
/// error or "still None" is reported with `what`.
///
/// # Errors
/// On timeout.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition never held");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
