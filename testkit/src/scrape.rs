//! A metrics scrape parsed with a real exposition-format parser (`openmetrics-parser`), then
//! flattened to the samples Prometheus would store: `x_total`, `x_bucket{le}`, `x_sum`, ...
//!
//! Parsing is strict: text that a Prometheus server would reject fails here too.

use std::{collections::BTreeMap, time::Duration};

use anyhow::Context;
use openmetrics_parser::{OpenMetricsValue, PrometheusValue};

/// One sample: a series name, its labels, its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Series name as Prometheus stores it (with `_total`, `_bucket`, ... suffixes).
    pub name: String,
    /// All labels, including `le` on buckets.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// Every sample, in no particular order.
    pub samples: Vec<Sample>,
    /// Family name → type (`counter`, `gauge`, `histogram`, ...).
    pub families: BTreeMap<String, String>,
}

impl Scrape {
    /// `GET url` (a `/metrics` endpoint, in the classic text format), parsed.
    ///
    /// # Panics
    /// When the endpoint does not answer or its text does not parse.
    pub async fn fetch(url: &str) -> Scrape {
        let response = crate::http::get(url)
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error:#}"));
        Scrape::parse(&response.text()).unwrap_or_else(|error| panic!("{url}: {error:#}"))
    }

    /// [`Scrape::fetch`] every 10 ms until `done` holds (what a test waits for, a plugin's
    /// end-of-request callback say, can land a moment after the client has its response).
    ///
    /// # Panics
    /// After 500 scrapes without `done`, with the last one.
    pub async fn fetch_until(url: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        for _ in 0..500 {
            let scrape = Scrape::fetch(url).await;
            if done(&scrape) {
                return scrape;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "condition never met; last scrape: {:#?}",
            Scrape::fetch(url).await.samples
        );
    }

    /// Parses OpenMetrics text (ends with `# EOF`) or, failing that shape, Prometheus text.
    ///
    /// # Errors
    /// If the text is not a valid exposition.
    pub fn parse(text: &str) -> anyhow::Result<Scrape> {
        let mut scrape = Scrape::default();
        if text.trim_end().ends_with("# EOF") {
            let parsed = openmetrics_parser::openmetrics::parse_openmetrics(text)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .context("invalid OpenMetrics exposition")?;
            for family in parsed.families.values() {
                scrape
                    .families
                    .insert(family.family_name.clone(), family.family_type.to_string());
                let names = family.get_label_names().to_vec();
                for sample in family.iter_samples() {
                    let labels = labels_of(&names, sample);
                    scrape.push_openmetrics(&family.family_name, labels, &sample.value);
                }
            }
        } else {
            let parsed = openmetrics_parser::prometheus::parse_prometheus(text)
                .map_err(|e| anyhow::anyhow!("{e:?}"))
                .context("invalid Prometheus text exposition")?;
            for family in parsed.families.values() {
                scrape
                    .families
                    .insert(family.family_name.clone(), family.family_type.to_string());
                let names = family.get_label_names().to_vec();
                for sample in family.iter_samples() {
                    let labels = labels_of(&names, sample);
                    scrape.push_prometheus(&family.family_name, labels, &sample.value);
                }
            }
        }
        Ok(scrape)
    }

    /// The value of the one series named `name` whose labels include `labels`.
    /// `None` when there is no such series or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.matching(name, labels);
        let first = found.next()?;
        found.next().is_none().then_some(first.value)
    }

    /// The sum over every series named `name` whose labels include `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Every series named `name`.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// Whether a family of this name (without suffixes) was exposed.
    pub fn has_family(&self, name: &str) -> bool {
        self.families.contains_key(name)
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    fn push(&mut self, name: String, labels: BTreeMap<String, String>, value: f64) {
        self.samples.push(Sample {
            name,
            labels,
            value,
        });
    }

    fn push_histogram(
        &mut self,
        family: &str,
        labels: BTreeMap<String, String>,
        h: &openmetrics_parser::HistogramValue,
    ) {
        for bucket in &h.buckets {
            let mut l = labels.clone();
            l.insert("le".into(), format_le(bucket.upper_bound));
            self.push(format!("{family}_bucket"), l, bucket.count.as_f64());
        }
        if let Some(sum) = h.sum {
            self.push(format!("{family}_sum"), labels.clone(), sum.as_f64());
        }
        if let Some(count) = h.count {
            self.push(format!("{family}_count"), labels, count as f64);
        }
    }

    fn push_openmetrics(
        &mut self,
        family: &str,
        labels: BTreeMap<String, String>,
        value: &OpenMetricsValue,
    ) {
        match value {
            OpenMetricsValue::Counter(c) => {
                self.push(format!("{family}_total"), labels, c.value.as_f64())
            }
            OpenMetricsValue::Histogram(h) | OpenMetricsValue::GaugeHistogram(h) => {
                self.push_histogram(family, labels, h)
            }
            OpenMetricsValue::Info => self.push(format!("{family}_info"), labels, 1.0),
            OpenMetricsValue::Gauge(n)
            | OpenMetricsValue::Unknown(n)
            | OpenMetricsValue::StateSet(n) => self.push(family.to_owned(), labels, n.as_f64()),
            OpenMetricsValue::Summary(s) => {
                if let Some(sum) = s.sum {
                    self.push(format!("{family}_sum"), labels.clone(), sum.as_f64());
                }
                if let Some(count) = s.count {
                    self.push(format!("{family}_count"), labels, count as f64);
                }
            }
        }
    }

    fn push_prometheus(
        &mut self,
        family: &str,
        labels: BTreeMap<String, String>,
        value: &PrometheusValue,
    ) {
        match value {
            PrometheusValue::Counter(c) => self.push(family.to_owned(), labels, c.value.as_f64()),
            PrometheusValue::Histogram(h) => self.push_histogram(family, labels, h),
            PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => {
                self.push(family.to_owned(), labels, n.as_f64())
            }
            PrometheusValue::Summary(s) => {
                if let Some(count) = s.count {
                    self.push(format!("{family}_count"), labels, count as f64);
                }
            }
        }
    }
}

/// The text of `url`'s `/metrics`, asked for as Prometheus asks (OpenMetrics from the sidecar,
/// exemplars included), once `done` holds for it; every scrape must parse.
///
/// # Panics
/// After 5 s without `done`, with the last scrape; on a scrape that fails or does not parse.
pub async fn openmetrics_until(url: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let text = crate::http::scrape(url)
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error:#}"))
            .text();
        if let Err(error) = Scrape::parse(&text) {
            panic!("{url}: {error:#}\n{text}");
        }
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "last scrape:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The exemplars of `url`'s OpenMetrics scrape once it has any, with the text they came from
/// (valid OpenMetrics, see [`openmetrics_until`]).
pub async fn exemplars_until(url: &str) -> (String, Vec<crate::exemplars::Exemplar>) {
    let text = openmetrics_until(url, |text| !crate::exemplars::exemplars(text).is_empty()).await;
    let found = crate::exemplars::exemplars(&text);
    (text, found)
}

fn labels_of<V>(
    names: &[String],
    sample: &openmetrics_parser::Sample<V>,
) -> BTreeMap<String, String>
where
    V: openmetrics_parser::RenderableMetricValue + Clone,
{
    sample
        .get_labelset()
        .map(|set| set.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_else(|_| names.iter().map(|n| (n.clone(), String::new())).collect())
}

/// `le` as Prometheus prints it: `+Inf`, and integers with `.0` (`1.0`, not `1`).
fn format_le(bound: f64) -> String {
    if bound.is_infinite() {
        "+Inf".into()
    } else if bound.fract() == 0.0 {
        format!("{bound:.1}")
    } else {
        format!("{bound}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_openmetrics_counters_and_histograms() {
        let text = "# TYPE req counter\nreq_total{m=\"GET\"} 3\n# TYPE d histogram\n\
                    d_bucket{le=\"0.1\"} 1\nd_bucket{le=\"1.0\"} 2\nd_bucket{le=\"+Inf\"} 2\nd_sum 0.6\nd_count 2\n# EOF\n";
        let s = Scrape::parse(text).unwrap();
        assert_eq!(s.value("req_total", &[("m", "GET")]), Some(3.0));
        assert_eq!(s.value("d_bucket", &[("le", "1.0")]), Some(2.0));
        assert_eq!(s.value("d_count", &[]), Some(2.0));
        assert_eq!(s.families.get("d").map(String::as_str), Some("histogram"));
    }

    #[test]
    fn rejects_malformed_text() {
        assert!(Scrape::parse("# TYPE x counter\nx_total{a=\"b} 1\n# EOF\n").is_err());
    }
}
