//! Exemplars read back from OpenMetrics text (`series value # {trace_id="..."} value ts`).
//! [`crate::Scrape::parse`] checks the text is valid OpenMetrics; this reads what it carries.

/// One exemplar on a sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// The sample's series as written: `name{labels}`.
    pub series: String,
    /// The exemplar's `trace_id` label.
    pub trace_id: String,
    /// The observed value.
    pub value: f64,
    /// Its timestamp, in seconds since the epoch.
    pub timestamp: Option<f64>,
}

impl Exemplar {
    /// The bucket's upper bound (`le`), when the sample is a bucket.
    pub fn le(&self) -> Option<f64> {
        let start = self.series.rfind("le=\"")? + 4;
        let end = start + self.series[start..].find('"')?;
        match &self.series[start..end] {
            "+Inf" => Some(f64::INFINITY),
            bound => bound.parse().ok(),
        }
    }

    /// Whether the series' labels include `name="value"`.
    pub fn has_label(&self, name: &str, value: &str) -> bool {
        self.series.contains(&format!("{name}=\"{value}\""))
    }
}

/// Every exemplar with a `trace_id` in `text`.
pub fn exemplars(text: &str) -> Vec<Exemplar> {
    text.lines()
        .filter_map(|line| {
            let (sample, exemplar) = line.split_once(" # {")?;
            let (series, _value) = sample.rsplit_once(' ')?;
            let (labels, rest) = exemplar.split_once("} ")?;
            let trace_id = labels
                .split(',')
                .find_map(|label| label.strip_prefix("trace_id=\""))?
                .trim_end_matches('"')
                .to_owned();
            let mut numbers = rest.split(' ');
            let value = numbers.next()?.parse().ok()?;
            let timestamp = numbers.next().and_then(|t| t.parse().ok());
            Some(Exemplar {
                series: series.to_owned(),
                trace_id,
                value,
                timestamp,
            })
        })
        .collect()
}
