//! OpenMetrics text → the classic Prometheus text format 0.0.4.
//!
//! Why translate rather than encode twice: prometheus-client has one text encoder, and
//! collectors write through it; translating its output keeps one source for every family.
//! The two formats differ only in the places handled here:
//! - a counter family is named with its `_total` in `# HELP`/`# TYPE`, and its `_created`
//!   samples have no classic form;
//! - `info` is a gauge named `…_info`, `unknown` is `untyped`, `stateset` a gauge;
//! - no `# UNIT`, no `# EOF`, no exemplars, and timestamps are integer milliseconds;
//! - `# HELP` text escapes only `\\` and `\n`.

use std::fmt::Write as _;

/// The classic text for `openmetrics`, an exposition as prometheus-client writes it.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    let mut family = Family::default();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            family = Family::new(name, kind);
            if let Some((help_name, text)) = help.take()
                && help_name == name
            {
                let _ = writeln!(out, "# HELP {} {}", family.name, unescape_help(text));
            }
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`: no classic form.
        } else {
            family.sample(line, &mut out);
        }
    }
    out
}

/// The family whose samples are being copied.
#[derive(Debug, Default)]
struct Family {
    /// The classic family name.
    name: String,
    /// The classic type.
    kind: &'static str,
    /// OpenMetrics name of the counter's `_created` samples, which are dropped.
    created: Option<String>,
}

impl Family {
    fn new(name: &str, openmetrics_kind: &str) -> Self {
        let (name, kind) = match openmetrics_kind {
            "counter" => (format!("{name}_total"), "counter"),
            "info" => (format!("{name}_info"), "gauge"),
            "gauge" | "stateset" => (name.to_owned(), "gauge"),
            "histogram" | "gaugehistogram" => (name.to_owned(), "histogram"),
            "summary" => (name.to_owned(), "summary"),
            _ => (name.to_owned(), "untyped"),
        };
        let created = (openmetrics_kind == "counter").then(|| {
            let base = name.strip_suffix("_total").unwrap_or(&name);
            format!("{base}_created")
        });
        Self {
            name,
            kind,
            created,
        }
    }

    /// Copies one sample line, without its exemplar, with a millisecond timestamp.
    fn sample(&self, line: &str, out: &mut String) {
        let series_end = series_end(line);
        let series = &line[..series_end];
        let metric = series.split('{').next().unwrap_or(series);
        if self.created.as_deref() == Some(metric) {
            return;
        }
        let rest = &line[series_end..];
        // What follows the series: ` value [timestamp] [# {exemplar} value [timestamp]]`.
        let rest = rest.split(" # ").next().unwrap_or(rest);
        let mut fields = rest.split_whitespace();
        let value = fields.next().unwrap_or("NaN");
        out.push_str(series);
        out.push(' ');
        out.push_str(value);
        if let Some(seconds) = fields.next().and_then(|t| t.parse::<f64>().ok()) {
            let _ = write!(out, " {}", (seconds * 1000.0).round() as i64);
        }
        out.push('\n');
    }
}

/// Where the series (name and label set) of a sample line ends: label values may hold spaces,
/// `}` and `#`, so the label block is scanned with its quoting.
fn series_end(line: &str) -> usize {
    let bytes = line.as_bytes();
    let Some(open) = line.find(['{', ' ']) else {
        return line.len();
    };
    if bytes[open] == b' ' {
        return open;
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, &byte) in bytes.iter().enumerate().skip(open + 1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'}' if !quoted => return i + 1,
            _ => {}
        }
    }
    line.len()
}

/// OpenMetrics escapes `"` in help text; the classic format knows only `\\` and `\n`.
fn unescape_help(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("\\\"") {
        text.replace("\\\"", "\"").into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests;
