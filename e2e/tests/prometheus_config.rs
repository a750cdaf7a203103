//! Static consistency of the Prometheus side: the native and compose configs agree, the rule
//! files are all loaded, rules are well named and read known metrics, every alert has a severity,
//! a summary, a description, a runbook section in docs/observability.md and a promtool unit
//! test, and Grafana's provisioning matches Prometheus and compose.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::{BTreeMap, BTreeSet};

use e2e::config::{jobs, port, text as s};
use e2e::contract::{self, Contract};
use e2e::{promql, rules, workspace};
use serde_yaml::Value;

fn yaml(relative: &str) -> Value {
    e2e::config::yaml(relative).unwrap()
}

#[test]
fn native_and_compose_prometheus_configs_agree_except_for_target_hosts() {
    let native = yaml("prometheus/prometheus.yml");
    let compose = yaml("prometheus/prometheus.compose.yml");
    assert_eq!(
        native["global"], compose["global"],
        "global sections differ: run prometheus/sync"
    );
    assert_eq!(
        native["rule_files"], compose["rule_files"],
        "rule_files differ: run prometheus/sync"
    );
    let (n, c) = (jobs(&native), jobs(&compose));
    assert_eq!(
        n.iter().map(|j| &j.name).collect::<Vec<_>>(),
        vec!["prometheus", "api", "sidecar"],
        "the native config scrapes prometheus, api and sidecar"
    );
    assert_eq!(n.len(), c.len(), "same jobs");
    for (nj, cj) in n.iter().zip(&c) {
        assert_eq!(
            (&nj.name, &nj.metrics_path),
            (&cj.name, &cj.metrics_path),
            "job names and metrics paths"
        );
        assert_eq!(
            nj.targets.len(),
            cj.targets.len(),
            "job {}: target count",
            nj.name
        );
        for (nt, ct) in nj.targets.iter().zip(&cj.targets) {
            assert!(
                nt.starts_with("127.0.0.1:"),
                "native target {nt} must be loopback"
            );
            assert_eq!(
                port(nt),
                port(ct),
                "job {}: ports of {nt} and {ct}",
                nj.name
            );
        }
    }
    // The fixed ports the README, the docs and the compose file give.
    let by_job: BTreeMap<_, _> = n
        .iter()
        .map(|j| (j.name.as_str(), j.targets[0].as_str()))
        .collect();
    assert_eq!(by_job["api"], "127.0.0.1:8000");
    assert_eq!(by_job["sidecar"], "127.0.0.1:9901");
    assert_eq!(by_job["prometheus"], "127.0.0.1:9090");
    let interval = s(&native["global"]["scrape_interval"]);
    assert!(
        ["5s", "10s", "15s"].contains(&interval),
        "scrape interval {interval}: demo-friendly and <= the teaching stack's 15s"
    );
}

#[test]
fn rule_files_are_all_referenced_and_exist() {
    let native = yaml("prometheus/prometheus.yml");
    let referenced: BTreeSet<String> = native["rule_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| s(f).trim_start_matches("rules/").to_owned())
        .collect();
    let present: BTreeSet<String> = rules::load().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        referenced, present,
        "prometheus.yml rule_files vs prometheus/rules/*.yml"
    );
}

#[test]
fn recording_rules_are_named_level_metric_operations_and_read_known_metrics() {
    let contract = Contract::load().unwrap();
    let mut known = contract.documented_series();
    let recorded = rules::recorded_names().unwrap();
    known.extend(recorded.iter().cloned());
    let mut seen = BTreeSet::new();
    for name in &recorded {
        let parts: Vec<&str> = name.split(':').collect();
        assert!(
            parts.len() == 3
                && parts.iter().all(|p| !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
            "recording rule {name} is not level:metric:operations"
        );
        assert!(seen.insert(name), "recording rule {name} defined twice");
    }
    for required in [
        "handler_method:http_requests:rate5m",
        "handler:http_requests_5xx:ratio_rate5m",
        "handler:http_request_duration_seconds:p50_5m",
        "handler:http_request_duration_seconds:p95_5m",
        "handler:http_request_duration_seconds:p99_5m",
        "operation:db_query_duration_seconds:p95_5m",
    ] {
        assert!(
            seen.contains(&required.to_owned()),
            "missing recording rule {required}"
        );
    }
    for rule in rules::all().unwrap() {
        for name in promql::metric_names(&rule.expr).unwrap() {
            assert!(
                known.contains(&name),
                "rule {:?}{:?} reads {name}, neither documented in {} nor recorded",
                rule.record,
                rule.alert,
                contract::DOC
            );
        }
    }
    // Each documented family is read by exactly the rule files its "read by" column names.
    let readers = contract::readers(&contract).unwrap();
    for family in &contract.families {
        let documented: BTreeSet<&String> = (family.read_by.iter())
            .filter(|f| f.ends_with(".yml"))
            .collect();
        let actual: BTreeSet<&String> = (readers.iter())
            .filter(|(file, families)| file.ends_with(".yml") && families.contains(&family.name))
            .map(|(file, _)| file)
            .collect();
        assert_eq!(
            documented,
            actual,
            "{}: the rule files it names for {} (left) are not those that read it (right)",
            contract::DOC,
            family.name
        );
    }
}

#[test]
fn alerts_have_severity_summary_description_runbook_and_a_unit_test() {
    let docs = workspace::read("docs/observability.md").unwrap();
    let anchors: BTreeSet<String> = docs
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .replace(' ', "-")
        })
        .collect();
    let tests: String = std::fs::read_dir(workspace::path("prometheus/tests"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let alerts: Vec<_> = rules::all()
        .unwrap()
        .into_iter()
        .filter(|r| r.alert.is_some())
        .collect();
    let names: BTreeSet<String> = alerts.iter().filter_map(|r| r.alert.clone()).collect();
    for required in [
        "RedsideTargetDown",
        "RedsideHigh5xxRatio",
        "RedsideLatencySLOFastBurn",
        "RedsideLatencySLOSlowBurn",
        "RedsideDBQueryLatencyHigh",
        "RedsideDBPoolSaturated",
        "RedsidePluginFaults",
        "RedsidePluginReloadLoop",
    ] {
        assert!(names.contains(required), "missing alert {required}");
    }
    for r in &alerts {
        let name = r.alert.as_deref().unwrap();
        assert!(
            ["critical", "warning", "info"]
                .contains(&r.labels.get("severity").map_or("", String::as_str)),
            "{name}: severity"
        );
        for key in ["summary", "description", "runbook"] {
            assert!(
                r.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "{name}: annotation {key}"
            );
        }
        let anchor = name.to_lowercase();
        assert_eq!(
            r.annotations["runbook"],
            format!("docs/observability.md#{anchor}"),
            "{name}: runbook link"
        );
        assert!(
            anchors.contains(&anchor),
            "{name}: docs/observability.md has no `### {name}` runbook section"
        );
        assert!(
            tests.contains(&format!("alertname: {name}")),
            "{name}: no promtool unit test in prometheus/tests"
        );
    }
}

#[test]
fn grafana_provisioning_matches_prometheus_and_compose() {
    let ds = yaml("grafana/provisioning/datasources/prometheus.yml");
    let prom = ds["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| s(&d["type"]) == "prometheus")
        .expect("prometheus datasource");
    assert_eq!(s(&prom["uid"]), "redside-prometheus");
    assert_eq!(prom["isDefault"], Value::Bool(true));
    assert_eq!(
        s(&prom["url"]),
        "http://prometheus:9090",
        "the compose service"
    );
    let native = yaml("prometheus/prometheus.yml");
    assert_eq!(
        s(&prom["jsonData"]["timeInterval"]),
        s(&native["global"]["scrape_interval"]),
        "timeInterval must equal scrape_interval so $__rate_interval is right"
    );
    let provider = yaml("grafana/provisioning/dashboards/redside.yml");
    let path = s(&provider["providers"][0]["options"]["path"]).to_owned();
    let compose = yaml("docker-compose.yml");
    let mounts: Vec<String> = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| s(v).to_owned())
        .collect();
    assert!(
        mounts.contains(&format!("./grafana/dashboards:{path}:ro")),
        "grafana must mount ./grafana/dashboards at {path}: {mounts:?}"
    );
    assert!(
        mounts.contains(&"./grafana/provisioning:/etc/grafana/provisioning:ro".to_owned()),
        "{mounts:?}"
    );
}
