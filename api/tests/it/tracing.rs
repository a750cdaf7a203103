//! The api continues the caller's trace: a server span per request and a client span per
//! statement, exported to a real OTLP receiver; exemplars on `db_query_duration_seconds`;
//! the trace id in the log lines; unsampled and malformed `traceparent` values; export to an
//! `https://` receiver whose CA is given with `--otlp-certificate`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::time::Duration;

use http::Method;
use testkit::{
    Postgres, Process, Scrape, exemplars::exemplars, free_port, otlp::Received, otlp::Receiver,
};

use crate::support::{TestApp, spawn_app_on};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "00f067aa0ba902b7";

async fn traced_app(receiver: &Receiver) -> TestApp {
    let endpoint = receiver.endpoint();
    let flags = ["--trace-sample-ratio", "0", "--otlp-endpoint", &endpoint];
    spawn_app_on(&Postgres::shared().create_database(), &flags).await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&str>,
    traceparent: &str,
) -> testkit::http::Response {
    testkit::http::send_with_headers(
        method,
        &app.url(path),
        body,
        &[("traceparent", traceparent)],
    )
    .await
    .unwrap()
}

fn by_name<'a>(spans: &'a [Received], trace: &str, name: &str) -> &'a Received {
    spans
        .iter()
        .find(|s| s.trace_id() == trace && s.span.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {trace}: {spans:#?}"))
}

async fn openmetrics(app: &TestApp) -> String {
    let text = testkit::http::scrape(&app.url("/metrics"))
        .await
        .unwrap()
        .text();
    Scrape::parse(&text).unwrap();
    text
}

#[tokio::test]
async fn sampled_requests_get_a_server_span_a_span_per_statement_and_exemplars() {
    let receiver = Receiver::start().await;
    let app = traced_app(&receiver).await;

    let created = send(
        &app,
        Method::POST,
        "/items",
        Some(r#"{"nom":"traced","prix":1.5}"#),
        &format!("00-{TRACE}-{PARENT}-01"),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.headers["location"].to_str().unwrap().to_owned();
    let read = send(
        &app,
        Method::GET,
        &location,
        None,
        &format!("00-{OTHER}-{PARENT}-01"),
    )
    .await;
    assert_eq!(read.status, 200);

    let spans = receiver
        .wait_for("4 spans", Duration::from_secs(10), |s| s.len() >= 4)
        .await;
    assert_eq!(spans.len(), 4, "{spans:#?}");
    for (trace, server, statement, operation) in [
        (TRACE, "POST /items", "INSERT items", "insert"),
        (OTHER, "GET /items/{id}", "SELECT items", "select"),
    ] {
        let server = by_name(&spans, trace, server);
        assert_eq!(server.service, "api");
        assert_eq!(
            server.parent_id(),
            PARENT,
            "the caller's span is the parent"
        );
        assert_eq!(server.span.kind, 2, "server");
        let db = by_name(&spans, trace, statement);
        assert_eq!(
            db.parent_id(),
            server.span_id(),
            "the statement is under the request"
        );
        assert_eq!(db.span.kind, 3, "client");
        assert_eq!(
            db.attribute("db.system.name").as_deref(),
            Some("postgresql")
        );
        assert_eq!(db.attribute("db.collection.name").as_deref(), Some("items"));
        assert_eq!(
            db.attribute("redside.db.operation").as_deref(),
            Some(operation)
        );
        assert!(db.span.start_time_unix_nano >= server.span.start_time_unix_nano);
        assert!(db.span.end_time_unix_nano <= server.span.end_time_unix_nano);
    }

    let text = openmetrics(&app).await;
    let found = exemplars(&text);
    for (trace, operation) in [(TRACE, "insert"), (OTHER, "select")] {
        let exemplar = found
            .iter()
            .find(|e| e.has_label("operation", operation))
            .unwrap_or_else(|| panic!("no {operation} exemplar: {text}"));
        assert!(
            exemplar
                .series
                .starts_with("db_query_duration_seconds_bucket{")
        );
        assert_eq!(exemplar.trace_id, trace);
        assert!(exemplar.value > 0.0 && exemplar.value <= exemplar.le().unwrap());
    }
    assert_eq!(found.len(), 2, "{found:#?}");
    let classic = testkit::http::get(&app.url("/metrics"))
        .await
        .unwrap()
        .text();
    Scrape::parse(&classic).unwrap();
    assert!(!classic.contains("trace_id"));
}

#[tokio::test]
async fn unsampled_and_malformed_parents_leave_no_span_and_no_exemplar() {
    let receiver = Receiver::start().await;
    let app = traced_app(&receiver).await;
    let body = Some(r#"{"nom":"quiet","prix":1}"#);
    for traceparent in [
        format!("00-{TRACE}-{PARENT}-00"),
        "00-garbage".to_owned(),
        format!("00-{TRACE}-0000000000000000-01"),
    ] {
        let created = send(&app, Method::POST, "/items", body, &traceparent).await;
        assert_eq!(created.status, 201, "{traceparent}: {}", created.text());
    }
    // A sampled marker: once its spans arrive, nothing else was exported.
    let marker = send(
        &app,
        Method::GET,
        "/items",
        None,
        &format!("00-{OTHER}-{PARENT}-01"),
    )
    .await;
    assert_eq!(marker.status, 200);
    let spans = receiver
        .wait_for("the marker's spans", Duration::from_secs(10), |s| {
            s.len() >= 2
        })
        .await;
    assert!(spans.iter().all(|s| s.trace_id() == OTHER), "{spans:#?}");
    by_name(&spans, OTHER, "SELECT items");
    let ids: Vec<String> = exemplars(&openmetrics(&app).await)
        .into_iter()
        .map(|e| e.trace_id)
        .collect();
    assert_eq!(ids, [OTHER]);
}

#[tokio::test]
async fn the_binary_logs_the_trace_id_and_reads_the_standard_otel_variables() {
    let receiver = Receiver::start().await;
    let database_url = Postgres::shared().create_database();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let collector = format!("http://{}", receiver.addr);
    let mut api = Process::spawn(
        env!("CARGO_BIN_EXE_api"),
        &[],
        [
            ("DATABASE_URL", database_url.as_str()),
            ("API_LISTEN", &format!("127.0.0.1:{port}")),
            ("RUST_LOG", "api=debug"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.as_str()),
            ("OTEL_SERVICE_NAME", "items"),
            ("OTEL_TRACES_SAMPLER_ARG", "0"),
        ],
    );
    api.wait_ready(&format!("{base}/healthz"), Duration::from_secs(30))
        .await
        .expect("api ready");
    let response = testkit::http::send_with_headers(
        Method::GET,
        &format!("{base}/items"),
        None,
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    let spans = receiver
        .wait_for("the request's spans", Duration::from_secs(10), |s| {
            s.len() >= 2
        })
        .await;
    assert!(
        spans
            .iter()
            .all(|s| s.service == "items" && s.trace_id() == TRACE),
        "{spans:#?}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !api.output_text().contains(&format!("trace_id={TRACE}")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no trace id in the log:\n{}",
            api.output_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn spans_reach_an_https_collector_whose_ca_is_given() {
    let receiver = Receiver::start_tls().await;
    let endpoint = receiver.endpoint();
    let ca = receiver.ca_path().to_str().unwrap().to_owned();
    let flags = [
        "--trace-sample-ratio",
        "0",
        "--otlp-endpoint",
        &endpoint,
        "--otlp-certificate",
        &ca,
    ];
    let app = spawn_app_on(&Postgres::shared().create_database(), &flags).await;
    let listed = send(
        &app,
        Method::GET,
        "/items",
        None,
        &format!("00-{TRACE}-{PARENT}-01"),
    )
    .await;
    assert_eq!(listed.status, 200);
    let spans = receiver
        .wait_for(
            "the request's spans over TLS",
            Duration::from_secs(10),
            |s| s.len() >= 2,
        )
        .await;
    assert_eq!(by_name(&spans, TRACE, "GET /items").service, "api");
    by_name(&spans, TRACE, "SELECT items");
    assert_eq!(receiver.handshake_failures(), 0);
}
