//! The metric contract, read from `docs/metrics.md`: its family tables (name, type, labels,
//! who exposes it, when it is present, which dashboards and rule files read it) and its list of
//! seed queries. The doc is the source of truth; the tests hold the code, the dashboards and the
//! rules to it (a real scrape in `end_to_end`, the files in `dashboard_queries` and
//! `prometheus_config`).
//!
//! - [`Contract`]: the parsed doc; [`Family`]: one row of its tables.
//! - [`readers`]: which documented families each dashboard and rule file really reads.
//! - `markdown`: the doc's tables and seed query block, parsed strictly.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;

use crate::workspace;

mod markdown;

/// Where the contract lives, relative to the repository root.
pub const DOC: &str = "docs/metrics.md";

/// What kind of family a documented metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exposed as the name given (counters are listed with their `_total`).
    Plain,
    /// Exposed as `_bucket`, `_sum` and `_count` series.
    Histogram,
}

/// Who writes a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Process {
    /// The items API (`/metrics` on its own port).
    Api,
    /// The sidecar (`/metrics` on its admin port).
    Sidecar,
    /// Prometheus itself (`up`, `ALERTS`, ...): read by dashboards and rules, exported by no one.
    Prometheus,
}

impl Process {
    /// The name the doc uses.
    pub fn name(self) -> &'static str {
        match self {
            Process::Api => "api",
            Process::Sidecar => "sidecar",
            Process::Prometheus => "prometheus",
        }
    }
}

/// When a family has series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Present {
    /// From the first scrape (at 0 where nothing happened yet).
    StartUp,
    /// After the first request through the sidecar.
    Traffic,
    /// Only once what it counts has happened; a healthy stack may never show it.
    Event,
}

/// One documented family.
#[derive(Clone, Debug)]
pub struct Family {
    /// Exposed name: counters with their `_total`, histograms without suffix.
    pub name: String,
    /// `counter`, `gauge`, `histogram` or `info`.
    pub metric_type: String,
    /// Label names the family may carry (`le` on buckets not included).
    pub labels: BTreeSet<String>,
    /// Who writes it.
    pub exposed_by: Vec<Process>,
    /// When it has series.
    pub present: Present,
    /// Dashboard (`*.json`) and rule (`*.yml`) file names whose queries read it.
    pub read_by: BTreeSet<String>,
}

impl Family {
    /// Plain or histogram.
    pub fn kind(&self) -> Kind {
        if self.metric_type == "histogram" {
            Kind::Histogram
        } else {
            Kind::Plain
        }
    }

    /// Every series name the family is exposed as.
    pub fn series(&self) -> Vec<String> {
        match self.kind() {
            Kind::Plain => vec![self.name.clone()],
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{}{s}", self.name))
                .collect(),
        }
    }

    /// The one series whose presence shows the family is exposed (`_count` of a histogram).
    pub fn witness(&self) -> String {
        match self.kind() {
            Kind::Plain => self.name.clone(),
            Kind::Histogram => format!("{}_count", self.name),
        }
    }

    /// Whether `process` writes it.
    pub fn exposed_by(&self, process: Process) -> bool {
        self.exposed_by.contains(&process)
    }
}

/// `docs/metrics.md`, parsed.
#[derive(Clone, Debug)]
pub struct Contract {
    /// Every family of every table, in the doc's order.
    pub families: Vec<Family>,
    /// The seed queries, verbatim, in the doc's order.
    pub seed_queries: Vec<String>,
}

impl Contract {
    /// Reads and parses `docs/metrics.md`.
    ///
    /// # Errors
    /// If the file is unreadable or a table row or the seed query block is malformed.
    pub fn load() -> anyhow::Result<Contract> {
        markdown::parse(&workspace::read(DOC)?).with_context(|| format!("parsing {DOC}"))
    }

    /// The families `process` exports.
    pub fn exported_by(&self, process: Process) -> impl Iterator<Item = &Family> {
        self.families.iter().filter(move |f| f.exposed_by(process))
    }

    /// The family a series name belongs to (`x_bucket` → histogram `x`).
    pub fn family_of(&self, series: &str) -> Option<&Family> {
        self.families
            .iter()
            .find(|f| f.series().iter().any(|s| s == series))
    }

    /// Every series name the documented families expose (histograms expanded), Prometheus'
    /// own series included.
    pub fn documented_series(&self) -> BTreeSet<String> {
        self.families.iter().flat_map(Family::series).collect()
    }
}

/// The documented families each dashboard and rule file reads: file name → family names.
/// Names a file reads that are no documented family (recording rules) are left out.
///
/// # Errors
/// If a dashboard or rule file does not load or holds an expression that does not parse.
pub fn readers(contract: &Contract) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    use crate::{dashboard::Dashboard, promql, rules};

    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut read = |file: &str, expr: &str| -> anyhow::Result<()> {
        let names = promql::metric_names(expr).with_context(|| format!("{file}: {expr}"))?;
        let families = out.entry(file.to_owned()).or_default();
        families.extend(
            names
                .iter()
                .filter_map(|n| contract.family_of(n))
                .map(|f| f.name.clone()),
        );
        Ok(())
    };
    let macros = promql::Macros::default();
    for d in Dashboard::load_all()? {
        for (_, expr) in d.all_exprs() {
            read(&d.file, &promql::substitute(&expr, &macros)?)?;
        }
    }
    for (file, rule_file) in rules::load()? {
        for rule in rule_file.groups.iter().flat_map(|g| &g.rules) {
            read(&file, &rule.expr)?;
        }
    }
    Ok(out)
}
