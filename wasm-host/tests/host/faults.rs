//! Isolation: a plugin that traps, spins, grows without bound or pauses forever never changes
//! a response; the fault is counted and the instance replaced at once (a failed start alone
//! backs off). Bad modules fail to load, clearly.

use http::StatusCode;

use crate::logs;
use crate::support::{Host, config};

async fn passes_unchanged(host: &Host) {
    let reply = host.get("/items", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-upstream"], "yes");
    assert_eq!(reply.body, "upstream got 0 bytes");
}

#[tokio::test]
async fn a_trapping_plugin_fails_open_counts_the_trap_and_logs_its_last_critical_line() {
    let host = Host::new(&[config("fault-trap", "trap.wat")]);
    for _ in 0..3 {
        passes_unchanged(&host).await;
    }
    let traps = host.scrape().value(
        "sidecar_plugin_faults_total",
        &[("plugin", "fault-trap"), ("kind", "trap")],
    );
    assert_eq!(traps, Some(3.0), "every fault is counted");
    assert!(
        logs::contain(&["fault-trap", "wat-trap-marker"]),
        "the panic message reaches the log"
    );
}

#[tokio::test]
async fn an_infinite_loop_hits_the_cpu_deadline_and_fails_open() {
    let mut plugin = config("fault-loop", "infinite_loop.wat");
    plugin.deadline_ms = 20;
    let host = Host::new(&[plugin]);
    passes_unchanged(&host).await;
    let deadline = host.scrape().value(
        "sidecar_plugin_faults_total",
        &[("plugin", "fault-loop"), ("kind", "deadline")],
    );
    assert_eq!(deadline, Some(1.0));
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_limit_and_fails_open() {
    let mut plugin = config("fault-bomb", "memory_bomb.wat");
    plugin.memory_limit_mib = 4;
    let host = Host::new(&[plugin]);
    passes_unchanged(&host).await;
    let memory = host.scrape().value(
        "sidecar_plugin_faults_total",
        &[("plugin", "fault-bomb"), ("kind", "memory")],
    );
    assert_eq!(memory, Some(1.0));
}

#[tokio::test]
async fn a_plugin_that_pauses_forever_times_out_and_the_request_continues() {
    let mut plugin = config("fault-pause", "pause_forever.wat");
    plugin.pause_timeout_ms = 50;
    let host = Host::new(&[plugin]);
    passes_unchanged(&host).await;
    let paused = host.scrape().value(
        "sidecar_plugin_faults_total",
        &[("plugin", "fault-pause"), ("kind", "pause_timeout")],
    );
    assert_eq!(paused, Some(1.0));
}

#[tokio::test]
async fn the_request_after_a_fault_runs_on_a_fresh_instance() {
    let mut plugin = config("fault-replace", "trap.wat");
    plugin.instances = 1;
    let host = Host::new(&[plugin]);
    // No backoff after a fault: each request reaches a fresh instance, which traps again.
    for expected in 1..=5 {
        passes_unchanged(&host).await;
        let scrape = host.scrape();
        let labels = |kind| [("plugin", "fault-replace"), ("kind", kind)];
        let traps = scrape.value("sidecar_plugin_faults_total", &labels("trap"));
        assert_eq!(traps, Some(f64::from(expected)));
        let failed = scrape.value("sidecar_plugin_faults_total", &labels("instantiate"));
        assert_eq!(failed, Some(0.0));
    }
}

#[tokio::test]
async fn a_replacement_that_fails_to_start_is_counted_logged_and_retried_after_a_backoff() {
    let mut plugin = config("fault-restart", "starts_once.wat");
    plugin.instances = 1;
    let host = Host::new(&[plugin]);
    let instantiate = |host: &Host| {
        host.scrape().value(
            "sidecar_plugin_faults_total",
            &[("plugin", "fault-restart"), ("kind", "instantiate")],
        )
    };
    // The trap discards the canary; its replacement refuses to start.
    passes_unchanged(&host).await;
    assert_eq!(instantiate(&host), Some(1.0));
    assert!(logs::contain(&[
        "fault-restart",
        "starting a plugin instance failed",
        "retry_in=200ms"
    ]));
    // Within the 200 ms backoff, requests pass without the plugin and start nothing.
    for _ in 0..3 {
        passes_unchanged(&host).await;
    }
    assert_eq!(instantiate(&host), Some(1.0));
    // After it, the next request retries (and fails again: the backoff doubles).
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    passes_unchanged(&host).await;
    assert_eq!(instantiate(&host), Some(2.0));
    assert!(logs::contain(&["fault-restart", "retry_in=400ms"]));
}

#[test]
fn abi_0_1_0_modules_are_refused_at_load_with_a_clear_error() {
    let error = Host::try_new(&[config("old-abi", "abi_0_1_0.wat")])
        .err()
        .expect("refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("unsupported Proxy-Wasm ABI version") && message.contains("0_1_0"),
        "{message}"
    );
}

#[test]
fn a_module_without_an_abi_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.wat");
    std::fs::write(&path, "(module (memory (export \"memory\") 1))").unwrap();
    let error = Host::try_new(&[wasm_host::PluginConfig::new("plain", &path)])
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("not a Proxy-Wasm module"),
        "{error:#}"
    );
}

#[test]
fn a_plugin_that_rejects_its_configuration_fails_to_load() {
    let error = Host::try_new(&[config("rejects", "rejects_configuration.wat")])
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("configuration rejected"),
        "{error:#}"
    );
}

#[tokio::test]
async fn responses_the_sidecar_makes_itself_go_through_the_response_callbacks() {
    let mut plugin = config("sidecar-made", "headers_properties_metrics.wat");
    plugin.configuration = "made_requests".into();
    let host = Host::new(&[plugin]);
    let reply = host.get("/bad-gateway", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.headers["x-plugin"], "seen");
    host.wait_for("codes_sum", &[], 502.0).await;
}

#[tokio::test]
async fn a_request_abandoned_midway_still_ends_its_plugin_context() {
    let mut plugin = config("abandoned", "pause_forever.wat");
    plugin.pause_timeout_ms = 60_000;
    let host = Host::new(&[plugin]);
    // The client gives up while the plugin holds the request paused.
    let gave_up =
        tokio::time::timeout(std::time::Duration::from_millis(50), host.get("/", &[])).await;
    assert!(gave_up.is_err());
    let deleted = [("plugin", "abandoned"), ("callback", "proxy_on_delete")];
    assert_eq!(
        host.scrape()
            .value("sidecar_plugin_callbacks_total", &deleted),
        Some(1.0)
    );
    let logged = [("plugin", "abandoned"), ("callback", "proxy_on_log")];
    assert_eq!(
        host.scrape()
            .value("sidecar_plugin_callbacks_total", &logged),
        Some(1.0)
    );
}
