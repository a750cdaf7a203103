//! Where things are: the repository root, the built binaries, the plugins, the tools.
//!
//! `CARGO_BIN_EXE_*` only exists for a crate's own binaries, so the api and sidecar binaries
//! are found next to the test executable (`target/<profile>/deps/e2e-… → target/<profile>/`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The repository root (the workspace directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in a workspace")
        .to_path_buf()
}

/// A path inside the repository.
pub fn path(relative: &str) -> PathBuf {
    root().join(relative)
}

/// Reads a repository file as text, naming it in the error.
///
/// # Errors
/// If the file cannot be read.
pub fn read(relative: &str) -> anyhow::Result<String> {
    let p = path(relative);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// A workspace binary (`api`, `sidecar`) of the same profile as the running test.
///
/// # Errors
/// When it was not built, saying which command builds it.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    for dir in exe.ancestors().skip(1).take(3) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "binary `{name}` not found next to {} : run `cargo build --workspace --bins` first",
        exe.display()
    )
}

/// The example plugins the stack's sidecar config loads.
///
/// # Errors
/// When `plugins/dist/*.wasm` is missing: run `plugins/build`.
pub fn plugins() -> anyhow::Result<Vec<PathBuf>> {
    let wanted = ["items-business", "client-slo", "as-status"];
    let mut out = Vec::new();
    for name in wanted {
        let p = path(&format!("plugins/dist/{name}.wasm"));
        if !p.is_file() {
            bail!("{} is missing: run plugins/build", p.display());
        }
        out.push(p);
    }
    Ok(out)
}

/// An installed program (`/usr/bin/prometheus`, `python3`), found on PATH.
///
/// # Errors
/// When it is not installed, naming the package that provides it.
pub fn program(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("`{name}` is not installed: apt-get install {package} (scripts/setup does)")
}
