//! What `/metrics` answers, for both processes: the format the scraper asked for.
//!
//! The official clients (Go, Python) negotiate: OpenMetrics text when the `Accept` header asks
//! for `application/openmetrics-text` (Prometheus does, and only OpenMetrics carries
//! exemplars), the classic text format 0.0.4 otherwise (promtool, older agents, curl).
//! prometheus-client only writes OpenMetrics, so the classic text is a translation of it.
//!
//! - [`Format`]: the negotiation and the `Content-Type` of each format.
//! - [`encode`]: the registry in the negotiated format.
//! - `classic`: the OpenMetrics → classic text translation.

mod classic;

use http::{HeaderMap, header};
use prometheus_client::registry::Registry;

pub use classic::to_classic;

/// A text format `/metrics` can answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Classic,
}

const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Format {
    /// The format for a request with these headers: OpenMetrics when some `Accept` media range
    /// names `application/openmetrics-text` with a non-zero quality, classic text otherwise
    /// (also when `Accept` is missing or unreadable).
    pub fn negotiate(headers: &HeaderMap) -> Self {
        let asks_openmetrics = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                media.eq_ignore_ascii_case("application/openmetrics-text")
                    && params.all(|param| !is_zero_quality(param))
            });
        if asks_openmetrics {
            Self::OpenMetrics
        } else {
            Self::Classic
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_TYPE,
            Self::Classic => CLASSIC_TYPE,
        }
    }
}

/// `q=0` (or `q=0.0`, `q=0.000`): the client refuses that range.
fn is_zero_quality(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    name.trim().eq_ignore_ascii_case("q") && value.trim().parse::<f64>().is_ok_and(|q| q <= 0.0)
}

/// Every family in `registry`, in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(match format {
        Format::OpenMetrics => text,
        Format::Classic => to_classic(&text),
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn prometheus_gets_openmetrics() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(&accept(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(&accept("Application/OpenMetrics-Text")),
            Format::OpenMetrics
        );
    }

    #[test]
    fn everything_else_gets_classic_text() {
        assert_eq!(Format::negotiate(&HeaderMap::new()), Format::Classic);
        for value in [
            "text/plain;version=0.0.4",
            "*/*",
            "text/plain",
            "application/openmetrics-text;q=0",
            "application/openmetrics-text; q=0.0, text/plain",
            "application/json",
        ] {
            assert_eq!(
                Format::negotiate(&accept(value)),
                Format::Classic,
                "{value}"
            );
        }
    }
}
