//! Grafana's variables substituted the way Grafana would, and the metric names an expression
//! reads (from the real PromQL grammar of the `promql-parser` crate, not a regex).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail};
use promql_parser::parser::{self, Expr};

/// Values for Grafana's macros and our dashboard variables.
#[derive(Clone, Debug)]
pub struct Macros {
    /// `$__rate_interval` (Grafana: max(4 × scrape interval, $__interval + scrape interval)).
    pub rate_interval: String,
    /// `$__interval`.
    pub interval: String,
    /// `$__range` (the dashboard's time range).
    pub range: String,
    /// The `$interval` window variable.
    pub window: String,
}

impl Default for Macros {
    fn default() -> Self {
        Macros {
            rate_interval: "1m".into(),
            interval: "15s".into(),
            range: "30m".into(),
            window: "5m".into(),
        }
    }
}

/// Substitutes Grafana's macros and variables. Multi-value variables (`$handler`,
/// `$operation`) become `.*`, what Grafana sends for "All" with `allValue: ".*"`.
///
/// # Errors
/// If a `$` is left over: a variable this function (and so the tests) does not know.
pub fn substitute(expr: &str, m: &Macros) -> anyhow::Result<String> {
    let mut s = expr.to_owned();
    for (from, to) in [
        ("${__rate_interval}", m.rate_interval.as_str()),
        ("$__rate_interval", m.rate_interval.as_str()),
        ("${__interval}", m.interval.as_str()),
        ("$__interval", m.interval.as_str()),
        ("${__range}", m.range.as_str()),
        ("$__range", m.range.as_str()),
        ("${interval}", m.window.as_str()),
        ("$interval", m.window.as_str()),
        ("${handler}", ".*"),
        ("$handler", ".*"),
        ("${operation}", ".*"),
        ("$operation", ".*"),
    ] {
        s = s.replace(from, to);
    }
    if s.contains('$') {
        bail!("unknown Grafana variable left in {s:?}");
    }
    Ok(s)
}

/// Parses `expr` (already substituted).
///
/// # Errors
/// With the parser's message when the expression is not valid PromQL.
pub fn parse(expr: &str) -> anyhow::Result<Expr> {
    parser::parse(expr).map_err(|e| anyhow!("invalid PromQL {expr:?}: {e}"))
}

/// The metric names an expression selects (`foo` in `rate(foo[5m])`, `{__name__="bar"}`).
///
/// # Errors
/// When the expression does not parse.
pub fn metric_names(expr: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    walk(&parse(expr)?, &mut out);
    Ok(out)
}

fn walk(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, out);
            if let Some(p) = &a.param {
                walk(p, out);
            }
        }
        Expr::Unary(u) => walk(&u.expr, out),
        Expr::Binary(b) => {
            walk(&b.lhs, out);
            walk(&b.rhs, out);
        }
        Expr::Paren(p) => walk(&p.expr, out),
        Expr::Subquery(s) => walk(&s.expr, out),
        Expr::VectorSelector(v) => selector(v, out),
        Expr::MatrixSelector(m) => selector(&m.vs, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn selector(v: &promql_parser::parser::VectorSelector, out: &mut BTreeSet<String>) {
    if let Some(n) = &v.name {
        out.insert(n.clone());
    }
    for m in &v.matchers.matchers {
        if m.name == "__name__" {
            out.insert(m.value.clone());
        }
    }
}

/// The family a series name belongs to: `x_bucket`/`x_sum`/`x_count` → `x` when `x` is a
/// histogram family of `families`; otherwise the name itself.
pub fn family_of<'a>(name: &'a str, histograms: &BTreeSet<String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && histograms.contains(base)
        {
            return base;
        }
    }
    name
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_every_known_variable_and_refuses_unknown_ones() {
        let m = Macros::default();
        let s = substitute(
            r#"sum by (le) (rate(x_bucket{handler=~"$handler"}[$__rate_interval])) / increase(y[$interval]) + z[${__range}]"#,
            &m,
        )
        .unwrap();
        assert_eq!(
            s,
            r#"sum by (le) (rate(x_bucket{handler=~".*"}[1m])) / increase(y[5m]) + z[30m]"#
        );
        assert!(substitute("rate(x[$mystery])", &m).is_err());
    }

    #[test]
    fn finds_metric_names_but_not_functions_labels_or_keywords() {
        let names = metric_names(
            r#"histogram_quantile(0.95, sum by (le, handler) (rate(http_request_duration_seconds_bucket{job="sidecar"}[5m])))
               / on (job) group_left sum without (instance) (up) or vector(0) and {__name__="items_read_total"}"#,
        )
        .unwrap();
        let want: BTreeSet<String> = [
            "http_request_duration_seconds_bucket",
            "up",
            "items_read_total",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(names, want);
    }

    #[test]
    fn rejects_invalid_promql() {
        assert!(metric_names("sum(rate(x[5m])").is_err());
    }

    #[test]
    fn maps_histogram_series_to_their_family_only_for_histograms() {
        let h: BTreeSet<String> = ["db_query_duration_seconds".to_owned()].into();
        assert_eq!(
            family_of("db_query_duration_seconds_bucket", &h),
            "db_query_duration_seconds"
        );
        assert_eq!(family_of("items_read_count", &h), "items_read_count");
    }
}
