//! Trace context through the sidecar, with a stub upstream that echoes the headers it got and a
//! real OTLP receiver: the `traceparent` sent on, the duration exemplar, the exported span;
//! unsampled and malformed values; a dead or slow collector.

use std::time::Duration;

use hyper::Request;
use testkit::{Scrape, otlp::Receiver};

use crate::stub::{Stub, closed_port};
use crate::support::{Sidecar, echoed, empty, send};

const ROUTES: &str = "[[routes]]\ntemplate = \"/items/{id}\"\n";
pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const PARENT: &str = "00f067aa0ba902b7";

pub fn settings(ratio: f64, endpoint: Option<String>) -> traces::Settings {
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

/// GETs `url` with `headers`; the upstream's echo of the trace headers it received.
async fn get_traced(url: &str, headers: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let mut request = Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = send(request.body(empty()).unwrap()).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let echo = echoed(&response);
    let header = |name: &str| -> Vec<String> {
        serde_json::from_value(echo["headers"][name].clone()).unwrap_or_default()
    };
    (header("traceparent"), header("tracestate"))
}

#[tokio::test]
async fn a_sampled_parent_goes_on_with_the_sidecars_span_and_becomes_an_exemplar() {
    let stub = Stub::start().await;
    let receiver = Receiver::start().await;
    // Ratio 0: only the sampled parent makes this request traced.
    let sidecar = Sidecar::start_traced(
        &stub.url(),
        ROUTES,
        settings(0.0, Some(receiver.endpoint())),
    )
    .await;

    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let (traceparent, tracestate) = get_traced(
        &sidecar.url("/items/7"),
        &[("traceparent", &incoming), ("tracestate", "vendor=opaque")],
    )
    .await;
    let [sent] = traceparent.as_slice() else {
        panic!("one traceparent upstream: {traceparent:?}")
    };
    let fields: Vec<&str> = sent.split('-').collect();
    assert_eq!(
        (fields[0], fields[1], fields[3]),
        ("00", TRACE, "01"),
        "{sent}"
    );
    let span_id = fields[2];
    assert_ne!(
        span_id, PARENT,
        "the sidecar's own span is the parent upstream"
    );
    assert_eq!(tracestate, ["vendor=opaque"]);

    let (_, found) = testkit::scrape::exemplars_until(&sidecar.admin_url("/metrics")).await;
    let [exemplar] = found.as_slice() else {
        panic!("one exemplar: {found:#?}")
    };
    assert!(
        exemplar
            .series
            .starts_with("http_request_duration_seconds_bucket{")
    );
    assert!(exemplar.has_label("handler", "/items/{id}") && exemplar.has_label("method", "GET"));
    assert_eq!(exemplar.trace_id, TRACE);
    assert!(
        exemplar.value > 0.0 && exemplar.value <= exemplar.le().unwrap(),
        "{exemplar:?}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - exemplar.timestamp.unwrap()).abs() < 60.0,
        "{exemplar:?}"
    );

    // The classic text format stays valid and carries no exemplar.
    let classic = testkit::http::get(&sidecar.admin_url("/metrics"))
        .await
        .unwrap()
        .text();
    Scrape::parse(&classic).unwrap();
    assert!(!classic.contains("trace_id"), "{classic}");

    let spans = receiver
        .wait_for("the sidecar's span", Duration::from_secs(5), |s| {
            !s.is_empty()
        })
        .await;
    let [span] = spans.as_slice() else {
        panic!("one span: {spans:#?}")
    };
    assert_eq!(span.service, "sidecar");
    assert_eq!(
        (span.trace_id().as_str(), span.parent_id().as_str()),
        (TRACE, PARENT)
    );
    assert_eq!(span.span_id(), span_id);
    assert_eq!(span.span.name, "GET /items/{id}");
    assert_eq!(span.span.kind, 2, "server");
    assert_eq!(span.attribute("http.route").as_deref(), Some("/items/{id}"));
    assert_eq!(
        span.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(span.span.end_time_unix_nano > span.span.start_time_unix_nano);
}

#[tokio::test]
async fn unsampled_and_malformed_parents_leave_no_exemplar_and_no_span() {
    let stub = Stub::start().await;
    let receiver = Receiver::start().await;
    let sidecar = Sidecar::start_traced(
        &stub.url(),
        ROUTES,
        settings(0.0, Some(receiver.endpoint())),
    )
    .await;

    // Unsampled: passed on untouched, with its tracestate.
    let unsampled = format!("00-{TRACE}-{PARENT}-00");
    let received = get_traced(
        &sidecar.url("/items/1"),
        &[("traceparent", &unsampled), ("tracestate", "vendor=opaque")],
    )
    .await;
    assert_eq!(
        received,
        (vec![unsampled.clone()], vec!["vendor=opaque".to_owned()])
    );
    // Malformed: dropped with its tracestate; at ratio 0 no new trace starts.
    for malformed in [
        "00-xyz",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "zz",
    ] {
        let received = get_traced(
            &sidecar.url("/items/2"),
            &[("traceparent", malformed), ("tracestate", "vendor=opaque")],
        )
        .await;
        assert_eq!(received, (vec![], vec![]), "{malformed}");
    }
    // None at ratio 0: nothing added.
    assert_eq!(
        get_traced(&sidecar.url("/items/3"), &[]).await,
        (vec![], vec![])
    );

    // A sampled marker afterwards: once its span is exported, nothing else was.
    let marker = "0af7651916cd43dd8448eb211c80319c";
    get_traced(
        &sidecar.url("/items/4"),
        &[("traceparent", &format!("00-{marker}-{PARENT}-01"))],
    )
    .await;
    let spans = receiver
        .wait_for("the marker's span", Duration::from_secs(5), |s| {
            !s.is_empty()
        })
        .await;
    let ids: Vec<String> = spans.iter().map(|s| s.trace_id()).collect();
    assert_eq!(ids, [marker]);
    let (text, found) = testkit::scrape::exemplars_until(&sidecar.admin_url("/metrics")).await;
    let ids: Vec<String> = found.into_iter().map(|e| e.trace_id).collect();
    assert_eq!(ids, [marker], "{text}");
}

#[tokio::test]
async fn without_a_parent_the_ratio_starts_root_traces() {
    let stub = Stub::start().await;
    let receiver = Receiver::start().await;
    let sidecar = Sidecar::start_traced(
        &stub.url(),
        ROUTES,
        settings(1.0, Some(receiver.endpoint())),
    )
    .await;
    let (traceparent, _) = get_traced(&sidecar.url("/items/5"), &[]).await;
    let parent = traces::TraceParent::parse(traceparent[0].as_bytes()).unwrap();
    assert!(parent.sampled);
    let spans = receiver
        .wait_for("the root span", Duration::from_secs(5), |s| !s.is_empty())
        .await;
    assert_eq!(spans[0].trace_id(), parent.trace_id.to_string());
    assert_eq!(spans[0].span_id(), parent.span_id.to_string());
    assert_eq!(spans[0].parent_id(), "", "a root span has no parent");
}

/// Sends `n` traced requests (all must succeed) and waits until the sidecar counts them all
/// as dropped by the failing export.
async fn drops_all(sidecar: &Sidecar, n: usize) {
    for id in 0..n {
        get_traced(&sidecar.url(&format!("/items/{id}")), &[]).await;
    }
    let dropped = [("reason", "export_failed")];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = sidecar.scrape().await;
        let count = scrape.value("otlp_spans_dropped_total", &dropped);
        if count == Some(n as f64) {
            assert_eq!(scrape.value("otlp_spans_exported_total", &[]), Some(0.0));
            assert_eq!(
                scrape.value("otlp_spans_dropped_total", &[("reason", "queue_full")]),
                Some(0.0)
            );
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "dropped: {count:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dead_collector_changes_no_response_and_its_drops_are_counted() {
    let stub = Stub::start().await;
    let dead = format!("http://{}/v1/traces", closed_port().await);
    let sidecar = Sidecar::start_traced(&stub.url(), ROUTES, settings(1.0, Some(dead))).await;
    drops_all(&sidecar, 20).await;
}

#[tokio::test]
async fn a_slow_collector_changes_no_response_and_its_drops_are_counted() {
    let stub = Stub::start().await;
    // Slower than the export timeout (300 ms here).
    let receiver = Receiver::start_with_delay(Duration::from_secs(30)).await;
    let sidecar = Sidecar::start_traced(
        &stub.url(),
        ROUTES,
        settings(1.0, Some(receiver.endpoint())),
    )
    .await;
    drops_all(&sidecar, 20).await;
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn export_headers_and_gzip_reach_the_collector() {
    let stub = Stub::start().await;
    let receiver = Receiver::start().await;
    let mut settings = settings(1.0, Some(receiver.endpoint()));
    let export = settings.export.as_mut().unwrap();
    export.headers = vec![(
        http::HeaderName::from_static("authorization"),
        http::HeaderValue::from_static("Bearer t0ken"),
    )];
    export.compression = traces::Compression::Gzip;
    let sidecar = Sidecar::start_traced(&stub.url(), ROUTES, settings).await;

    let (traceparent, _) = get_traced(&sidecar.url("/items/6"), &[]).await;
    let trace = traces::TraceParent::parse(traceparent[0].as_bytes())
        .unwrap()
        .trace_id
        .to_string();
    // The receiver decodes only what it gunzipped: the span proves the body was gzip.
    let spans = receiver
        .wait_for("the span", Duration::from_secs(5), |s| !s.is_empty())
        .await;
    assert_eq!(spans[0].trace_id(), trace);
    let exports = receiver.export_headers();
    assert!(!exports.is_empty());
    for headers in exports {
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(headers["authorization"], "Bearer t0ken");
    }
}
