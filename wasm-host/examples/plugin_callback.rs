//! The cost of calling into a Proxy-Wasm plugin, measured with a hand timing loop (used by
//! `bench/plugins.sh`):
//!
//! 1. one callback round trip as the filter makes it (slot lock, context switch, epoch deadline,
//!    guest call, host metrics), with a guest that returns at once;
//! 2. one hostcall from inside the guest (`proxy_get_current_time_nanoseconds` in a loop);
//! 3. a whole request through the plugin layer in-process (stub upstream, no sockets, the route
//!    template set as the sidecar sets it) with no plugin, then with each example plugin from
//!    `plugins/dist/`.
//!
//! Each figure is the fastest of five rounds; the request rounds interleave the configurations.
//! The allocator is the sidecar's (mimalloc), so the figures are what the sidecar pays. Run with
//! `cargo run --release -p wasm-host --example plugin_callback`.
//!
//! With `PLUGIN_CALLBACK_BEFORE_DIST=<dir>` the example plugins are also loaded from `dir` (another
//! build of them, e.g. with other compiler settings) and timed as `before:` rows in the same
//! interleaved rounds: an A/B of two builds of the guests with the same host.
//!
//! With `PLUGIN_CALLBACK_ONLY=<label prefix>` and `PLUGIN_CALLBACK_REQUESTS=<n>` it times
//! nothing: it sends `n` requests through that one configuration and exits, so that a counter
//! outside the process (`bench/plugin-allocs.sh` counts calls into the allocator) sees one
//! configuration's work, and two runs of different `n` give its cost per request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use prometheus_client::registry::Registry;
use tower::{Layer, ServiceExt};
use wasm_host::test_support::HandDriven;
use wasm_host::{Body, PluginConfig, PluginLayer, PluginSet, RouteTemplate, WasmRuntime, full};

// The sidecar's allocator: per-request allocations cost what they cost there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GUEST: &str = r#"(module
  (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 4096))
  ;; returns Continue at once, unless asked (num_headers = 1000) to make 1000 hostcalls
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param i32) (result i32)
    (local $i i32)
    (if (i32.eq (local.get $n) (i32.const 1000))
      (then (loop $again
        (drop (call $now (i32.const 64)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))))
    (i32.const 0)))"#;

/// Each figure is the fastest of this many timed rounds: on a shared machine the minimum is
/// the estimate least disturbed by other processes.
const ROUNDS: usize = 5;

fn per_call(label: &str, iterations: u32, total: std::time::Duration, divisor: u32) {
    let ns = total.as_nanos() as f64 / f64::from(iterations) / f64::from(divisor);
    println!("{label:<58} {ns:>10.0} ns");
}

type Service = tower::util::BoxCloneService<Request<Body>, Response<Body>, Infallible>;

fn service(runtime: &Arc<WasmRuntime>, plugins: &[PluginConfig]) -> Service {
    let set = PluginSet::load(runtime.clone(), plugins, None).expect("plugins load");
    let upstream = tower::service_fn(|_request: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(full(r#"{"id":1,"nom":"x","prix":12.5}"#)))
    });
    tower::util::BoxCloneService::new(PluginLayer::new(set).layer(upstream))
}

async fn requests(service: &Service, iterations: u32) -> std::time::Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        // Routed as the sidecar's RED layer routes it, so plugins that read `route_name` (as
        // client-slo does in `on_log`) do their whole work.
        let request = Request::post("/items")
            .extension(RouteTemplate(Arc::from("/items")))
            .header("user-agent", "wrk/4.2")
            .header("content-type", "application/json")
            .body(full(r#"{"nom":"x","prix":12.5}"#))
            .expect("valid request");
        let response = service.clone().oneshot(request).await.expect("infallible");
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
    }
    started.elapsed()
}

/// Requests through the plugin layer, every configuration once per round (interleaved, so a
/// change in the machine's load touches them all alike), fastest round of each.
async fn requests_per_plugin(configurations: &[(&str, Service)]) {
    let iterations = 10_000;
    let mut fastest = vec![std::time::Duration::MAX; configurations.len()];
    for round in 0..=ROUNDS {
        for ((_, service), fastest) in configurations.iter().zip(&mut fastest) {
            let took = requests(service, iterations).await;
            if round > 0 {
                *fastest = (*fastest).min(took); // round 0 warms up
            }
        }
    }
    for ((label, _), took) in configurations.iter().zip(fastest) {
        per_call(
            &format!("request through the plugin layer: {label}"),
            iterations,
            took,
            1,
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let guest = dir.path().join("bench.wat");
    std::fs::write(&guest, GUEST)?;
    let mut registry = Registry::default();
    let runtime = WasmRuntime::new(&mut registry, &wasm_host::CompileOptions::default())?;
    let only = std::env::var("PLUGIN_CALLBACK_ONLY").ok();
    if only.is_none() {
        time_calls(&runtime, &guest)?;
    }

    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    let mut empty = PluginConfig::new("empty", &guest);
    empty.instances = 1;
    let mut configurations = vec![
        ("no plugin", service(&runtime, &[])),
        ("empty guest (host overhead)", service(&runtime, &[empty])),
    ];
    let labels = ["client-slo", "items-business (bodies)", "both"];
    if !examples(&runtime, &dist, labels, &mut configurations) {
        eprintln!(
            "plugins/dist/*.wasm missing: run plugins/build for the per-plugin request costs"
        );
    }
    if let Some(before) = std::env::var_os("PLUGIN_CALLBACK_BEFORE_DIST") {
        let labels = [
            "before: client-slo",
            "before: items-business",
            "before: both",
        ];
        let before = std::path::PathBuf::from(before);
        if !examples(&runtime, &before, labels, &mut configurations) {
            anyhow::bail!(
                "PLUGIN_CALLBACK_BEFORE_DIST={} holds no client-slo.wasm and items-business.wasm",
                before.display()
            );
        }
    }
    match only {
        None => requests_per_plugin(&configurations).await,
        Some(only) => {
            let (_, service) = (configurations.iter())
                .find(|(label, _)| label.starts_with(&only))
                .ok_or_else(|| anyhow::anyhow!("no configuration named {only:?}"))?;
            let count = std::env::var("PLUGIN_CALLBACK_REQUESTS")?.parse()?;
            requests(service, count).await;
        }
    }
    Ok(())
}

/// Adds client-slo, items-business and both, loaded from `dir`, under `labels`; false if `dir`
/// does not hold them.
fn examples(
    runtime: &Arc<WasmRuntime>,
    dir: &std::path::Path,
    labels: [&'static str; 3],
    configurations: &mut Vec<(&'static str, Service)>,
) -> bool {
    let example = |name: &str| {
        let mut config = PluginConfig::new(name, dir.join(format!("{name}.wasm")));
        config.instances = 1;
        config.request_body = name == "items-business";
        config.response_body = name == "items-business";
        config
    };
    if !(dir.join("client-slo.wasm").is_file() && dir.join("items-business.wasm").is_file()) {
        return false;
    }
    let (slo, items) = (example("client-slo"), example("items-business"));
    configurations.push((labels[0], service(runtime, std::slice::from_ref(&slo))));
    configurations.push((labels[1], service(runtime, std::slice::from_ref(&items))));
    configurations.push((labels[2], service(runtime, &[slo, items])));
    true
}

/// One callback round trip and one hostcall, timed with the bench guest.
fn time_calls(runtime: &Arc<WasmRuntime>, guest: &std::path::Path) -> anyhow::Result<()> {
    let mut config = PluginConfig::new("bench", guest);
    config.instances = 1;
    let set = PluginSet::load(runtime.clone(), &[config], None)?;
    let driven = HandDriven::start(&set).expect("the bench guest starts");
    let call = |headers: usize| assert!(driven.on_request_headers(headers), "no fault");
    for _ in 0..10_000 {
        call(0);
    }
    let fastest = |iterations: u32, headers: usize| {
        (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..iterations {
                    call(headers);
                }
                started.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let label = "callback round trip (proxy_on_request_headers, empty guest)";
    per_call(label, 100_000, fastest(100_000, 0), 1);
    let label = "hostcall round trip (proxy_get_current_time_nanoseconds)";
    per_call(label, 1_000, fastest(1_000, 1000), 1000);
    Ok(())
}
