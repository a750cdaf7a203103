//! gRPC streams through the real sidecar: `plugins/grpc-watch` (built with the public SDK), a
//! service plugin, opens `grpc.health.v1.Health/Watch` on tonic's health service and follows
//! the status it streams: initial metadata, each message, cancellation. A scripted HTTP/2 server
//! shows what the plugin sent and a stream read to its trailers. A method the server does not
//! have ends with trailing metadata and the status; a cluster that is down with UNAVAILABLE.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use testkit::scrape::Scrape;
use tonic_health::ServingStatus;

use crate::grpc_callouts::{Grpc, health_service, serve_h2};
use crate::scripted::{closed_port, echo_upstream};
use crate::sidecar::{CalloutToml, Sidecar, callouts, faults};

fn toml(health: SocketAddr, config: &str) -> String {
    CalloutToml {
        module: "grpc-watch",
        plugin: "grpc-watch",
        cluster: ("health", health),
        cluster_extra: "",
        service: true,
    }
    .text(config)
}

/// What the scripted server got: path, headers and the whole request body.
type Seen = Arc<Mutex<Option<(String, HeaderMap, Bytes)>>>;

/// An HTTP/2 server that reads the whole request, then answers two `HealthCheckResponse`
/// messages (SERVING, NOT_SERVING) in two DATA frames and the trailers `grpc-status: 9`
/// (FAILED_PRECONDITION: a status the plugin can only have read from them).
async fn scripted_stream_service() -> (Grpc, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let server = serve_h2(move |request: Request<Incoming>| {
        let record = record.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            *record.lock().unwrap() = Some((parts.uri.path().to_owned(), parts.headers, body));
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", "9".parse().unwrap());
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x02\x08\x01"))),
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02\x08\x02"))),
                Ok(Frame::trailers(trailers)),
            ];
            Response::builder()
                .header("content-type", "application/grpc")
                .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
                .unwrap()
        }
    })
    .await;
    (server, seen)
}

fn value(scrape: &Scrape, name: &str) -> f64 {
    scrape.value(name, &[]).unwrap_or(0.0)
}

async fn start(health: SocketAddr, config: &str) -> (Sidecar, crate::scripted::Server) {
    let upstream = echo_upstream().await;
    let sidecar = Sidecar::start(upstream.addr, &toml(health, config)).await;
    (sidecar, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_stream_follows_status_changes_until_the_plugin_cancels_it() {
    let (health, reporter) = health_service().await;
    let (sidecar, _upstream) = start(health.addr, "health Watch redside.Items 3").await;

    let scrape = sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 1.0)
        .await;
    assert_eq!(value(&scrape, "grpc_watch_status"), 1.0, "SERVING");
    assert_eq!(value(&scrape, "grpc_watch_initial_metadata"), 1.0);

    reporter
        .set_service_status("redside.Items", ServingStatus::NotServing)
        .await;
    let scrape = sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 2.0)
        .await;
    assert_eq!(value(&scrape, "grpc_watch_status"), 2.0, "NOT_SERVING");

    // The third message makes the plugin cancel the stream: nothing more arrives.
    reporter
        .set_service_status("redside.Items", ServingStatus::Serving)
        .await;
    sidecar
        .scrape_until(|s| value(s, "grpc_watch_messages_total") == 3.0)
        .await;
    reporter
        .set_service_status("redside.Items", ServingStatus::NotServing)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let scrape = sidecar.scrape().await;
    assert_eq!(value(&scrape, "grpc_watch_messages_total"), 3.0);
    assert_eq!(value(&scrape, "grpc_watch_status"), 1.0);
    assert_eq!(
        value(&scrape, "grpc_watch_closes_total"),
        0.0,
        "no close after a cancel"
    );
    assert_eq!(faults(&scrape, "grpc-watch"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sends_the_plugins_message_and_is_read_to_its_trailers() {
    let (server, seen) = scripted_stream_service().await;
    let (sidecar, _upstream) = start(server.addr, "health Watch redside.Items 0").await;
    let scrape = sidecar
        .scrape_until(|s| {
            value(s, "grpc_watch_closes_total") == 1.0
                && callouts(s, "grpc-watch", "health", "response") == 1.0
        })
        .await;
    assert_eq!(value(&scrape, "grpc_watch_initial_metadata"), 1.0);
    assert_eq!(value(&scrape, "grpc_watch_messages_total"), 2.0);
    assert_eq!(value(&scrape, "grpc_watch_status"), 2.0, "the last message");
    assert_eq!(value(&scrape, "grpc_watch_trailing_status"), 9.0);
    assert_eq!(value(&scrape, "grpc_watch_close_status"), 9.0);

    // The request: the plugin's metadata, one framed HealthCheckRequest, its side closed (the
    // server read the body to its end before answering).
    let (path, headers, body) = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the server saw the stream");
    assert_eq!(path, "/grpc.health.v1.Health/Watch");
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["x-watcher"], "grpc-watch");
    assert!(
        headers.get("grpc-timeout").is_none(),
        "streams have no timeout"
    );
    assert_eq!(&body[..], b"\0\0\0\0\x0f\x0a\x0dredside.Items");
    assert_eq!(faults(&scrape, "grpc-watch"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_closes_with_its_trailing_status_and_a_down_cluster_with_unavailable() {
    // tonic answers an unknown method trailers-only, with grpc-status 12 UNIMPLEMENTED.
    let (health, _reporter) = health_service().await;
    let (sidecar, _upstream) = start(health.addr, "health Nope redside.Items 0").await;
    // The host counts a stream's end before the plugin's callback, but one scrape is not a
    // snapshot: wait for both.
    let scrape = sidecar
        .scrape_until(|s| {
            value(s, "grpc_watch_closes_total") == 1.0
                && callouts(s, "grpc-watch", "health", "response") == 1.0
        })
        .await;
    assert_eq!(value(&scrape, "grpc_watch_close_status"), 12.0);
    assert_eq!(value(&scrape, "grpc_watch_trailing_status"), 12.0);
    assert_eq!(value(&scrape, "grpc_watch_messages_total"), 0.0);

    let down = closed_port().await;
    let (sidecar, _upstream) = start(down, "health Watch redside.Items 0").await;
    let scrape = sidecar
        .scrape_until(|s| {
            value(s, "grpc_watch_closes_total") == 1.0
                && callouts(s, "grpc-watch", "health", "refused") == 1.0
        })
        .await;
    assert_eq!(
        value(&scrape, "grpc_watch_close_status"),
        14.0,
        "UNAVAILABLE"
    );
    assert_eq!(faults(&scrape, "grpc-watch"), 0.0);
}
