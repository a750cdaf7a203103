//! Static checks of the provisioned Grafana dashboards' structure (no server needed): uids and
//! titles, the datasource, interval and handler variables, every panel's datasource, unit,
//! thresholds, description, legend and unique id.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::BTreeSet;

use e2e::dashboard::Dashboard;
use serde_json::Value;

const PANEL_TYPES: &[&str] = &[
    "timeseries",
    "stat",
    "gauge",
    "bargauge",
    "table",
    "heatmap",
    "piechart",
    "row",
    "text",
];
const UNITS: &[&str] = &[
    "reqps",
    "ops",
    "s",
    "ms",
    "percentunit",
    "percent",
    "short",
    "none",
    "bytes",
];
const SCHEMA_MIN: i64 = 36;
/// The newest classic schema (Grafana 12/13); compose pins Grafana 11.6, which writes 41.
const SCHEMA_MAX: i64 = 41;

fn dashboards() -> Vec<Dashboard> {
    Dashboard::load_all().expect("dashboards load")
}

#[test]
fn there_are_the_five_dashboards_with_unique_valid_uids_and_titles() {
    let all = dashboards();
    let uids: Vec<&str> = all.iter().map(Dashboard::uid).collect();
    assert_eq!(
        uids,
        [
            "redside-business",
            "redside-database",
            "redside-http-overview",
            "redside-red",
            "redside-sidecar"
        ],
        "one dashboard per file, sorted by file name"
    );
    let mut titles = BTreeSet::new();
    for d in &all {
        let uid = d.uid();
        assert!(
            (1..=40).contains(&uid.len())
                && uid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{}: bad uid {uid:?}",
            d.file
        );
        let title = d.json["title"].as_str().unwrap_or("");
        assert!(
            !title.is_empty() && titles.insert(title.to_owned()),
            "{}: empty or duplicate title",
            d.file
        );
        let v = d.json["schemaVersion"].as_i64().unwrap_or(0);
        assert!(
            (SCHEMA_MIN..=SCHEMA_MAX).contains(&v),
            "{}: schemaVersion {v}",
            d.file
        );
        assert!(
            d.json.get("id").is_none_or(Value::is_null),
            "{}: a provisioned dashboard has no id",
            d.file
        );
        assert!(
            d.json["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&Value::from("redside"))),
            "{}: tag redside",
            d.file
        );
    }
}

#[test]
fn every_dashboard_has_the_datasource_and_interval_variables_and_no_import_placeholders() {
    for d in dashboards() {
        let text = serde_json::to_string(&d.json).unwrap();
        assert!(
            !text.contains("${DS_") && d.json.get("__inputs").is_none(),
            "{}: __inputs placeholders",
            d.file
        );
        let vars = d.variables();
        let ds: Vec<_> = vars.iter().filter(|v| v["type"] == "datasource").collect();
        assert_eq!(ds.len(), 1, "{}: exactly one datasource variable", d.file);
        assert_eq!(ds[0]["name"], "datasource", "{}", d.file);
        assert_eq!(ds[0]["query"], "prometheus", "{}", d.file);
        assert!(
            vars.iter()
                .any(|v| v["type"] == "interval" && v["name"] == "interval"),
            "{}: interval variable",
            d.file
        );
        for v in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(
                v["datasource"]["uid"], "${datasource}",
                "{}: variable {} datasource",
                d.file, v["name"]
            );
            assert_eq!(
                v["allValue"], ".*",
                "{}: variable {} needs allValue .*",
                d.file, v["name"]
            );
        }
        // Every $variable used in a query is defined (or is a Grafana macro).
        let defined: BTreeSet<String> = vars
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_owned))
            .collect();
        for q in d.queries() {
            for var in used_variables(&q.expr) {
                assert!(
                    var.starts_with("__") || defined.contains(&var),
                    "{} / {}: ${var} is not a variable of the dashboard",
                    d.file,
                    q.panel
                );
            }
        }
    }
}

fn used_variables(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        rest = &rest[i + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

#[test]
fn a_handler_variable_from_label_values_where_panels_filter_on_it() {
    for d in dashboards() {
        let uses = d.queries().iter().any(|q| q.expr.contains("$handler"));
        let var = d.variables().into_iter().find(|v| v["name"] == "handler");
        if uses {
            let var =
                var.unwrap_or_else(|| panic!("{}: uses $handler without the variable", d.file));
            assert!(
                var["definition"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("label_values("),
                "{}",
                d.file
            );
            assert_eq!(var["multi"], true, "{}", d.file);
        }
    }
    // HTTP dashboards must offer it.
    for d in dashboards()
        .iter()
        .filter(|d| ["redside-http-overview", "redside-red"].contains(&d.uid()))
    {
        assert!(
            d.queries().iter().any(|q| q.expr.contains("$handler")),
            "{}: no panel filters on $handler",
            d.file
        );
    }
}

#[test]
fn every_panel_uses_the_datasource_variable_has_a_unit_a_description_and_unique_ids() {
    for d in dashboards() {
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        let mut query_sets = BTreeSet::new();
        for p in d.panels() {
            let title = p["title"].as_str().unwrap_or("");
            let kind = p["type"].as_str().unwrap_or("");
            let id = p["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("{} / {title}: no integer id", d.file));
            assert!(ids.insert(id), "{}: duplicate panel id {id}", d.file);
            assert!(
                PANEL_TYPES.contains(&kind),
                "{} / {title}: panel type {kind:?} (Angular or unknown)",
                d.file
            );
            assert!(!title.is_empty(), "{}: panel {id} has no title", d.file);
            if kind == "row" || kind == "text" {
                continue;
            }
            assert!(
                titles.insert(title.to_owned()),
                "{}: duplicate panel title {title:?}",
                d.file
            );
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{} / {title}: panel datasource",
                d.file
            );
            assert_eq!(
                p["datasource"]["type"], "prometheus",
                "{} / {title}",
                d.file
            );
            assert!(
                p["description"].as_str().is_some_and(|s| s.len() > 10),
                "{} / {title}: description",
                d.file
            );
            let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
            assert!(
                UNITS.contains(&unit),
                "{} / {title}: unit {unit:?} not in {UNITS:?}",
                d.file
            );
            let steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"].as_array();
            assert!(
                steps.is_some_and(|s| !s.is_empty() && s[0]["value"].is_null()),
                "{} / {title}: thresholds",
                d.file
            );
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{} / {title}: no targets", d.file));
            assert!(!targets.is_empty(), "{} / {title}: no targets", d.file);
            let mut refs = BTreeSet::new();
            let mut exprs = Vec::new();
            for t in targets {
                let r = t["refId"].as_str().unwrap_or("");
                assert!(
                    !r.is_empty() && refs.insert(r),
                    "{} / {title}: empty or duplicate refId",
                    d.file
                );
                assert_eq!(
                    t["datasource"]["uid"], "${datasource}",
                    "{} / {title} {r}: target datasource",
                    d.file
                );
                let expr = t["expr"].as_str().unwrap_or("");
                assert!(
                    !expr.trim().is_empty(),
                    "{} / {title} {r}: empty expr",
                    d.file
                );
                if kind != "table" {
                    assert!(
                        t["legendFormat"].as_str().is_some_and(|l| !l.is_empty()),
                        "{} / {title} {r}: a readable legend is required",
                        d.file
                    );
                }
                exprs.push(expr.to_owned());
            }
            exprs.sort();
            assert!(
                query_sets.insert(exprs.clone()),
                "{} / {title}: same queries as another panel: {exprs:?}",
                d.file
            );
        }
    }
}
