//! Static checks of the dashboards' queries (no server needed): valid PromQL once Grafana's
//! variables are substituted, Grafana windows instead of literal ones (seed queries excepted),
//! quantiles that keep `le`, metric names from the contract (docs/metrics.md) or our recording
//! rules, each documented family on exactly the dashboards its "read by" column names, and
//! every seed query present verbatim. The end-to-end test runs the same queries against a real
//! Prometheus.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::BTreeSet;

use e2e::{
    contract::{self, Contract},
    dashboard::Dashboard,
    promql::{self, Macros},
    rules,
};

fn dashboards() -> Vec<Dashboard> {
    Dashboard::load_all().expect("dashboards load")
}

fn contract() -> Contract {
    Contract::load().expect("the metric contract loads")
}

#[test]
fn every_query_is_valid_promql_after_substitution() {
    let m = Macros::default();
    for d in dashboards() {
        for q in d.queries() {
            let s = promql::substitute(&q.expr, &m)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", d.file, q.panel));
            promql::parse(&s)
                .unwrap_or_else(|e| panic!("{} / {} {}: {e}", d.file, q.panel, q.ref_id));
        }
        for a in d.annotation_exprs() {
            promql::parse(&promql::substitute(&a, &m).unwrap())
                .unwrap_or_else(|e| panic!("{} annotation: {e}", d.file));
        }
        for (selector, label) in d.label_values_queries() {
            promql::parse(&selector)
                .unwrap_or_else(|e| panic!("{} variable on {label}: {e}", d.file));
        }
    }
}

#[test]
fn queries_use_grafana_windows_except_the_seed_ones_and_quantiles_keep_le() {
    let seed = contract().seed_queries;
    let guarded: Vec<String> = seed.iter().filter_map(|s| zero_guarded(s)).collect();
    for d in dashboards() {
        for q in d.queries() {
            if seed.contains(&q.expr) || guarded.contains(&q.expr) {
                continue;
            }
            // A literal window ignores the dashboard's time range and scrape interval.
            let literal = q
                .expr
                .split('[')
                .skip(1)
                .any(|part| part.starts_with(|c: char| c.is_ascii_digit()));
            assert!(
                !literal,
                "{} / {}: use [$__rate_interval] or [$interval], not a literal window: {}",
                d.file, q.panel, q.expr
            );
            if q.expr.contains("histogram_quantile(") {
                assert!(
                    q.expr.contains("by (le") || q.expr.contains("_le:"),
                    "{} / {}: histogram_quantile must aggregate `by (le, ...)`: {}",
                    d.file,
                    q.panel,
                    q.expr
                );
            }
        }
    }
}

#[test]
fn every_metric_a_dashboard_reads_is_documented_or_recorded() {
    let mut known = contract().documented_series();
    known.extend(rules::recorded_names().expect("rules load"));
    let m = Macros::default();
    for d in dashboards() {
        for (what, expr) in d.all_exprs() {
            for name in promql::metric_names(&promql::substitute(&expr, &m).unwrap()).unwrap() {
                assert!(
                    known.contains(&name),
                    "{} / {what}: metric {name} is neither documented in {} nor recorded",
                    d.file,
                    contract::DOC
                );
            }
        }
    }
}

/// The dashboards cover the contract: each documented family is on exactly the dashboards its
/// "read by" column names (and a family no dashboard shows says so).
#[test]
fn each_documented_family_is_on_the_dashboards_the_contract_names() {
    let contract = contract();
    let readers = contract::readers(&contract).expect("dashboards and rules load");
    for family in &contract.families {
        let documented: BTreeSet<&String> = (family.read_by.iter())
            .filter(|f| f.ends_with(".json"))
            .collect();
        let actual: BTreeSet<&String> = (readers.iter())
            .filter(|(file, families)| file.ends_with(".json") && families.contains(&family.name))
            .map(|(file, _)| file)
            .collect();
        assert_eq!(
            documented,
            actual,
            "{}: the dashboards it names for {} (left) are not those that read it (right)",
            contract::DOC,
            family.name
        );
    }
}

#[test]
fn the_seed_queries_are_all_on_a_dashboard_verbatim() {
    let all: BTreeSet<String> = dashboards()
        .iter()
        .flat_map(Dashboard::queries)
        .map(|q| q.expr)
        .collect();
    for seed in &contract().seed_queries {
        assert!(
            all.contains(seed) || zero_guarded(seed).is_some_and(|guarded| all.contains(&guarded)),
            "seed query missing from the dashboards: {seed}"
        );
    }
}

/// A seed ratio `(A / B) * 100` whose numerator may have no series at all (no 5xx yet), as a
/// panel shows it: `((A or on() vector(0)) / B) * 100`, 0 % instead of no data.
fn zero_guarded(seed: &str) -> Option<String> {
    let (numerator, rest) = seed.strip_prefix('(')?.split_once(" / ")?;
    Some(format!("(({numerator} or on() vector(0)) / {rest}"))
}

#[test]
fn a_zero_guarded_seed_ratio_is_the_seed_with_its_numerator_guarded() {
    assert_eq!(
        zero_guarded("(sum(rate(a[5m])) / sum(rate(b[5m]))) * 100").as_deref(),
        Some("((sum(rate(a[5m])) or on() vector(0)) / sum(rate(b[5m]))) * 100")
    );
    assert_eq!(zero_guarded("sum(rate(a[5m]))"), None);
}
