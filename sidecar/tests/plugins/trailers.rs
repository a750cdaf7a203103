//! Trailers and late local replies through the real sidecar with `plugins/trailer-watch` (built
//! with the public SDK): request trailers reach `on_request_trailers` after the body, response
//! trailers reach `on_response_trailers` before `on_log`; a local reply from
//! `on_response_headers` replaces the upstream's answer; one from `on_log`, after the response
//! has left, is refused (the client's answer is unchanged; the SDK traps on the refusal); an
//! HTTP/2 gRPC-shaped request is shown to plugins as Envoy shows it (`:method`, `:path`,
//! `:authority`, `request.protocol`).
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::scripted::{echo_upstream, get, raw_trailers_upstream, with_trailers};
use crate::sidecar::Sidecar;

const TOML: &str = r#"
[[plugins]]
name = "watch"
path = "trailer-watch.wasm"
request_body = true
"#;

fn seen(scrape: &testkit::scrape::Scrape, side: &str, name: &str) -> Option<f64> {
    scrape.value("trailers_seen_total", &[("side", side), ("name", name)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_trailers_reach_their_callbacks() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, TOML).await;

    // A chunked request with two trailers.
    let client = Client::builder(TokioExecutor::new()).build_http();
    // `trailer` declares them: hyper sends only declared ones.
    let request = Request::post(sidecar.url("/upload"))
        .header("trailer", "x-checksum, x-extra")
        .body(with_trailers(
            "payload",
            &[("x-checksum", "c1"), ("x-extra", "e")],
        ))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from_static(b"echo /upload "));

    // A response with trailers (from another upstream), read to its end.
    let raw = raw_trailers_upstream().await;
    let second = Sidecar::start(raw.addr, TOML).await;
    let (status, _, body) = get(&second.url("/trailers"), &[]).await;
    assert_eq!((status, body.as_str()), (200, "hello"));
    let scrape = second
        .scrape_until(|s| seen(s, "response", "grpc-status") == Some(1.0))
        .await;
    assert_eq!(seen(&scrape, "response", "x-checksum"), Some(1.0));
    assert_eq!(seen(&scrape, "response", "other"), Some(0.0));

    let scrape = sidecar.scrape().await;
    assert_eq!(seen(&scrape, "request", "x-checksum"), Some(1.0));
    assert_eq!(seen(&scrape, "request", "other"), Some(1.0));
    assert_eq!(seen(&scrape, "request", "grpc-status"), Some(0.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_reply_before_the_head_leaves_replaces_the_response_and_a_later_one_is_refused() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, TOML).await;

    let (status, headers, body) = get(&sidecar.url("/items"), &[("x-late", "headers")]).await;
    assert_eq!((status, body.as_str()), (418, "replaced late\n"));
    assert_eq!(headers["x-late"], "headers");

    let (status, _, body) = get(&sidecar.url("/items"), &[("x-late", "log")]).await;
    assert_eq!((status, body.as_str()), (200, "echo /items "));
    let trap = [("plugin", "watch"), ("kind", "trap")];
    sidecar
        .scrape_until(|s| s.value("sidecar_plugin_faults_total", &trap) == Some(1.0))
        .await;
    // The plugin goes on (on a fresh instance).
    let (status, _, _) = get(&sidecar.url("/items"), &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_http2_and_grpc_requests_as_envoy_shows_them() {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, TOML).await;
    let authority = sidecar.proxy.to_string();

    // HTTP/2 with prior knowledge, a gRPC-shaped call (the way gRPC clients connect).
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::post(sidecar.url("/grpc.health.v1.Health/Check?x=1"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-show-view", "1")
        .body(http_body_util::Full::new(Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ])))
        .unwrap();
    let response = h2.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    let seen = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(seen("x-seen-method"), "POST");
    assert_eq!(seen("x-seen-path"), "/grpc.health.v1.Health/Check?x=1");
    assert_eq!(seen("x-seen-authority"), authority);
    assert_eq!(seen("x-seen-protocol"), "HTTP/2");

    // The same plugin on HTTP/1.1: `:authority` from `Host`.
    let (status, headers, _) = get(&sidecar.url("/items"), &[("x-show-view", "1")]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-seen-method"], "GET");
    assert_eq!(headers["x-seen-path"], "/items");
    assert_eq!(headers["x-seen-authority"], authority.as_str());
    assert_eq!(headers["x-seen-protocol"], "HTTP/1.1");
}
