//! Schema-driven fuzzing of the api from its own `/openapi.json` with schemathesis (pinned in
//! `e2e/schemathesis/requirements.txt`, installed into `.stack/venv` by
//! `e2e/schemathesis/install`), directly and through the sidecar (with the stack's config and
//! plugins), on a throwaway PostgreSQL. Every check schemathesis has (`--checks all`): no 5xx,
//! statuses, content types, headers and bodies as the document says, schema-valid requests
//! accepted and schema-invalid ones rejected, 405 with `Allow` for unlisted methods, created
//! resources readable and deleted ones gone. A bounded number of examples per operation keeps
//! both runs within about two minutes. A failure carries schemathesis' report; a schemathesis
//! that cannot be installed fails the test, it is never skipped.
//!
//! Needs `cargo build --workspace --bins`, `plugins/build`, PostgreSQL, python3-venv and PyPI
//! (or schemathesis already in `.stack/venv`).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::{path::PathBuf, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use e2e::{stack::Stack, workspace};

/// Test cases per operation and phase: enough to hit every rule of the body and the parameters
/// (schemathesis' coverage phase adds the boundary values on top), small enough for CI.
const MAX_EXAMPLES: &str = "50";
/// A fixed seed: a failure is reproducible with the command in the report.
const SEED: &str = "15";
/// One run may not take longer than this (20 to 40 s each on 2 cores).
const RUN_LIMIT: Duration = Duration::from_secs(150);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_agrees_with_its_openapi_document_directly_and_through_the_sidecar() {
    let schemathesis = install().unwrap();
    let stack = Stack::start(&testkit::Postgres::shared().create_database())
        .await
        .unwrap();

    let mut failures = Vec::new();
    for (name, base) in [
        ("the api directly", format!("http://{}", stack.api_addr)),
        ("through the sidecar", stack.proxy_url.clone()),
    ] {
        let (passed, report) = fuzz(&schemathesis, &base).await.unwrap();
        eprintln!("schemathesis, {name} ({base}):\n{report}");
        if !passed {
            failures.push(format!(
                "schemathesis found problems, {name} ({base}):\n{report}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs `e2e/schemathesis/install` (a no-op when the pinned version is there) and returns the
/// schemathesis executable.
fn install() -> anyhow::Result<PathBuf> {
    let script = workspace::path("e2e/schemathesis/install");
    let out = std::process::Command::new(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): schemathesis is required (python3-venv and PyPI, or an existing .stack/venv):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = workspace::path(".stack/venv/bin/schemathesis");
    if !bin.is_file() {
        bail!("{} is missing after {}", bin.display(), script.display());
    }
    Ok(bin)
}

/// One schemathesis run against `base` with the document `base` serves; whether every check
/// passed, and its output.
async fn fuzz(schemathesis: &PathBuf, base: &str) -> anyhow::Result<(bool, String)> {
    let reports = tempfile::tempdir().context("tempdir for the report")?;
    let mut command = tokio::process::Command::new(schemathesis);
    command
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--checks", "all"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        // One worker: with several, CPython 3.11 (Debian 12's) fails in hypothesis' concurrent
        // `ast.parse` ("AST constructor recursion depth mismatch"), a Runtime Error, not a finding.
        .args(["--workers", "1", "--request-timeout", "15"])
        .arg("--report-dir")
        .arg(reports.path())
        // Wide output, no colours: the report is read in a test log.
        .env("NO_COLOR", "1")
        .env("COLUMNS", "160")
        .current_dir(reports.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .with_context(|| format!("schemathesis against {base} took longer than {RUN_LIMIT:?}"))?
        .context("running schemathesis")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), report))
}
