//! From the name a plugin passes to `proxy_define_metric` to a Prometheus family name and label
//! set. The ABI carries only a string, so labels travel inside it:
//!
//! - Prometheus style (our documented convention): `orders_total{currency="EUR",band="10-50"}`;
//! - Istio style: `currency=.=EUR;.;band=.=10-50;.;orders_total`;
//! - operator tag regexes with Envoy `stats_tags` meaning (group 1 is cut out of the name,
//!   group 2 is the value), applied first.
//!
//! Runs once per distinct name at define time, never at scrape time (regex tag extraction at
//! scrape time was a measured cost in Istio, istio/istio#18261).

use regex::Regex;

use crate::abi::MetricType;
use crate::config::{LabelConvention, PluginConfig};

/// A name's family and sorted, de-duplicated labels.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ParsedName {
    /// Sanitised family name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), without `_total` for counters.
    pub family: String,
    /// Label pairs sorted by name.
    pub labels: Vec<(String, String)>,
}

/// A plugin's naming rules.
#[derive(Debug)]
pub(crate) struct NameParser {
    convention: LabelConvention,
    tags: Vec<(String, Regex)>,
}

impl NameParser {
    /// The rules of `config` (its regexes were validated with the config).
    pub(crate) fn new(config: &PluginConfig) -> Result<NameParser, regex::Error> {
        let tags = config
            .tag_regexes
            .iter()
            .map(|t| Ok((sanitize_label(&t.tag_name), Regex::new(&t.regex)?)))
            .collect::<Result<_, regex::Error>>()?;
        Ok(NameParser {
            convention: config.labels,
            tags,
        })
    }

    /// Splits `raw` into family and labels.
    pub(crate) fn parse(&self, kind: MetricType, raw: &str) -> ParsedName {
        let mut name = raw.to_owned();
        let mut labels = Vec::new();
        for (tag, regex) in &self.tags {
            let Some(caps) = regex.captures(&name) else {
                continue;
            };
            let Some(cut) = caps.get(1) else { continue };
            let value = caps.get(2).unwrap_or(cut).as_str().to_owned();
            let range = cut.range();
            name.replace_range(range, "");
            labels.push((tag.clone(), value));
        }
        let istio = name.contains("=.=");
        let prometheus = name.contains('{');
        let base = match self.convention {
            LabelConvention::Istio => istio_labels(&name, &mut labels),
            LabelConvention::Prometheus => prometheus_labels(&name, &mut labels),
            LabelConvention::Auto if istio => istio_labels(&name, &mut labels),
            LabelConvention::Auto if prometheus => prometheus_labels(&name, &mut labels),
            _ => name,
        };
        let mut family = sanitize_name(&base);
        if kind == MetricType::Counter {
            // The exposition adds `_total`; a family still ending in it (`_total` alone) is
            // refused by OpenMetrics parsers, so it is cut to `_` there too.
            while let Some(stripped) = family.strip_suffix("_total") {
                family = sanitize_name(stripped);
            }
        }
        // Label names Prometheus reserves (`__…`; `__name__` would replace the family) and a
        // histogram's own `le` (a duplicate that makes the whole scrape invalid) get a prefix.
        for (name, _) in &mut labels {
            if name.starts_with("__") || (kind == MetricType::Histogram && name == "le") {
                name.insert_str(0, "label_");
            }
        }
        labels.reverse(); // last definition of a label wins
        let mut seen = std::collections::HashSet::new();
        labels.retain(|(k, _)| seen.insert(k.clone()));
        labels.sort();
        ParsedName { family, labels }
    }
}

/// `k=.=v;.;k=.=v;.;name`: segments with `=.=` are labels, the rest is the name.
fn istio_labels(name: &str, labels: &mut Vec<(String, String)>) -> String {
    let mut base = Vec::new();
    for segment in name.split(";.;") {
        match segment.split_once("=.=") {
            Some((k, v)) if !k.is_empty() => labels.push((sanitize_label(k), v.to_owned())),
            _ if !segment.is_empty() => base.push(segment),
            _ => {}
        }
    }
    base.join("_")
}

/// `name{k="v",k2="v2"}` with Prometheus text-format escapes in values. A malformed label
/// block leaves the whole string as the name (sanitised), so nothing is silently dropped.
fn prometheus_labels(name: &str, labels: &mut Vec<(String, String)>) -> String {
    let Some((base, rest)) = name.split_once('{') else {
        return name.to_owned();
    };
    match parse_label_block(rest) {
        Some(parsed) => {
            labels.extend(parsed);
            base.to_owned()
        }
        None => name.to_owned(),
    }
}

fn parse_label_block(block: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = block.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        if chars.peek() == Some(&'}') {
            chars.next();
            return chars.next().is_none().then_some(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != '}')).collect();
        if chars.next() != Some('=') || chars.next() != Some('"') || key.trim().is_empty() {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        }
        out.push((sanitize_label(key.trim()), value));
    }
}

/// Metric names: `[a-zA-Z0-9_:]`, not starting with a digit, never empty.
pub(crate) fn sanitize_name(name: &str) -> String {
    sanitize(name, true)
}

/// Label names: `[a-zA-Z0-9_]`, not starting with a digit.
pub(crate) fn sanitize_label(name: &str) -> String {
    sanitize(name, false)
}

fn sanitize(name: &str, colon: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod properties;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::TagRegex;

    fn parse(
        config: &PluginConfig,
        kind: MetricType,
        raw: &str,
    ) -> (String, Vec<(&'static str, String)>) {
        let parsed = NameParser::new(config).unwrap().parse(kind, raw);
        let labels = parsed
            .labels
            .into_iter()
            .map(|(k, v)| (&*k.leak(), v))
            .collect();
        (parsed.family, labels)
    }

    #[test]
    fn prometheus_style_names_carry_labels_with_escapes_and_braces_in_values() {
        let config = PluginConfig::new("p", "p.wasm");
        let (family, labels) = parse(
            &config,
            MetricType::Counter,
            r#"slo_total{route="/items/{id}",q="a\"b",}"#,
        );
        assert_eq!(family, "slo");
        assert_eq!(
            labels,
            vec![
                ("q", "a\"b".to_owned()),
                ("route", "/items/{id}".to_owned())
            ]
        );
    }

    #[test]
    fn istio_style_names_carry_labels() {
        let config = PluginConfig::new("p", "p.wasm");
        let (family, labels) = parse(
            &config,
            MetricType::Gauge,
            "currency=.=EUR;.;band=.=10-50;.;orders",
        );
        assert_eq!(family, "orders");
        assert_eq!(
            labels,
            vec![("band", "10-50".to_owned()), ("currency", "EUR".to_owned())]
        );
    }

    #[test]
    fn tag_regexes_cut_group_one_and_take_group_two_as_the_value() {
        let mut config = PluginConfig::new("p", "p.wasm");
        config.tag_regexes = vec![TagRegex {
            tag_name: "value".into(),
            regex: "(_value=([a-zA-Z]+))".into(),
        }];
        let (family, labels) = parse(
            &config,
            MetricType::Counter,
            "custom_header_value_counts_value=foo",
        );
        assert_eq!(family, "custom_header_value_counts");
        assert_eq!(labels, vec![("value", "foo".to_owned())]);
    }

    #[test]
    fn names_are_sanitised_and_counters_get_no_double_total() {
        let config = PluginConfig::new("p", "p.wasm");
        assert_eq!(
            parse(&config, MetricType::Counter, "a.b-c_total_total").0,
            "a_b_c"
        );
        assert_eq!(parse(&config, MetricType::Gauge, "9lives").0, "_9lives");
        assert_eq!(
            parse(&config, MetricType::Counter, "broken{x=1}").0,
            "broken_x_1_"
        );
    }
}
