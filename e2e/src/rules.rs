//! The rule files of `prometheus/rules/`: recording rules and alerts with their expressions.

use anyhow::Context;
use serde::Deserialize;

use crate::workspace;

/// One rule file.
#[derive(Debug, Deserialize)]
pub struct RuleFile {
    /// Its groups.
    pub groups: Vec<Group>,
}

/// A rule group.
#[derive(Debug, Deserialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Deserialize)]
pub struct Rule {
    /// Set on recording rules.
    pub record: Option<String>,
    /// Set on alerting rules.
    pub alert: Option<String>,
    /// The PromQL.
    pub expr: String,
    /// Alert annotations.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Alert labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Every `*.yml` file of `prometheus/rules`, with its file name.
///
/// # Errors
/// If a file is unreadable or not a rule file.
pub fn load() -> anyhow::Result<Vec<(String, RuleFile)>> {
    let dir = workspace::path("prometheus/rules");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let text = workspace::read(&format!("prometheus/rules/{n}"))?;
            let file: RuleFile = serde_yaml::from_str(&text)
                .with_context(|| format!("parsing prometheus/rules/{n}"))?;
            Ok((n, file))
        })
        .collect()
}

/// All rules of all files.
///
/// # Errors
/// As [`load`].
pub fn all() -> anyhow::Result<Vec<Rule>> {
    Ok(load()?
        .into_iter()
        .flat_map(|(_, f)| f.groups)
        .flat_map(|g| g.rules)
        .collect())
}

/// Names of the recording rules.
///
/// # Errors
/// As [`load`].
pub fn recorded_names() -> anyhow::Result<Vec<String>> {
    Ok(all()?.into_iter().filter_map(|r| r.record).collect())
}
