//! Static checks of the dashboards' queries (no server needed): valid PromQL once Grafana's
//! variables are substituted, Grafana windows instead of literal ones (seed queries excepted),
//! quantiles that keep `le`, metric names from the documented contract or our recording rules,
//! every documented metric on a dashboard, and every seed query present verbatim. The
//! end-to-end test runs the same queries against a real Prometheus.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::collections::BTreeSet;

use e2e::{
    contract,
    dashboard::Dashboard,
    promql::{self, Macros},
    rules,
};

fn dashboards() -> Vec<Dashboard> {
    Dashboard::load_all().expect("dashboards load")
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
    for d in dashboards() {
        for q in d.queries() {
            if contract::SEED_QUERIES.contains(&q.expr.as_str()) {
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
    let mut known = contract::documented_series();
    known.extend(
        contract::PROMETHEUS_SYNTHETIC
            .iter()
            .map(|s| (*s).to_owned()),
    );
    known.extend(rules::recorded_names().expect("rules load"));
    let m = Macros::default();
    let mut used = BTreeSet::new();
    for d in dashboards() {
        for (what, expr) in d.all_exprs() {
            for name in promql::metric_names(&promql::substitute(&expr, &m).unwrap()).unwrap() {
                assert!(
                    known.contains(&name),
                    "{} / {what}: metric {name} is neither documented nor recorded",
                    d.file
                );
                used.insert(name);
            }
        }
    }
    // The dashboards cover the contract: every documented family shows up somewhere.
    for (family, _, _) in contract::DOCUMENTED {
        assert!(
            used.iter().any(|u| u == family
                || u.strip_prefix(family)
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))),
            "documented metric {family} is on no dashboard"
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
    for seed in contract::SEED_QUERIES {
        assert!(
            all.contains(*seed),
            "seed query missing from the dashboards: {seed}"
        );
    }
}
