//! The tracing wiring of the stack, statically (no Docker engine needed): every Prometheus
//! redside starts keeps exemplars, the compose file runs a pinned trace backend that both
//! processes export to, Grafana links an exemplar's trace id to it, and every latency panel
//! over a histogram with exemplars asks for them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use e2e::config::{text as s, yaml};
use e2e::workspace;

const EXEMPLAR_STORAGE: &str = "--enable-feature=exemplar-storage";

#[test]
fn every_prometheus_redside_starts_keeps_exemplars() {
    let compose = yaml("docker-compose.yml").unwrap();
    let command: Vec<&str> = (compose["services"]["prometheus"]["command"].as_sequence())
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert!(command.contains(&EXEMPLAR_STORAGE), "{command:?}");
    for file in ["scripts/stack", "e2e/src/prometheus.rs"] {
        assert!(
            workspace::read(file).unwrap().contains(EXEMPLAR_STORAGE),
            "{file}"
        );
    }
}

#[test]
fn compose_exports_both_processes_spans_to_its_trace_backend() {
    let compose = yaml("docker-compose.yml").unwrap();
    let services = &compose["services"];
    let jaeger = &services["jaeger"];
    assert!(s(&jaeger["image"]).starts_with("jaegertracing/all-in-one:1."));
    assert_eq!(s(&jaeger["environment"]["COLLECTOR_OTLP_ENABLED"]), "true");
    for process in ["api", "sidecar"] {
        assert_eq!(
            s(&services[process]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]),
            "http://jaeger:4318",
            "{process}"
        );
    }
    // Only the sidecar starts traces; the api follows the sidecar's decision.
    assert_eq!(
        s(&services["api"]["environment"]["OTEL_TRACES_SAMPLER_ARG"]),
        "0"
    );
}

#[test]
fn grafana_links_an_exemplars_trace_id_to_the_trace_backend() {
    let provisioning = yaml("grafana/provisioning/datasources/prometheus.yml").unwrap();
    let sources = provisioning["datasources"].as_sequence().unwrap();
    let by_type = |kind: &str| sources.iter().find(|d| s(&d["type"]) == kind).unwrap();
    let jaeger = by_type("jaeger");
    assert_eq!(s(&jaeger["url"]), "http://jaeger:16686");
    let links = by_type("prometheus")["jsonData"]["exemplarTraceIdDestinations"]
        .as_sequence()
        .unwrap();
    assert!(
        links
            .iter()
            .any(|l| s(&l["name"]) == "trace_id" && s(&l["datasourceUid"]) == s(&jaeger["uid"])),
        "{links:?}"
    );
}

#[test]
fn latency_panels_over_histograms_with_exemplars_show_them() {
    let mut checked = 0;
    for entry in std::fs::read_dir(workspace::path("grafana/dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut panels: Vec<&serde_json::Value> = Vec::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            panels.push(panel);
            panels.extend(panel["panels"].as_array().into_iter().flatten());
        }
        for panel in panels {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                let over = [
                    "http_request_duration_seconds_bucket",
                    "db_query_duration_seconds_bucket",
                ]
                .iter()
                .any(|family| expr.contains(family));
                if over && target["range"] == true {
                    assert_eq!(
                        target["exemplar"],
                        true,
                        "{} / {}: {expr}",
                        path.display(),
                        panel["title"]
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 10, "only {checked} latency targets found");
}
