//! The whole stack for real: a throwaway PostgreSQL, the api, the sidecar with
//! `config/sidecar.toml` and the example Wasm plugins, and Debian's Prometheus scraping both
//! every second with the repository's rule files. Sample traffic goes through the sidecar
//! (CRUD, 404s, invalid bodies, and 5xx while the api is briefly down). Before it, every family
//! docs/metrics.md documents as present from start-up is exported by its process. Then:
//! - a real scrape of each process matches docs/metrics.md both ways: every documented family
//!   is exported (those present only after an event excepted), every exported series belongs
//!   to a documented family, with its type and label names;
//! - every metric a dashboard, a variable or a rule reads is exported by a real scrape of the
//!   two processes (or recorded by our rules, or written by Prometheus itself);
//! - every panel query of every dashboard returns data from Prometheus' HTTP API already after
//!   the first, failure-free traffic (0, not "No data", for error and fault panels); after the
//!   failures, so do every seed query of docs/metrics.md and every recording rule;
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
    contract::{self, Contract, Present, Process},
    dashboard::Dashboard,
    prometheus::{PrometheusServer, Targets, poll},
    promql::{self, Macros},
    rules,
    stack::Stack,
};
use serde_json::Value;
use testkit::Scrape;

/// What the e2e substitutes for Grafana's macros (Prometheus scrapes every second here).
fn macros() -> Macros {
    Macros {
        rate_interval: "1m".into(),
        interval: "15s".into(),
        range: "5m".into(),
        window: "5m".into(),
    }
}

/// Every query that must return data once the stack has seen traffic and failures, with
/// where it comes from.
fn queries_that_must_return_data() -> anyhow::Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Contract::load()?
        .seed_queries
        .into_iter()
        .map(|q| (format!("{} seed query", contract::DOC), q))
        .collect();
    for name in rules::recorded_names()? {
        out.push((format!("recording rule {name}"), name));
    }
    out.extend(panel_queries()?);
    Ok(out)
}

/// Every panel query of every dashboard, Grafana variables substituted: a healthy stack with
/// traffic must already give each of them data (a 0, not "No data").
fn panel_queries() -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for d in Dashboard::load_all()? {
        for q in d.queries() {
            let expr = promql::substitute(&q.expr, &macros())?;
            out.push((format!("{} / {} ({})", d.file, q.panel, q.ref_id), expr));
        }
    }
    Ok(out)
}

/// Polls Prometheus until every query of `queries` returns data; panics after 60 s with the
/// ones still empty.
async fn until_all_return_data(prom: &PrometheusServer, what: &str, queries: &[(String, String)]) {
    let empty = poll(what, Duration::from_secs(60), || async {
        let mut empty = Vec::new();
        for (what, expr) in queries {
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
    })
    .await;
    if let Err(e) = empty {
        panic!("{e:#}\nPrometheus log:\n{}", prom.log());
    }
}

/// Sends `n` gRPC-shaped calls (HTTP/1.1, `content-type: application/grpc`, one empty message)
/// through the sidecar; returns how many got `grpc-status` 14 (`UNAVAILABLE`).
async fn grpc_calls_to_the_rest_api(stack: &Stack, n: usize) -> anyhow::Result<usize> {
    use http_body_util::{BodyExt, Full};
    let mut unavailable = 0;
    for _ in 0..n {
        let request = hyper::Request::post(format!("{}/redside.Probe/Check", stack.proxy_url))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(bytes::Bytes::from_static(&[0, 0, 0, 0, 0])))?;
        let response = testkit::http::client().request(request).await?;
        let status = response.headers().get("grpc-status").cloned();
        response.into_body().collect().await?;
        if status.is_some_and(|s| s == "14") {
            unavailable += 1;
        }
    }
    Ok(unavailable)
}

/// A request with a known, sampled `traceparent` through the sidecar: Prometheus (scraping
/// OpenMetrics, exemplar storage on) returns its trace id from `/api/v1/query_exemplars` on the
/// sidecar's `http_request_duration_seconds` and, as the api continued the trace, on the api's
/// `db_query_duration_seconds`.
async fn exemplars_reach_prometheus(stack: &Stack, prom: &PrometheusServer) -> anyhow::Result<()> {
    const TRACE: &str = "5eed0000000000000000000000e2e014";
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let response = testkit::http::send_with_headers(
        http::Method::GET,
        &format!("{}/items", stack.proxy_url),
        None,
        &[("traceparent", &traceparent)],
    )
    .await?;
    assert_eq!(response.status, 200, "{}", response.text());
    for (selector, label) in [
        (
            r#"http_request_duration_seconds_bucket{handler="/items",method="GET"}"#,
            "handler",
        ),
        (
            r#"db_query_duration_seconds_bucket{operation="list"}"#,
            "operation",
        ),
    ] {
        let found = poll(
            &format!("the trace's exemplar on {selector}"),
            Duration::from_secs(30),
            || async {
                let ids = prom.exemplar_trace_ids(selector, 600).await?;
                Ok(ids.into_iter().find(|(_, id)| id == TRACE))
            },
        )
        .await
        .with_context(|| format!("Prometheus log:\n{}", prom.log()))?;
        assert!(found.0[label].is_string(), "{found:?}");
    }
    Ok(())
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

/// A real scrape of `process` against docs/metrics.md, both ways: every documented family is
/// there (unless documented as present only after an event), and every series exposed belongs
/// to a family documented for that process, with the documented type and label names.
fn check_scrape_against_contract(contract: &Contract, process: Process, scrape: &Scrape) {
    let who = process.name();
    let names: BTreeSet<&str> = scrape.samples.iter().map(|s| s.name.as_str()).collect();
    for family in contract.exported_by(process) {
        assert!(
            names.contains(family.witness().as_str()) || family.present == Present::Event,
            "{who} does not export documented metric {}",
            family.witness()
        );
    }
    for sample in &scrape.samples {
        let family = contract
            .family_of(&sample.name)
            .filter(|f| f.exposed_by(process))
            .unwrap_or_else(|| {
                panic!(
                    "{who} exports {}, which {} does not document for {who}",
                    sample.name,
                    contract::DOC
                )
            });
        let unknown: Vec<&String> = (sample.labels.keys())
            .filter(|k| !family.labels.contains(*k))
            .filter(|k| !(*k == "le" && sample.name.ends_with("_bucket")))
            .collect();
        assert!(
            unknown.is_empty(),
            "{who}: {}{:?} carries labels {unknown:?} that {} does not list for {}",
            sample.name,
            sample.labels,
            contract::DOC,
            family.name
        );
        // The exposition names a counter's family without `_total` (OpenMetrics) or with it
        // (classic text), and an info as `x info` (OpenMetrics) or the gauge `x_info` (classic).
        let bare = family
            .name
            .strip_suffix("_total")
            .or_else(|| family.name.strip_suffix("_info"))
            .unwrap_or(&family.name);
        let exposed = [bare, family.name.as_str()]
            .iter()
            .find_map(|n| scrape.families.get(*n))
            .map_or("", String::as_str);
        let same =
            exposed == family.metric_type || (family.metric_type == "info" && exposed == "gauge");
        assert!(
            same,
            "{who}: {} is exposed as a {exposed:?}, {} says {}",
            family.name,
            contract::DOC,
            family.metric_type
        );
    }
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

    // --- before any request: the families the contract says exist from start-up, do ---------
    let contract = Contract::load()?;
    let at_start = [
        (Process::Api, stack.scrape_api().await?),
        (Process::Sidecar, stack.scrape_sidecar().await?),
    ];
    for (process, scrape) in &at_start {
        let names: BTreeSet<&str> = scrape.samples.iter().map(|s| s.name.as_str()).collect();
        for family in contract.exported_by(*process) {
            if family.present == Present::StartUp {
                assert!(
                    names.contains(family.witness().as_str()),
                    "{} does not export {} from start-up, as {} says",
                    process.name(),
                    family.witness(),
                    contract::DOC
                );
            }
        }
    }

    // --- traffic: CRUD mix, then the api goes away for a moment (502s), then more CRUD -------
    let first = stack.traffic(400, 40).await?;
    // A healthy stack (traffic, no failure yet): no panel shows "No data".
    let panels = panel_queries()?;
    until_all_return_data(
        &prom,
        "every panel query to return data before any failure",
        &panels,
    )
    .await;
    eprintln!(
        "{} panel queries returned data on a healthy stack",
        panels.len()
    );
    stack.stop_api().await?;
    let failed = sidecar_get_all_fail(&stack, 20).await?;
    assert_eq!(
        failed, 20,
        "with the api stopped every request through the sidecar is a 5xx"
    );
    // gRPC calls while the api is down: the sidecar answers each with its own gRPC error
    // (`Unavailable`), which feeds the gRPC families and their recording rules.
    assert_eq!(grpc_calls_to_the_rest_api(&stack, 5).await?, 5);
    stack.restart_api().await?;
    let second = stack.traffic(400, 40).await?;
    eprintln!("traffic: {first}traffic: {second}");

    // --- a traced request: its trace id reaches Prometheus' exemplar storage ----------------
    exemplars_reach_prometheus(&stack, &prom).await?;

    // --- the exported set, from real scrapes of both processes -------------------------------
    let api = stack.scrape_api().await?;
    let sidecar = stack.scrape_sidecar().await?;
    check_scrape_against_contract(&contract, Process::Api, &api);
    check_scrape_against_contract(&contract, Process::Sidecar, &sidecar);
    // The AssemblyScript plugin saw every request the Rust one did (one response each), and
    // the 20 answered 5xx while the api was down.
    let total = |name: &str| -> f64 { sidecar.series(name).iter().map(|s| s.value).sum() };
    assert_eq!(
        total("as_responses_total"),
        total("client_requests_total"),
        "as-status (AssemblyScript) and client-slo (Rust) counted the same requests"
    );
    let fivexx = sidecar
        .value("as_responses_total", &[("class", "5xx")])
        .unwrap_or(0.0);
    assert!(
        fivexx >= 20.0,
        "as_responses_total{{class=\"5xx\"}} = {fivexx}"
    );
    let mut exported: BTreeSet<String> = [&api, &sidecar]
        .iter()
        .flat_map(|scrape| scrape.samples.iter().map(|s| s.name.clone()))
        .collect();
    exported.extend(
        contract
            .exported_by(Process::Prometheus)
            .flat_map(contract::Family::series),
    );
    exported.extend(rules::recorded_names()?);
    exported.extend(
        contract
            .families
            .iter()
            .filter(|f| f.present == Present::Event)
            .flat_map(contract::Family::series),
    );
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
    until_all_return_data(&prom, "every query to return data", &queries).await;
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
