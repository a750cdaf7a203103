//! The whole stack for real: a throwaway PostgreSQL, the api, the sidecar with
//! `config/sidecar.toml` and the example Wasm plugins, and Debian's Prometheus scraping both
//! every second with the repository's rule files. Sample traffic goes through the sidecar
//! (CRUD, 404s, invalid bodies, and 5xx while the api is briefly down). Then:
//! - every metric a dashboard, a variable or a rule reads is exported by a real scrape of the
//!   two processes (or recorded by our rules, or written by Prometheus itself);
//! - every seed PromQL of metrics.md, every recording rule and every panel query of every
//!   dashboard (Grafana variables substituted) returns data from Prometheus' HTTP API;
//! - every rule evaluates without error;
//! - stopping the api makes RedsideTargetDown and RedsideHigh5xxRatio (the real rules, with
//!   their real `for:`) reach `firing` in /api/v1/alerts.
//!
//! Needs `cargo build --workspace --bins`, `plugins/build`, PostgreSQL, prometheus and python3.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use e2e::{
    contract,
    dashboard::Dashboard,
    prometheus::{PrometheusServer, Targets, poll},
    promql::{self, Macros},
    rules,
    stack::Stack,
};
use serde_json::Value;

/// What the e2e substitutes for Grafana's macros (Prometheus scrapes every second here).
fn macros() -> Macros {
    Macros {
        rate_interval: "1m".into(),
        interval: "15s".into(),
        range: "5m".into(),
        window: "5m".into(),
    }
}

/// Every query that must return data, with where it comes from.
fn queries_that_must_return_data() -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = contract::SEED_QUERIES
        .iter()
        .map(|q| ("metrics.md seed query".to_owned(), (*q).to_owned()))
        .collect();
    for name in rules::recorded_names()? {
        out.push((format!("recording rule {name}"), name));
    }
    for d in Dashboard::load_all()? {
        for q in d.queries() {
            let expr = promql::substitute(&q.expr, &macros())?;
            out.push((format!("{} / {} ({})", d.file, q.panel, q.ref_id), expr));
        }
    }
    Ok(out)
}

async fn sidecar_get_all_fail(stack: &Stack, n: usize) -> anyhow::Result<usize> {
    let mut fivexx = 0;
    for i in 0..n {
        let path = if i % 2 == 0 {
            "/items".to_owned()
        } else {
            format!("/items/{}", i + 1)
        };
        let r = testkit::http::get(&format!("{}{path}", stack.proxy_url)).await?;
        if r.status.is_server_error() {
            fivexx += 1;
        }
    }
    Ok(fivexx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_under_traffic_feeds_every_query_and_the_alerts_fire() -> anyhow::Result<()> {
    let db = testkit::Postgres::shared().create_database();
    let mut stack = Stack::start(&db).await?;
    let targets = Targets {
        api: stack.api_addr.clone(),
        sidecar: stack.admin_addr.clone(),
    };
    let prom = PrometheusServer::start(&targets, "1s").await?;

    // --- traffic: CRUD mix, then the api goes away for a moment (502s), then more CRUD -------
    let first = stack.traffic(400, 40).await?;
    stack.stop_api().await?;
    let failed = sidecar_get_all_fail(&stack, 20).await?;
    assert_eq!(
        failed, 20,
        "with the api stopped every request through the sidecar is a 5xx"
    );
    stack.restart_api().await?;
    let second = stack.traffic(400, 40).await?;
    eprintln!("traffic: {first}traffic: {second}");

    // --- the exported set, from real scrapes of both processes -------------------------------
    let api = stack.scrape_api().await?;
    let sidecar = stack.scrape_sidecar().await?;
    let api_names: BTreeSet<String> = api.samples.iter().map(|s| s.name.clone()).collect();
    let sidecar_names: BTreeSet<String> = sidecar.samples.iter().map(|s| s.name.clone()).collect();
    for (family, kind, who) in contract::DOCUMENTED {
        let series = match kind {
            contract::Kind::Plain => (*family).to_owned(),
            contract::Kind::Histogram => format!("{family}_count"),
        };
        for process in who.split(',') {
            let names = if process == "api" {
                &api_names
            } else {
                &sidecar_names
            };
            let event_only = contract::EVENT_ONLY.iter().any(|(n, _)| *n == series);
            assert!(
                names.contains(&series) || event_only,
                "{process} does not export documented metric {series}"
            );
        }
    }
    let mut exported: BTreeSet<String> = api_names.union(&sidecar_names).cloned().collect();
    exported.extend(
        contract::PROMETHEUS_SYNTHETIC
            .iter()
            .map(|s| (*s).to_owned()),
    );
    exported.extend(rules::recorded_names()?);
    exported.extend(contract::EVENT_ONLY.iter().map(|(n, _)| (*n).to_owned()));
    for d in Dashboard::load_all()? {
        for (what, expr) in d.all_exprs() {
            for name in promql::metric_names(&promql::substitute(&expr, &macros())?)? {
                assert!(
                    exported.contains(&name),
                    "{} / {what}: {name} is not exported by api or sidecar",
                    d.file
                );
            }
        }
    }
    for rule in rules::all()? {
        for name in promql::metric_names(&rule.expr)? {
            assert!(
                exported.contains(&name),
                "rule {:?}{:?}: {name} is not exported",
                rule.record,
                rule.alert
            );
        }
    }

    // --- every query returns data ---------------------------------------------------------
    let queries = queries_that_must_return_data()?;
    let empty = poll(
        "every query to return data",
        Duration::from_secs(60),
        || async {
            let mut empty = Vec::new();
            for (what, expr) in &queries {
                let result = prom
                    .query(expr)
                    .await
                    .with_context(|| format!("{what}: {expr}"))?;
                if result.is_empty() {
                    empty.push(format!("{what}: {expr}"));
                }
            }
            if empty.is_empty() {
                Ok(Some(()))
            } else {
                anyhow::bail!("still empty:\n  {}", empty.join("\n  "))
            }
        },
    )
    .await;
    if let Err(e) = empty {
        panic!("{e:#}\nPrometheus log:\n{}", prom.log());
    }
    eprintln!("{} queries returned data", queries.len());

    // Variables offer the routes; annotations are valid queries (they may be empty).
    for d in Dashboard::load_all()? {
        for (selector, label) in d.label_values_queries() {
            let values = prom.label_values(&label, &selector).await?;
            assert!(
                !values.is_empty(),
                "{}: variable {label} has no values",
                d.file
            );
            if label == "handler" {
                for route in ["/items", "/items/{id}"] {
                    assert!(
                        values.iter().any(|v| v == route),
                        "{}: handler values {values:?} lack {route}",
                        d.file
                    );
                }
            }
        }
        for a in d.annotation_exprs() {
            prom.query(&promql::substitute(&a, &macros())?)
                .await
                .with_context(|| format!("{} annotation {a}", d.file))?;
        }
    }
    let loaded = prom.rules().await?;
    let rule_count = rules::all()?.len();
    assert_eq!(
        loaded.len(),
        rule_count,
        "Prometheus loaded every rule of prometheus/rules"
    );
    let bad: Vec<&Value> = loaded.iter().filter(|r| r["health"] != "ok").collect();
    assert!(bad.is_empty(), "rules failing to evaluate: {bad:#?}");

    // --- alerts: stop the api, keep clients coming, see the real alerts fire ----------------
    stack.stop_api().await?;
    let load = stack.background_load();
    let fired = poll(
        "RedsideTargetDown and RedsideHigh5xxRatio to fire",
        Duration::from_secs(150),
        || async {
            let alerts = prom.alerts().await?;
            let firing = |name: &str, label: (&str, &str)| {
                alerts.iter().any(|a| {
                    a["labels"]["alertname"] == name
                        && a["labels"][label.0] == label.1
                        && a["state"] == "firing"
                })
            };
            let down = firing("RedsideTargetDown", ("job", "api"));
            let fivexx = firing("RedsideHigh5xxRatio", ("handler", "/items"));
            Ok((down && fivexx).then_some(alerts))
        },
    )
    .await;
    load.abort();
    let alerts =
        fired.unwrap_or_else(|e| panic!("{e:#}\nalerts now: {:#?}", futures_alerts(&prom)));
    let down = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "RedsideTargetDown")
        .expect("target down alert");
    assert_eq!(down["labels"]["severity"], "critical");
    assert!(
        down["annotations"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("api target"),
        "{down:#}"
    );
    assert_eq!(
        down["annotations"]["runbook"],
        "docs/observability.md#redsidetargetdown"
    );
    // The sidecar stays up, so its own target-down alert must not fire.
    assert!(
        !alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "RedsideTargetDown"
                && a["labels"]["job"] == "sidecar"),
        "the sidecar is up: {alerts:#?}"
    );
    Ok(())
}

/// Best-effort dump of the current alerts for a failure message (blocking is fine there).
fn futures_alerts(prom: &PrometheusServer) -> String {
    let url = format!("{}/api/v1/alerts", prom.url);
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .and_then(|rt| rt.block_on(testkit::http::get(&url)).ok())
            .map(|r| r.text())
            .unwrap_or_default()
    })
    .join()
    .unwrap_or_default()
}
