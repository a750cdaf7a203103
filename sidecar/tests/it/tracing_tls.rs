//! OTLP export over TLS, through the real binary: a TLS receiver whose certificate a CA made at
//! test time signed; the sidecar trusts that CA with `--otlp-certificate`, and without it
//! refuses the receiver (the drops counted, no request affected); an unreadable or invalid
//! certificate file stops start-up.

use std::time::Duration;

use testkit::{Process, Scrape, otlp::Receiver};

use crate::stub::Stub;

/// The sidecar binary in front of `upstream`, sampling every request, exporting with `args`.
struct Traced {
    process: Process,
    port: u16,
    admin_port: u16,
}

impl Traced {
    async fn start(upstream: &str, args: &[&str]) -> Traced {
        let (port, admin_port) = (testkit::free_port(), testkit::free_port());
        let (listen, admin) = (
            format!("127.0.0.1:{port}"),
            format!("127.0.0.1:{admin_port}"),
        );
        let base = [
            "--listen",
            &listen,
            "--admin-listen",
            &admin,
            "--upstream",
            upstream,
            "--trace-sample-ratio",
            "1",
        ];
        let mut process = Process::spawn(
            env!("CARGO_BIN_EXE_sidecar"),
            &[&base[..], args].concat(),
            [("RUST_LOG", "info")],
        );
        process
            .wait_ready(
                &format!("http://127.0.0.1:{admin_port}/readyz"),
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        Traced {
            process,
            port,
            admin_port,
        }
    }

    /// GETs `path` through the sidecar; it must answer 200.
    async fn get(&self, path: &str) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let response = testkit::http::get(&url).await.unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
    }

    /// Scrapes until `done` holds, failing after 10 s with the last scrape and the output.
    async fn scrape_until(&self, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin_port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let scrape = Scrape::parse(&testkit::http::get(&url).await.unwrap().text()).unwrap();
            if done(&scrape) {
                return scrape;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "last scrape: {:#?}\noutput: {}",
                scrape.series("otlp_spans_dropped_total"),
                self.process.output_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn spans_reach_an_https_collector_whose_ca_is_given() {
    let stub = Stub::start().await;
    let receiver = Receiver::start_tls().await;
    let endpoint = receiver.endpoint();
    assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");
    let ca = receiver.ca_path().to_str().unwrap().to_owned();
    let sidecar = Traced::start(
        &stub.url(),
        &["--otlp-endpoint", &endpoint, "--otlp-certificate", &ca],
    )
    .await;

    sidecar.get("/items/1").await;
    sidecar.get("/items/2").await;
    let spans = receiver
        .wait_for("two spans over TLS", Duration::from_secs(10), |s| {
            s.len() >= 2
        })
        .await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.service, "sidecar");
        assert_eq!(span.span.kind, 2, "server");
        assert_eq!(span.trace_id().len(), 32);
    }
    assert_ne!(spans[0].trace_id(), spans[1].trace_id(), "two root traces");
    assert!(
        (spans.iter()).all(|s| s.attribute("http.request.method").as_deref() == Some("GET")),
        "{spans:#?}"
    );
    let scrape = sidecar
        .scrape_until(|s| s.value("otlp_spans_exported_total", &[]) == Some(2.0))
        .await;
    assert_eq!(
        scrape.value("otlp_spans_dropped_total", &[("reason", "export_failed")]),
        Some(0.0)
    );
    assert_eq!(receiver.handshake_failures(), 0);
}

#[tokio::test]
async fn without_the_ca_the_collector_is_refused_and_only_spans_are_lost() {
    let stub = Stub::start().await;
    let receiver = Receiver::start_tls().await;
    // The built-in (Mozilla) roots do not know the test CA.
    let sidecar = Traced::start(&stub.url(), &["--otlp-endpoint", &receiver.endpoint()]).await;

    for id in 0..5 {
        sidecar.get(&format!("/items/{id}")).await;
    }
    let dropped = [("reason", "export_failed")];
    let scrape = sidecar
        .scrape_until(|s| s.value("otlp_spans_dropped_total", &dropped) == Some(5.0))
        .await;
    assert_eq!(scrape.value("otlp_spans_exported_total", &[]), Some(0.0));
    assert!(receiver.spans().is_empty());
    assert!(
        receiver.handshake_failures() > 0,
        "the sidecar refused the certificate in the handshake"
    );
    let output = sidecar.process.output_text();
    assert!(
        output.contains("span export failed") && output.contains("UnknownIssuer"),
        "{output}"
    );
}

#[tokio::test]
async fn an_unreadable_or_invalid_certificate_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("invalid.pem");
    std::fs::write(&invalid, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (invalid, missing) = (invalid.to_str().unwrap(), missing.to_str().unwrap());
    let endpoint = "https://127.0.0.1:4318/v1/traces";
    for (args, envs, file) in [
        (vec!["--otlp-certificate", missing], vec![], "missing.pem"),
        (vec!["--otlp-certificate", invalid], vec![], "invalid.pem"),
        (
            vec![],
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", invalid)],
            "invalid.pem",
        ),
    ] {
        let base = [
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--otlp-endpoint",
            endpoint,
        ];
        let mut process = Process::spawn(
            env!("CARGO_BIN_EXE_sidecar"),
            &[&base[..], &args].concat(),
            envs.into_iter().chain([("RUST_LOG", "info")]),
        );
        let status = process.wait_exit(Duration::from_secs(10)).await.unwrap();
        let output = process.output_text();
        assert!(!status.success(), "{output}");
        assert!(
            output.contains("OTLP certificate file") && output.contains(file),
            "{args:?}: {output}"
        );
    }
}
