//! The flags both processes share, with the standard OpenTelemetry environment variables as
//! their fallbacks: the sampling ratio, the OTLP endpoint and the service name.

use std::time::Duration;

use http::Uri;

use crate::{export::Export, sampler::Sampler};

/// Tracing flags (flattened into each binary's own).
#[derive(Clone, Debug, clap::Args)]
pub struct TracingArgs {
    /// Share of the requests arriving without a trace that start a sampled one (0 to 1). A
    /// request whose `traceparent` is sampled is always traced, whatever this says.
    #[arg(long = "trace-sample-ratio", env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 0.01, value_parser = parse_ratio)]
    pub sample_ratio: f64,
    /// OTLP/HTTP traces endpoint (`http://host:4318/v1/traces`). Without it (and without
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, to which `/v1/traces` is appended) no span is exported.
    #[arg(long = "otlp-endpoint", env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of the exported spans (default: the binary's name).
    #[arg(long = "otel-service-name", env = "OTEL_SERVICE_NAME")]
    pub service_name: Option<String>,
}

/// What the flags resolve to.
#[derive(Clone, Debug)]
pub struct Settings {
    /// New traces' sampling.
    pub sampler: Sampler,
    /// Span export, when an endpoint is configured.
    pub export: Option<Export>,
}

impl Default for Settings {
    /// The defaults without any flag or environment: 1 % sampled, no export.
    fn default() -> Self {
        Self {
            sampler: Sampler::new(0.01),
            export: None,
        }
    }
}

/// A bad endpoint.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP endpoint `{endpoint}`: {reason}")]
pub struct EndpointError {
    endpoint: String,
    reason: &'static str,
}

impl TracingArgs {
    /// Resolves the flags; `OTEL_EXPORTER_OTLP_ENDPOINT` is read here when the traces
    /// endpoint is not set, as the OpenTelemetry SDKs do.
    ///
    /// # Errors
    /// An endpoint that is not an `http://host:port[/path]` URL.
    pub fn settings(&self, default_service: &str) -> Result<Settings, EndpointError> {
        let base = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok();
        self.settings_with(default_service, base.as_deref())
    }

    fn settings_with(
        &self,
        default_service: &str,
        base: Option<&str>,
    ) -> Result<Settings, EndpointError> {
        let endpoint = match (&self.otlp_endpoint, base) {
            (Some(full), _) if !full.is_empty() => Some(full.clone()),
            (_, Some(base)) if !base.is_empty() => {
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            _ => None,
        };
        let export = endpoint
            .map(|endpoint| {
                let bad = |reason| EndpointError {
                    endpoint: endpoint.clone(),
                    reason,
                };
                let uri: Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
                if uri.scheme_str() != Some("http") || uri.host().is_none() {
                    return Err(bad("only http://host:port URLs are supported"));
                }
                Ok(Export {
                    endpoint: uri,
                    service_name: (self.service_name.clone())
                        .unwrap_or_else(|| default_service.to_owned()),
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(5),
                })
            })
            .transpose()?;
        Ok(Settings {
            sampler: Sampler::new(self.sample_ratio),
            export,
        })
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{text}` is not a ratio between 0 and 1")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tracing: TracingArgs,
    }

    fn args(flags: &[&str]) -> TracingArgs {
        Flags::try_parse_from([&["bin"], flags].concat())
            .unwrap()
            .tracing
    }

    #[test]
    fn no_endpoint_means_no_export() {
        let settings = args(&["--otlp-endpoint", ""])
            .settings_with("api", None)
            .unwrap();
        assert!(settings.export.is_none());
    }

    #[test]
    fn the_traces_endpoint_wins_and_the_base_gets_v1_traces() {
        let base = args(&[]).settings_with("api", Some("http://127.0.0.1:4318/"));
        let export = base.unwrap().export.unwrap();
        assert_eq!(export.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(export.service_name, "api");
        let full = args(&[
            "--otlp-endpoint",
            "http://c:9/x",
            "--otel-service-name",
            "shop",
        ])
        .settings_with("api", Some("http://127.0.0.1:4318"))
        .unwrap()
        .export
        .unwrap();
        assert_eq!(
            (
                full.endpoint.to_string().as_str(),
                full.service_name.as_str()
            ),
            ("http://c:9/x", "shop")
        );
    }

    #[test]
    fn bad_endpoints_and_ratios_are_refused() {
        assert!(
            args(&["--otlp-endpoint", "https://c:4318/v1/traces"])
                .settings_with("a", None)
                .is_err()
        );
        assert!(
            args(&["--otlp-endpoint", "not a url"])
                .settings_with("a", None)
                .is_err()
        );
        assert!(Flags::try_parse_from(["bin", "--trace-sample-ratio", "1.5"]).is_err());
        assert_eq!(args(&["--trace-sample-ratio", "0.5"]).sample_ratio, 0.5);
    }
}
