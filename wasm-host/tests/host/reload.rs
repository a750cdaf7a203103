//! Reloading the plugin set: unchanged plugins stay warm, a failure changes nothing.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use wasm_host::test_support::snapshot;
use wasm_host::{PluginConfig, PluginSet, WasmRuntime};

use crate::support::config;

fn set(configs: &[PluginConfig]) -> PluginSet {
    let runtime = WasmRuntime::new(
        &mut Registry::default(),
        &wasm_host::CompileOptions::default(),
    )
    .unwrap();
    PluginSet::load(runtime, configs, None).unwrap()
}

#[tokio::test]
async fn an_unchanged_plugin_keeps_its_instances_and_a_changed_one_is_reloaded() {
    let stable = config("stable", "shared_tick_local.wat");
    let mut changing = config("changing", "headers_properties_metrics.wat");
    changing.configuration = "first".into();
    let plugins = set(&[stable.clone(), changing.clone()]);
    let before = snapshot(&plugins);

    changing.configuration = "second".into();
    plugins.reload(&[stable, changing]).unwrap();
    let after = snapshot(&plugins);
    assert!(
        Arc::ptr_eq(&before[0], &after[0]),
        "same entry, same bytes: kept"
    );
    assert!(
        !Arc::ptr_eq(&before[1], &after[1]),
        "new configuration: reloaded"
    );
    assert_eq!(after[1].config().configuration, "second");
}

#[tokio::test]
async fn a_reload_with_a_broken_plugin_changes_nothing() {
    let good = config("good", "shared_tick_local.wat");
    let plugins = set(std::slice::from_ref(&good));
    let before = snapshot(&plugins);

    let missing = PluginConfig::new("missing", "/nonexistent/plugin.wasm");
    let error = plugins.reload(&[good.clone(), missing]).unwrap_err();
    assert!(
        format!("{error:#}").contains("/nonexistent/plugin.wasm"),
        "{error:#}"
    );
    let refused = plugins
        .reload(&[good, config("old-abi", "abi_0_1_0.wat")])
        .unwrap_err();
    assert!(
        format!("{refused:#}").contains("unsupported Proxy-Wasm ABI version"),
        "{refused:#}"
    );
    let after = snapshot(&plugins);
    assert_eq!(after.len(), 1);
    assert!(Arc::ptr_eq(&before[0], &after[0]));
}

#[tokio::test]
async fn removing_a_plugin_from_the_configuration_unloads_it() {
    let plugins = set(&[
        config("a", "shared_tick_local.wat"),
        config("b", "memory_protocol.wat"),
    ]);
    plugins
        .reload(&[config("b", "memory_protocol.wat")])
        .unwrap();
    let names: Vec<String> = snapshot(&plugins)
        .iter()
        .map(|p| p.config().name.clone())
        .collect();
    assert_eq!(names, ["b"]);
}
