//! Where modules are compiled: a child compiler that fails leaves the work to this process,
//! and a broken module still fails with the compiler's own error. (A child that succeeds is the
//! sidecar binary compiling for itself: `sidecar/tests/it/process.rs`.)

use prometheus_client::registry::Registry;
use wasm_host::test_support::snapshot;
use wasm_host::{ChildCommand, CompileOptions, PluginConfig, PluginSet, WasmRuntime};

use crate::support::config;

/// A child that says why it cannot compile and exits 3, whatever it is given.
fn failing_child(cache_dir: &std::path::Path) -> CompileOptions {
    CompileOptions {
        cache_dir: Some(cache_dir.to_owned()),
        child: Some(ChildCommand {
            program: "sh".into(),
            args: vec![
                "-c".into(),
                "echo no compiler here >&2; exit 3".into(),
                "sh".into(),
            ],
        }),
    }
}

#[tokio::test]
async fn a_failing_child_compiler_leaves_the_module_to_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(&mut Registry::default(), &failing_child(dir.path())).unwrap();
    let plugins = PluginSet::load(
        runtime,
        &[config("fallback", "headers_properties_metrics.wat")],
        None,
    )
    .unwrap();
    assert_eq!(snapshot(&plugins).len(), 1);
    let written = walk(dir.path());
    assert_eq!(
        written.len(),
        1,
        "compiled here, into the cache the child should have written: {written:?}"
    );
}

#[tokio::test]
async fn a_broken_module_fails_with_the_compilers_error_not_the_childs() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.wasm");
    std::fs::write(&broken, b"\0asm but not really").unwrap();
    let runtime = WasmRuntime::new(&mut Registry::default(), &failing_child(dir.path())).unwrap();
    let Err(error) = PluginSet::load(runtime, &[PluginConfig::new("broken", &broken)], None) else {
        panic!("a broken module loaded");
    };
    let message = format!("{error:#}");
    assert!(
        message.contains("compiling") && message.contains("broken.wasm"),
        "{message}"
    );
    assert!(!message.contains("no compiler here"), "{message}");
}

/// Compiled modules under `dir`: wasmtime names them by their hash, with no extension (its
/// usage statistics, writes in progress and cleanup lock have one).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_none() {
                found.push(path);
            }
        }
    }
    found
}
