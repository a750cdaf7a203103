//! Parsing and validation of the configuration.

use std::{path::Path, time::Duration};

use super::*;

#[test]
fn durations_accept_units_and_plain_milliseconds() {
    let file = FileConfig::parse("[limits]\nconnect_timeout = \"250ms\"\nresponse_header_timeout = 1500\ngrace_period = \"1m\"\n").unwrap();
    assert_eq!(file.limits.connect_timeout, Duration::from_millis(250));
    assert_eq!(
        file.limits.response_header_timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(file.limits.grace_period, Duration::from_secs(60));
}

#[test]
fn unknown_key_is_named_in_the_error() {
    let error = FileConfig::parse("[limits]\nconect_timeout = \"1s\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("conect_timeout"), "{error}");
}

#[test]
fn bad_duration_is_explained() {
    let error = FileConfig::parse("[limits]\nconnect_timeout = \"5 parsecs\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid duration"), "{error}");
}

#[test]
fn out_of_range_value_names_its_key() {
    let error = FileConfig::parse("[limits]\nmax_concurrent_requests = 0\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("limits.max_concurrent_requests"), "{error}");
    let error = FileConfig::parse("[metrics]\nduration_buckets = [1.0, 0.5]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("metrics.duration_buckets"), "{error}");
}

#[test]
fn the_stacks_config_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sidecar.toml");
    let file = FileConfig::read(&path).unwrap();
    assert!(file.openapi.is_some());
    assert_eq!(file.plugins.len(), 3);
}

#[test]
fn upstream_must_be_plain_http_host_port() {
    assert!(Upstream::parse("http://127.0.0.1:8000").is_ok());
    assert!(Upstream::parse("http://api:8000/").is_ok());
    assert!(Upstream::parse("https://api:8000").is_err());
    assert!(Upstream::parse("http://api:8000/v1").is_err());
    assert!(Upstream::parse("api:8000").is_err());
}

#[test]
fn routes_openapi_and_plugins_parse() {
    let file = FileConfig::parse(
        "openapi = { required = true }\n[[routes]]\ntemplate = \"/items/{id}\"\n\
         [[plugins]]\nname = \"p\"\npath = \"p.wasm\"\n",
    )
    .unwrap();
    assert_eq!(file.routes[0].template, "/items/{id}");
    assert_eq!(file.openapi.unwrap().url_path, "/openapi.json");
    assert_eq!(file.plugins.len(), 1);
}

#[test]
fn clusters_and_service_plugins_parse_with_their_defaults() {
    let file = FileConfig::parse(
        "[[clusters]]\nname = \"auth\"\naddress = \"127.0.0.1:9100\"\n\n\
         [[plugins]]\nname = \"tally\"\npath = \"t.wasm\"\nkind = \"service\"\n",
    )
    .unwrap();
    let cluster = &file.clusters[0];
    assert_eq!(
        (cluster.connect_timeout_ms, cluster.timeout_ms),
        (1000, 1000)
    );
    assert_eq!(cluster.max_concurrent_calls, 64);
    let plugin = &file.plugins[0];
    assert!(plugin.is_service() && plugin.singleton);
    assert_eq!(plugin.instance_count(), 1, "a singleton service runs once");
    assert_eq!(plugin.queue_capacity, 1024);
}

#[test]
fn bad_clusters_name_their_key() {
    for (toml, key) in [
        (
            "[[clusters]]\nname = \"a\"\naddress = \"nowhere\"\n",
            "clusters[0]",
        ),
        (
            "[[clusters]]\nname = \"a\"\naddress = \"h:1\"\nmax_concurrent_calls = 0\n",
            "clusters[0]",
        ),
        (
            "[[clusters]]\nname = \"a\"\naddress = \"h:1\"\n[[clusters]]\nname = \"a\"\naddress = \"h:2\"\n",
            "clusters[1].name",
        ),
    ] {
        let error = FileConfig::parse(toml).unwrap_err().to_string();
        assert!(error.contains(key), "{toml}: {error}");
    }
}

#[test]
fn grpc_reflection_parses_and_needs_an_http2_upstream_leg() {
    let file = FileConfig::parse(
        "grpc_reflection = { required = true }\n[protocols]\nupstream = \"h2c\"\n",
    )
    .unwrap();
    let reflection = file.grpc_reflection.unwrap();
    assert!(reflection.required);
    assert_eq!(reflection.attempts, 6);
    let error = FileConfig::parse("grpc_reflection = {}\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("`grpc_reflection` needs"), "{error}");
    let error = FileConfig::parse("grpc_reflection = { requird = true }\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("requird"), "{error}");
}

#[test]
fn metric_names_are_prometheus_by_default_or_otel() {
    assert_eq!(
        FileConfig::parse("").unwrap().metrics.names,
        MetricNames::Prometheus
    );
    let file = FileConfig::parse("[metrics]\nnames = \"otel\"\n").unwrap();
    assert_eq!(file.metrics.names, MetricNames::Otel);
    let error = FileConfig::parse("[metrics]\nnames = \"otlp\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("otlp") && error.contains("otel"), "{error}");
}
