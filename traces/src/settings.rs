//! The flags both processes share, with the standard OpenTelemetry environment variables as
//! their fallbacks: the sampling ratio, the OTLP endpoint, its headers, compression and CA
//! certificate, and the service name.

use std::{path::Path, time::Duration};

use http::{HeaderName, HeaderValue, Uri};

use crate::{
    export::{Compression, Export},
    sampler::Sampler,
    tls::{CertificateError, Roots},
};

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
    /// Headers sent with every export, `key=value,key2=value2` (values percent-encoded), e.g. a
    /// collector's API key. Falls back to `OTEL_EXPORTER_OTLP_HEADERS`.
    #[arg(long = "otlp-headers", env = "OTEL_EXPORTER_OTLP_TRACES_HEADERS")]
    pub otlp_headers: Option<String>,
    /// `gzip` or `none` (default). Falls back to `OTEL_EXPORTER_OTLP_COMPRESSION`.
    #[arg(
        long = "otlp-compression",
        env = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
    )]
    pub otlp_compression: Option<String>,
    /// A PEM file of the CA certificates an `https://` endpoint's certificate must chain to,
    /// instead of the built-in (Mozilla) roots. Falls back to `OTEL_EXPORTER_OTLP_CERTIFICATE`.
    #[arg(
        long = "otlp-certificate",
        env = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
    )]
    pub otlp_certificate: Option<String>,
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

/// A bad endpoint, header list or compression.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP {what} `{value}`: {reason}")]
pub struct EndpointError {
    what: &'static str,
    value: String,
    reason: &'static str,
}

/// Settings that stop start-up.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A bad endpoint, header list or compression.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// An unreadable or invalid CA certificate file.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// The generic `OTEL_EXPORTER_OTLP_*` fallbacks of the traces-specific settings.
#[derive(Debug, Default)]
struct Fallbacks<'a> {
    endpoint: Option<&'a str>,
    headers: Option<&'a str>,
    compression: Option<&'a str>,
    certificate: Option<&'a str>,
}

/// `key=value,key2=value2`, values percent-decoded (the OpenTelemetry format).
fn parse_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, EndpointError> {
    let bad = |reason| EndpointError {
        what: "headers",
        value: text.to_owned(),
        reason,
    };
    let mut headers = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let value = percent_encoding::percent_decode_str(value.trim()).collect::<Vec<u8>>();
        let name =
            HeaderName::from_bytes(key.trim().as_bytes()).map_err(|_| bad("not a header name"))?;
        let value = HeaderValue::from_bytes(&value).map_err(|_| bad("not a header value"))?;
        headers.push((name, value));
    }
    Ok(headers)
}

fn parse_compression(text: &str) -> Result<Compression, EndpointError> {
    match text.trim() {
        "" | "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        _ => Err(EndpointError {
            what: "compression",
            value: text.to_owned(),
            reason: "expected gzip or none",
        }),
    }
}

impl TracingArgs {
    /// Resolves the flags; `OTEL_EXPORTER_OTLP_ENDPOINT` is read here when the traces
    /// endpoint is not set, as the OpenTelemetry SDKs do.
    ///
    /// # Errors
    /// An endpoint that is not an `http(s)://host:port[/path]` URL, a malformed header list,
    /// an unknown compression, an unreadable or invalid certificate file.
    pub fn settings(&self, default_service: &str) -> Result<Settings, SettingsError> {
        let var = |name| std::env::var(name).ok();
        let (endpoint, headers, compression, certificate) = (
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_HEADERS"),
            var("OTEL_EXPORTER_OTLP_COMPRESSION"),
            var("OTEL_EXPORTER_OTLP_CERTIFICATE"),
        );
        let fallbacks = Fallbacks {
            endpoint: endpoint.as_deref(),
            headers: headers.as_deref(),
            compression: compression.as_deref(),
            certificate: certificate.as_deref(),
        };
        self.settings_with(default_service, &fallbacks)
    }

    fn settings_with(
        &self,
        default_service: &str,
        fallbacks: &Fallbacks<'_>,
    ) -> Result<Settings, SettingsError> {
        let headers = parse_headers(
            self.otlp_headers
                .as_deref()
                .or(fallbacks.headers)
                .unwrap_or_default(),
        )?;
        let compression = parse_compression(
            self.otlp_compression
                .as_deref()
                .or(fallbacks.compression)
                .unwrap_or_default(),
        )?;
        let endpoint = match (&self.otlp_endpoint, fallbacks.endpoint) {
            (Some(full), _) if !full.is_empty() => Some(full.clone()),
            (_, Some(base)) if !base.is_empty() => {
                Some(format!("{}/v1/traces", base.trim_end_matches('/')))
            }
            _ => None,
        };
        let export = endpoint
            .map(|endpoint| {
                let bad = |reason| EndpointError {
                    what: "endpoint",
                    value: endpoint.clone(),
                    reason,
                };
                let uri: Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                    return Err(bad("expected an http:// or https:// URL").into());
                }
                let roots = match (self.otlp_certificate.as_deref())
                    .or(fallbacks.certificate)
                    .filter(|path| !path.is_empty())
                {
                    Some(path) => Roots::from_pem_file(Path::new(path))?,
                    None => Roots::webpki(),
                };
                Ok::<_, SettingsError>(Export {
                    endpoint: uri,
                    service_name: (self.service_name.clone())
                        .unwrap_or_else(|| default_service.to_owned()),
                    interval: Duration::from_secs(1),
                    timeout: Duration::from_secs(5),
                    headers,
                    compression,
                    roots,
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
            .settings_with("api", &Fallbacks::default())
            .unwrap();
        assert!(settings.export.is_none());
    }

    #[test]
    fn the_traces_endpoint_wins_and_the_base_gets_v1_traces() {
        let base = args(&[]).settings_with(
            "api",
            &Fallbacks {
                endpoint: Some("http://127.0.0.1:4318/"),
                ..Fallbacks::default()
            },
        );
        let export = base.unwrap().export.unwrap();
        assert_eq!(export.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(export.service_name, "api");
        let full = args(&[
            "--otlp-endpoint",
            "http://c:9/x",
            "--otel-service-name",
            "shop",
        ])
        .settings_with(
            "api",
            &Fallbacks {
                endpoint: Some("http://127.0.0.1:4318"),
                ..Fallbacks::default()
            },
        )
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
            args(&["--otlp-endpoint", "ftp://c:4318/v1/traces"])
                .settings_with("a", &Fallbacks::default())
                .is_err()
        );
        let https = args(&["--otlp-endpoint", "https://c:4318/v1/traces"])
            .settings_with("a", &Fallbacks::default())
            .unwrap();
        assert_eq!(https.export.unwrap().endpoint, "https://c:4318/v1/traces");
        assert!(
            args(&["--otlp-endpoint", "not a url"])
                .settings_with("a", &Fallbacks::default())
                .is_err()
        );
        assert!(Flags::try_parse_from(["bin", "--trace-sample-ratio", "1.5"]).is_err());
        assert_eq!(args(&["--trace-sample-ratio", "0.5"]).sample_ratio, 0.5);
    }

    #[test]
    fn headers_and_compression_come_from_the_flag_or_the_generic_variable() {
        let fallbacks = Fallbacks {
            endpoint: Some("http://127.0.0.1:4318"),
            headers: Some("x-generic=1"),
            compression: Some("gzip"),
            certificate: None,
        };
        let export = args(&[
            "--otlp-headers",
            "Authorization=Bearer%20t0k%3Den, x-tenant = shop ",
        ])
        .settings_with("api", &fallbacks)
        .unwrap()
        .export
        .unwrap();
        let headers: Vec<(String, String)> = (export.headers.iter())
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            headers,
            [
                ("authorization".to_owned(), "Bearer t0k=en".to_owned()),
                ("x-tenant".to_owned(), "shop".to_owned())
            ]
        );
        assert_eq!(export.compression, Compression::Gzip);
        let generic = args(&["--otlp-compression", "none"])
            .settings_with("api", &fallbacks)
            .unwrap()
            .export
            .unwrap();
        assert_eq!(generic.headers.len(), 1);
        assert_eq!(generic.compression, Compression::None);
    }

    #[test]
    fn bad_headers_and_compressions_are_refused() {
        for flags in [
            ["--otlp-headers", "no-equals-sign"],
            ["--otlp-headers", "bad name=1"],
            ["--otlp-headers", "x=%0Abroken"],
            ["--otlp-compression", "zstd"],
        ] {
            let error = args(&flags)
                .settings_with("a", &Fallbacks::default())
                .unwrap_err();
            assert!(error.to_string().starts_with("invalid OTLP "), "{error}");
        }
    }

    #[test]
    fn the_certificate_comes_from_the_flag_or_the_generic_variable_and_must_be_usable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let missing = missing.to_str().unwrap();
        let fallbacks = |certificate| Fallbacks {
            endpoint: Some("https://127.0.0.1:4318"),
            certificate,
            ..Fallbacks::default()
        };
        for (flags, generic) in [
            (vec!["--otlp-certificate", missing], None),
            (vec![], Some(missing)),
            (vec!["--otlp-certificate", missing], Some("")),
        ] {
            let error = args(&flags)
                .settings_with("a", &fallbacks(generic))
                .unwrap_err();
            assert!(matches!(error, SettingsError::Certificate(_)), "{error}");
            assert!(error.to_string().contains("missing.pem"), "{error}");
        }
        // No certificate anywhere: the built-in roots.
        assert!(
            args(&[])
                .settings_with("a", &fallbacks(None))
                .unwrap()
                .export
                .is_some()
        );
    }
}
