//! The Proxy-Wasm modules `plugins/build` puts in `plugins/dist/` (the example plugins and the
//! test ones), for the tests that load them.

use std::path::{Path, PathBuf};

/// `plugins/dist/<name>.wasm`, failing loudly when the build step was skipped.
///
/// # Panics
/// When the module is missing: `plugins/build` has not run.
pub fn dist(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run plugins/build (builds the example plugins for wasm32-unknown-unknown)",
        path.display()
    );
    path
}
