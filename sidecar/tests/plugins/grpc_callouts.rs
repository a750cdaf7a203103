//! gRPC callouts through the real sidecar: `plugins/grpc-auth` (built with the public SDK)
//! pauses each request, asks a real gRPC health service (tonic-health, a `[[clusters]]` entry
//! spoken to over h2c) whether a service is SERVING, and allows or denies. The health service's
//! errors, the cluster being down and a server too slow for the plugin's timeout reach the
//! plugin as Envoy reports them (`on_grpc_close` with the status, `proxy_get_status` with its
//! message), never as a trap.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::scripted::{closed_port, echo_upstream, get};
use crate::sidecar::{CalloutToml, Sidecar};

fn callouts(scrape: &testkit::scrape::Scrape, result: &str) -> f64 {
    crate::sidecar::callouts(scrape, "grpc-auth", "health", result)
}

fn faults(scrape: &testkit::scrape::Scrape) -> f64 {
    crate::sidecar::faults(scrape, "grpc-auth")
}

/// A server task, aborted when dropped.
pub struct Grpc {
    pub addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Grpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// tonic's health service on 127.0.0.1:0: `redside.Items` SERVING, nothing else registered.
pub async fn health_service() -> (Grpc, HealthReporter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("redside.Items", ServingStatus::Serving)
        .await;
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    (Grpc { addr, task }, reporter)
}

/// The response body of the scripted HTTP/2 servers.
pub type H2Body = BoxBody<Bytes, Infallible>;

/// A scripted HTTP/2 (h2c) server on 127.0.0.1:0 answering each request with `handler`.
pub async fn serve_h2<F, Fut>(handler: F) -> Grpc
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<H2Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            let service = service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            tokio::spawn(
                http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    Grpc { addr, task }
}

/// What the slow server saw of the last call: its path and headers.
type Seen = Arc<Mutex<Option<(String, HeaderMap)>>>;

/// An HTTP/2 gRPC server that records each call and answers SERVING after 3 s.
async fn slow_service() -> (Grpc, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let server = serve_h2(move |request: Request<Incoming>| {
        let path = request.uri().path().to_owned();
        *record.lock().unwrap() = Some((path, request.headers().clone()));
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let message = Bytes::from_static(b"\0\0\0\0\x02\x08\x01");
            Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", "0")
                .body(Full::new(message).boxed())
                .unwrap()
        }
    })
    .await;
    (server, seen)
}

fn toml(health: SocketAddr, config: &str) -> String {
    toml_with(health, config, "")
}

fn toml_with(health: SocketAddr, config: &str, cluster_extra: &str) -> String {
    CalloutToml {
        module: "grpc-auth",
        plugin: "grpc-auth",
        cluster: ("health", health),
        cluster_extra,
        service: false,
    }
    .text(config)
}

fn decisions(scrape: &testkit::scrape::Scrape, decision: &str) -> f64 {
    scrape
        .value("grpc_auth_decisions_total", &[("decision", decision)])
        .unwrap_or(0.0)
}

fn callbacks(scrape: &testkit::scrape::Scrape, callback: &str) -> f64 {
    scrape
        .value(
            "sidecar_plugin_callbacks_total",
            &[("plugin", "grpc-auth"), ("callback", callback)],
        )
        .unwrap_or(0.0)
}

/// (status, x-grpc-status, body) of a request the plugin denied or let through.
async fn ask(sidecar: &Sidecar) -> (u16, String, String) {
    let (status, headers, body) = get(&sidecar.url("/items"), &[("x-user", "alice")]).await;
    let grpc_status = headers
        .get("x-grpc-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, grpc_status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_allows_and_not_serving_or_not_found_denies() {
    let upstream = echo_upstream().await;
    let (health, reporter) = health_service().await;
    let sidecar = Sidecar::start(
        upstream.addr,
        &toml(health.addr, "health redside.Items 1000"),
    )
    .await;

    // SERVING: the request reaches the upstream with the plugin's header.
    let (status, _, body) = ask(&sidecar).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "echo /items x-auth-grpc=serving")
    );

    // NOT_SERVING: an OK answer whose message says no.
    reporter
        .set_service_status("redside.Items", ServingStatus::NotServing)
        .await;
    let (status, grpc_status, body) = ask(&sidecar).await;
    assert_eq!(
        (status, grpc_status.as_str(), body.as_str()),
        (403, "0", "serving status 2\n")
    );

    // NOT_FOUND: the health service's error, its status and message as the plugin read them.
    sidecar
        .reload(&toml(health.addr, "health redside.Missing 1000"))
        .await;
    let (status, grpc_status, body) = ask(&sidecar).await;
    assert_eq!(
        (status, grpc_status.as_str(), body.as_str()),
        (403, "5", "service not registered\n")
    );

    let scrape = sidecar.scrape().await;
    assert_eq!(decisions(&scrape, "allow"), 1.0);
    assert_eq!(decisions(&scrape, "deny"), 2.0);
    assert_eq!(callouts(&scrape, "response"), 3.0);
    assert_eq!(callbacks(&scrape, "proxy_on_grpc_receive"), 2.0);
    assert_eq!(callbacks(&scrape, "proxy_on_grpc_close"), 1.0);
    assert_eq!(faults(&scrape), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_is_down_is_unavailable_and_an_unknown_one_a_dispatch_error() {
    let upstream = echo_upstream().await;
    let down = closed_port().await;
    let sidecar = Sidecar::start(upstream.addr, &toml(down, "health redside.Items 1000")).await;
    for _ in 0..2 {
        let (status, grpc_status, _) = ask(&sidecar).await;
        assert_eq!((status, grpc_status.as_str()), (403, "14"), "UNAVAILABLE");
    }
    let scrape = sidecar.scrape().await;
    assert_eq!(callouts(&scrape, "refused"), 2.0);
    assert_eq!(decisions(&scrape, "deny"), 2.0);

    // A cluster the TOML does not declare: `dispatch_grpc_call` returns an error, no trap.
    sidecar
        .reload(&toml(down, "nowhere redside.Items 1000"))
        .await;
    let (status, headers, _) = get(&sidecar.url("/items"), &[]).await;
    assert_eq!(
        (status, &headers["x-grpc-auth"]),
        (500, &"dispatch-failed".parse().unwrap())
    );
    let scrape = sidecar.scrape().await;
    assert_eq!(decisions(&scrape, "dispatch_failed"), 1.0);
    assert_eq!(faults(&scrape), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_slower_than_the_plugins_timeout_is_deadline_exceeded_and_holds_the_cap() {
    let upstream = echo_upstream().await;
    let (slow, seen) = slow_service().await;
    let sidecar = Sidecar::start(
        upstream.addr,
        &toml_with(
            slow.addr,
            "health redside.Items 1000",
            "max_concurrent_calls = 1",
        ),
    )
    .await;
    // The first call holds the cluster's only permit until its 1 s is up (the server takes
    // 3 s); a second one sent meanwhile is over the cap, which Envoy reports as UNAVAILABLE.
    let first = tokio::spawn({
        let url = sidecar.url("/items");
        async move { get(&url, &[("x-user", "alice")]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, grpc_status, _) = ask(&sidecar).await;
    assert_eq!((status, grpc_status.as_str()), (403, "14"), "over the cap");
    let (status, headers, _) = first.await.unwrap();
    assert_eq!(
        (status, &headers["x-grpc-status"]),
        (403, &"4".parse().unwrap()),
        "DEADLINE_EXCEEDED"
    );

    // What went on the wire: the method's path, gRPC's headers, the plugin's metadata.
    let (path, headers) = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the server saw the call");
    assert_eq!(path, "/grpc.health.v1.Health/Check");
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["grpc-timeout"], "1000m");
    assert_eq!(headers["x-user"], "alice");

    let scrape = sidecar.scrape().await;
    assert_eq!(callouts(&scrape, "timeout"), 1.0);
    assert_eq!(callouts(&scrape, "overflow"), 1.0);
    assert_eq!(faults(&scrape), 0.0);
}
