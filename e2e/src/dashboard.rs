//! The provisioned dashboards (`grafana/dashboards/*.json`), walked panel by panel.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::workspace;

/// One dashboard file.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// File name, e.g. `red.json`.
    pub file: String,
    /// The parsed JSON.
    pub json: Value,
}

/// One query of one panel.
#[derive(Clone, Debug)]
pub struct PanelQuery {
    /// Dashboard file name.
    pub file: String,
    /// Panel title.
    pub panel: String,
    /// Panel id.
    pub panel_id: i64,
    /// Target refId.
    pub ref_id: String,
    /// The PromQL, with Grafana's variables unsubstituted.
    pub expr: String,
}

impl Dashboard {
    /// Every dashboard of `grafana/dashboards`, sorted by file name.
    ///
    /// # Errors
    /// If the directory is unreadable or a file is not JSON.
    pub fn load_all() -> anyhow::Result<Vec<Dashboard>> {
        let dir = workspace::path("grafana/dashboards");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no dashboards in {}", dir.display());
        }
        files
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let json = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", p.display()))?;
                let file = p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Ok(Dashboard { file, json })
            })
            .collect()
    }

    /// The dashboard's uid ("" when missing).
    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or("")
    }

    /// Every panel, rows' children included, in document order.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for p in panels.as_array().into_iter().flatten() {
                out.push(p);
                walk(&p["panels"], out);
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// Every target of every panel.
    pub fn queries(&self) -> Vec<PanelQuery> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(PanelQuery {
                    file: self.file.clone(),
                    panel: p["title"].as_str().unwrap_or("").to_owned(),
                    panel_id: p["id"].as_i64().unwrap_or(-1),
                    ref_id: t["refId"].as_str().unwrap_or("").to_owned(),
                    expr: t["expr"].as_str().unwrap_or("").to_owned(),
                });
            }
        }
        out
    }

    /// The templating variables.
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    /// PromQL of the annotations (the built-in Grafana one has none).
    pub fn annotation_exprs(&self) -> Vec<String> {
        self.json["annotations"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["expr"].as_str().map(str::to_owned))
            .collect()
    }

    /// The PromQL inside `label_values(<selector>, label)` query variables: `(selector, label)`.
    pub fn label_values_queries(&self) -> Vec<(String, String)> {
        self.variables()
            .into_iter()
            .filter(|v| v["type"] == "query")
            .filter_map(|v| {
                let q = v["query"]["query"].as_str().or(v["query"].as_str())?;
                let inner = q.strip_prefix("label_values(")?.strip_suffix(')')?;
                let (selector, label) = inner.rsplit_once(',')?;
                Some((selector.trim().to_owned(), label.trim().to_owned()))
            })
            .collect()
    }

    /// Every PromQL expression the dashboard evaluates, with where it stands: panel queries
    /// (by panel title), annotation queries, and the selectors of query variables.
    pub fn all_exprs(&self) -> Vec<(String, String)> {
        let mut exprs: Vec<(String, String)> = self
            .queries()
            .into_iter()
            .map(|q| (q.panel, q.expr))
            .collect();
        exprs.extend(
            self.annotation_exprs()
                .into_iter()
                .map(|a| ("annotation".to_owned(), a)),
        );
        exprs.extend(
            self.label_values_queries()
                .into_iter()
                .map(|(s, l)| (format!("variable {l}"), s)),
        );
        exprs
    }
}
