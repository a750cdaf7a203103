//! `promtool check metrics`: Prometheus' own linter over a classic-text exposition, the check a
//! user runs with `curl -s .../metrics | promtool check metrics`.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// Runs `promtool check metrics` on `text`; `Ok` when it reports nothing.
///
/// # Errors
/// If promtool is missing (install Debian's `prometheus` package: `scripts/setup` does), fails,
/// or reports any problem.
pub fn check_metrics(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running promtool: install Debian's `prometheus` package (scripts/setup does)")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())
        .context("writing to promtool")?;
    let output = child.wait_with_output().context("waiting for promtool")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() || !report.trim().is_empty() {
        bail!("promtool check metrics ({}):\n{report}", output.status);
    }
    Ok(())
}
