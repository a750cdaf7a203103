//! Traces across the sidecar and the real items API (over a throwaway PostgreSQL database):
//! one trace from the caller's span through the sidecar's and the api's to the statement's,
//! exemplars with its trace id on both processes' histograms, and the header-field budget of a
//! sampling sidecar.

use std::time::Duration;

use testkit::{exemplars::exemplars, otlp::Receiver};

use crate::stack::Sidecar;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn settings(ratio: f64, endpoint: Option<String>) -> traces::Settings {
    traces::Settings {
        sampler: traces::Sampler::new(ratio),
        export: endpoint.map(|endpoint| traces::Export {
            endpoint: endpoint.parse().unwrap(),
            service_name: "sidecar".into(),
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            headers: Vec::new(),
            compression: traces::Compression::None,
            roots: traces::Roots::webpki(),
        }),
    }
}

#[tokio::test]
async fn the_sidecars_and_the_apis_spans_form_one_trace() {
    let receiver = Receiver::start().await;
    let database_url =
        tokio::task::spawn_blocking(|| testkit::Postgres::shared().create_database())
            .await
            .unwrap();
    let endpoint = receiver.endpoint();
    let config = <api::Config as clap::Parser>::try_parse_from([
        "api",
        "--database-url",
        &database_url,
        "--trace-sample-ratio",
        "0",
        "--otlp-endpoint",
        &endpoint,
    ])
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    let (_stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(api::run(config, listener, async {
        let _ = api_stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !testkit::http::get(&format!("http://{api_addr}/healthz"))
        .await
        .is_ok_and(|r| r.status == 200)
    {
        assert!(!api.is_finished() && tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Sidecar::start_traced(
        api_addr,
        dir.path(),
        "openapi = { required = true }\n",
        settings(0.0, Some(endpoint.clone())),
    )
    .await;

    let created = testkit::http::send_with_headers(
        hyper::Method::POST,
        &sidecar.url("/items"),
        Some(r#"{"nom":"lampe","prix":12.5}"#),
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))],
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201, "{}", created.text());

    let spans = receiver
        .wait_for("three spans", Duration::from_secs(10), |s| s.len() >= 3)
        .await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    assert!(spans.iter().all(|s| s.trace_id() == TRACE), "{spans:#?}");
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.service == service && s.span.name == name)
            .unwrap_or_else(|| panic!("no {service} span {name}: {spans:#?}"))
    };
    let proxy = find("sidecar", "POST /items");
    let handler = find("api", "POST /items");
    let statement = find("api", "INSERT items");
    assert_eq!(proxy.parent_id(), PARENT);
    assert_eq!(handler.parent_id(), proxy.span_id());
    assert_eq!(statement.parent_id(), handler.span_id());
    assert_eq!(
        statement.attribute("db.operation.name").as_deref(),
        Some("INSERT")
    );

    let (_, sidecar_exemplars) =
        testkit::scrape::exemplars_until(&sidecar.admin_url("/metrics")).await;
    assert_eq!(sidecar_exemplars[0].trace_id, TRACE);
    let api_text = testkit::http::scrape(&format!("http://{api_addr}/metrics"))
        .await
        .unwrap()
        .text();
    let api_exemplars = exemplars(&api_text);
    assert!(
        api_exemplars
            .iter()
            .any(|e| e.trace_id == TRACE && e.has_label("operation", "insert")),
        "{api_text}"
    );

    // A sidecar that starts a trace adds `traceparent`: an HTTP/1.0 request without `Host`
    // and with as many header fields as the sidecar accepts (100), to which it adds `Host`,
    // `x-forwarded-for`, `x-forwarded-proto` and `traceparent`, still gets the api's answer.
    let dir = tempfile::tempdir().unwrap();
    let sampling = Sidecar::start_traced(api_addr, dir.path(), "", settings(1.0, None)).await;
    let mut head = String::from("GET /items HTTP/1.0\r\n");
    for n in 0..100 {
        head.push_str(&format!("x-filler-{n}: {n}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(sampling.proxy)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    let answer = testkit::http::read_response(&mut stream).await.unwrap();
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.ends_with(" 200 OK"), "{answer}");
}
