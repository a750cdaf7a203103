//! `docs/metrics.md` parsed strictly: a table whose header is a metric table's must have every
//! cell well formed (one metric name, a known type, known processes, a known presence, file
//! names in "read by"), or the whole contract is refused with the line; other tables are prose.

use std::collections::BTreeSet;

use anyhow::{Context, bail, ensure};

use super::{Contract, Family, Present, Process};

/// Header of a table of exported families.
const FAMILY_HEADER: [&str; 7] = [
    "family",
    "type",
    "labels",
    "exposed by",
    "present",
    "read by",
    "meaning",
];
/// Header of the table of series Prometheus writes itself.
const PROMETHEUS_HEADER: [&str; 4] = ["series", "type", "read by", "meaning"];
/// The heading above the seed queries' code block.
const SEED_HEADING: &str = "## Seed queries";

/// Parses the contract's markdown.
///
/// # Errors
/// On a malformed family row, a duplicate family, or a missing seed query block.
pub(super) fn parse(text: &str) -> anyhow::Result<Contract> {
    let mut families: Vec<Family> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        let Some(cells) = cells(line) else {
            header = None;
            continue;
        };
        let Some(columns) = &header else {
            header = Some(cells.iter().map(|c| c.to_lowercase()).collect());
            continue;
        };
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue; // the separator row
        }
        let family = if columns == &FAMILY_HEADER {
            family_row(&cells)
        } else if columns == &PROMETHEUS_HEADER {
            prometheus_row(&cells)
        } else if ["family", "series"].contains(&columns[0].as_str()) {
            bail!(
                "line {}: a metric table needs the columns {FAMILY_HEADER:?} (or {PROMETHEUS_HEADER:?})",
                number + 1
            );
        } else {
            continue; // another kind of table
        };
        let family = family.with_context(|| format!("line {}: {line}", number + 1))?;
        ensure!(
            families.iter().all(|f| f.name != family.name),
            "line {}: {} is documented twice",
            number + 1,
            family.name
        );
        families.push(family);
    }
    for process in [Process::Api, Process::Sidecar] {
        ensure!(
            families.iter().any(|f| f.exposed_by(process)),
            "no family exposed by {}",
            process.name()
        );
    }
    Ok(Contract {
        families,
        seed_queries: seed_queries(text)?,
    })
}

/// The cells of a markdown table row, or `None` for a line that is not one.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(|c| c.trim().to_owned()).collect())
}

/// The text of every `code span` in a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The one metric name of a name cell (`` `http_requests_total` ``).
fn name_cell(cell: &str) -> anyhow::Result<String> {
    let name = cell
        .strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .filter(|n| is_metric_name(n))
        .with_context(|| format!("the name cell must be one `metric_name`, not {cell:?}"))?;
    Ok(name.to_owned())
}

fn type_cell(cell: &str, name: &str) -> anyhow::Result<String> {
    let suffix_ok = match cell {
        "counter" => name.ends_with("_total"),
        "info" => name.ends_with("_info"),
        "histogram" => !["_bucket", "_sum", "_count", "_total"]
            .iter()
            .any(|s| name.ends_with(s)),
        "gauge" => true,
        other => bail!("unknown type {other:?} (counter, gauge, histogram, info)"),
    };
    ensure!(
        suffix_ok,
        "{name}: a counter is documented with its `_total`, an info with `_info`, a histogram without suffix"
    );
    Ok(cell.to_owned())
}

/// `—` (or `-`) for none, else a comma-separated list of `file.json` / `file.yml`.
fn read_by_cell(cell: &str) -> anyhow::Result<BTreeSet<String>> {
    if cell == "—" || cell == "-" {
        return Ok(BTreeSet::new());
    }
    let files: BTreeSet<String> = code_spans(cell).into_iter().collect();
    ensure!(
        !files.is_empty()
            && files
                .iter()
                .all(|f| f.ends_with(".json") || f.ends_with(".yml")),
        "read by: `—` or dashboard/rule file names in backticks, not {cell:?}"
    );
    Ok(files)
}

fn family_row(cells: &[String]) -> anyhow::Result<Family> {
    let [
        name,
        metric_type,
        labels,
        exposed_by,
        present,
        read_by,
        _meaning,
    ] = cells
    else {
        bail!("{} cells, expected {}", cells.len(), FAMILY_HEADER.len());
    };
    let name = name_cell(name)?;
    let metric_type = type_cell(metric_type, &name)?;
    let exposed_by = exposed_by
        .split(',')
        .map(|p| match p.trim() {
            "api" => Ok(Process::Api),
            "sidecar" => Ok(Process::Sidecar),
            other => bail!("exposed by {other:?}: api or sidecar"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let present = match present.as_str() {
        "start-up" => Present::StartUp,
        "traffic" => Present::Traffic,
        "event" => Present::Event,
        other => bail!("present {other:?}: start-up, traffic or event"),
    };
    Ok(Family {
        name,
        metric_type,
        labels: code_spans(labels).into_iter().collect(),
        exposed_by,
        present,
        read_by: read_by_cell(read_by)?,
    })
}

fn prometheus_row(cells: &[String]) -> anyhow::Result<Family> {
    let [name, metric_type, read_by, _meaning] = cells else {
        bail!(
            "{} cells, expected {}",
            cells.len(),
            PROMETHEUS_HEADER.len()
        );
    };
    let name = name_cell(name)?;
    Ok(Family {
        metric_type: type_cell(metric_type, &name)?,
        name,
        labels: BTreeSet::new(),
        exposed_by: vec![Process::Prometheus],
        present: Present::StartUp,
        read_by: read_by_cell(read_by)?,
    })
}

/// The lines of the first code block under the seed queries' heading.
fn seed_queries(text: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim_end() != SEED_HEADING)
        .skip(1)
        .skip_while(|l| !l.starts_with("```"));
    ensure!(
        lines.next().is_some(),
        "no code block under {SEED_HEADING:?}"
    );
    let mut queries = Vec::new();
    for line in lines {
        if line.starts_with("```") {
            ensure!(!queries.is_empty(), "the seed query block is empty");
            return Ok(queries);
        }
        if !line.trim().is_empty() {
            queries.push(line.to_owned());
        }
    }
    bail!("the seed query block under {SEED_HEADING:?} is not closed")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    const SAMPLE: &str = "\
| process | endpoint |
|---|---|
| api | x |

| family | type | labels | exposed by | present | read by | meaning |
|---|---|---|---|---|---|---|
| `a_total` | counter | `handler`, `method` | sidecar | traffic | `red.json`, `alerts.yml` | a |
| `b_seconds` | histogram | none | api, sidecar | start-up | — | b |

| series | type | read by | meaning |
|---|---|---|---|
| `up` | gauge | `red.json` | up |

## Seed queries

```promql
sum(rate(a_total[5m]))
b_seconds_count
```
";

    #[test]
    fn tables_and_seed_queries_are_read() {
        let c = parse(SAMPLE).unwrap();
        let names: Vec<&str> = c.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a_total", "b_seconds", "up"]);
        let a = &c.families[0];
        assert_eq!(
            a.labels,
            BTreeSet::from(["handler".into(), "method".into()])
        );
        assert_eq!(a.exposed_by, [Process::Sidecar]);
        assert_eq!(a.present, Present::Traffic);
        assert_eq!(
            a.read_by,
            BTreeSet::from(["alerts.yml".into(), "red.json".into()])
        );
        assert_eq!(c.families[1].exposed_by, [Process::Api, Process::Sidecar]);
        assert_eq!(c.families[2].exposed_by, [Process::Prometheus]);
        assert_eq!(c.family_of("b_seconds_bucket").unwrap().name, "b_seconds");
        assert!(c.family_of("b_seconds").is_none());
        assert_eq!(
            c.seed_queries,
            ["sum(rate(a_total[5m]))", "b_seconds_count"]
        );
    }

    #[test]
    fn malformed_rows_are_refused() {
        for (from, to) in [
            ("`a_total` | counter", "`a` | counter"),
            ("| counter |", "| summary |"),
            ("| sidecar | traffic", "| proxy | traffic"),
            ("| traffic |", "| sometimes |"),
            ("`red.json`, `alerts.yml`", "red.json"),
            ("| b |\n", "| b | extra |\n"),
            ("b_seconds_count\n```\n", "b_seconds_count\n"),
        ] {
            assert!(SAMPLE.contains(from), "{from}");
            let doc = SAMPLE.replacen(from, to, 1);
            assert!(parse(&doc).is_err(), "accepted after {from:?} -> {to:?}");
        }
        let twice = SAMPLE.replacen("`b_seconds`", "`a_total`", 1);
        assert!(parse(&twice).is_err());
    }
}
