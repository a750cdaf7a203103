//! A plugin in a second language: `plugins/as-status`, written in AssemblyScript with
//! `@solo-io/proxy-runtime` 0.1.8 and built by `plugins/build`: the runtime's known trap on an
//! empty plugin configuration makes the load fail (the documented workaround: give it a
//! non-empty one). The plugin at work in the sidecar is `sidecar/tests/plugins/assemblyscript.rs`.

use wasm_host::PluginConfig;

use crate::support::{Host, dist};

#[test]
fn the_runtime_traps_on_an_empty_configuration_so_the_load_fails() {
    let config = PluginConfig::new("as-status", dist("as-status"));
    let error = match Host::try_new(&[config]) {
        Ok(_) => panic!("an empty configuration loaded"),
        Err(error) => format!("{error:#}"),
    };
    // The runtime reads a (0, 0) buffer as a pointer at 0 and faults: the known 0.1.8 bug.
    assert!(
        error.contains("starting the plugin failed")
            && error.contains("out of bounds memory access"),
        "{error}"
    );
}
