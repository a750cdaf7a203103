//! gRPC through the sidecar, with real peers: tonic's health service (unary `Check`,
//! server-streaming `Watch`) and reflection service (bidirectional) upstream, their generated
//! clients downstream. The go-grpc-prometheus families and the RED family afterwards; the
//! sidecar's own failures as gRPC errors; `grpc-timeout`; an upstream that dies mid-stream.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use testkit::Scrape;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_stream::{StreamExt, wrappers::TcpListenerStream};
use tonic::{Code, transport::Channel};
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_client::HealthClient},
    server::HealthReporter,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::support::Sidecar;

pub(crate) const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION: &str = "grpc.reflection.v1.ServerReflection";

/// Which server reflection a [`GrpcUpstream`] serves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reflection {
    V1,
    V1alpha,
    Off,
}

pub(crate) struct GrpcUpstream {
    pub(crate) addr: SocketAddr,
    health: HealthReporter,
    task: JoinHandle<()>,
}

impl Drop for GrpcUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn grpc_upstream() -> GrpcUpstream {
    grpc_upstream_with(Reflection::V1).await
}

/// tonic's health service (with `redside.Test` serving) and the `reflection` asked for, on
/// 127.0.0.1:0.
pub(crate) async fn grpc_upstream_with(reflection: Reflection) -> GrpcUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("redside.Test", ServingStatus::Serving)
        .await;
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let (v1, v1alpha) = match reflection {
        Reflection::V1 => (Some(builder.build_v1().unwrap()), None),
        Reflection::V1alpha => (None, Some(builder.build_v1alpha().unwrap())),
        Reflection::Off => (None, None),
    };
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_optional_service(v1)
            .add_optional_service(v1alpha)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    GrpcUpstream { addr, health, task }
}

pub(crate) async fn channel(sidecar: &Sidecar) -> Channel {
    Channel::from_shared(format!("http://{}", sidecar.proxy))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

pub(crate) fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

pub(crate) fn handled(
    scrape: &Scrape,
    kind: &str,
    service: &str,
    method: &str,
    code: &str,
) -> Option<f64> {
    scrape.value(
        "grpc_server_handled_total",
        &[
            ("grpc_type", kind),
            ("grpc_service", service),
            ("grpc_method", method),
            ("grpc_code", code),
        ],
    )
}

#[tokio::test]
async fn unary_streaming_and_failing_calls_are_counted_with_their_codes() {
    let upstream = grpc_upstream().await;
    let sidecar = Sidecar::start(
        &format!("http://{}", upstream.addr),
        "[protocols]\nupstream = \"h2c\"\n",
    )
    .await;
    let channel = channel(&sidecar).await;
    let mut health = HealthClient::new(channel.clone());

    // Unary: two that succeed, one that fails with NOT_FOUND under HTTP 200.
    for _ in 0..2 {
        let answer = health.check(check("redside.Test")).await.unwrap();
        assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
    }
    let missing = health.check(check("redside.Missing")).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Server streaming: two updates, then the client hangs up.
    let mut updates = health
        .watch(check("redside.Test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        updates.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    upstream
        .health
        .set_service_status("redside.Test", ServingStatus::NotServing)
        .await;
    assert_eq!(
        updates.next().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
    drop(updates);

    // Bidirectional: three requests, three answers, then the client closes its side. Twice:
    // the first call teaches the sidecar that the method streams.
    for _ in 0..2 {
        let mut reflection = ServerReflectionClient::new(channel.clone());
        let requests = tokio_stream::iter((0..3).map(|_| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }));
        let mut answers = reflection
            .server_reflection_info(requests)
            .await
            .unwrap()
            .into_inner();
        let mut n = 0;
        while let Some(answer) = answers.next().await {
            answer.unwrap();
            n += 1;
        }
        assert_eq!(n, 3);
    }

    let scrape = sidecar
        .scrape_until("every call handled", |s| {
            s.sum("grpc_server_handled_total", &[]) == 6.0
        })
        .await;
    assert_eq!(handled(&scrape, "unary", HEALTH, "Check", "OK"), Some(2.0));
    assert_eq!(
        handled(&scrape, "unary", HEALTH, "Check", "NotFound"),
        Some(1.0)
    );
    // The first call of each streaming method started before it was known to stream.
    assert_eq!(
        handled(&scrape, "unary", HEALTH, "Watch", "Canceled"),
        Some(1.0)
    );
    assert_eq!(
        handled(&scrape, "unary", REFLECTION, "ServerReflectionInfo", "OK"),
        Some(1.0)
    );
    assert_eq!(
        handled(
            &scrape,
            "bidi_stream",
            REFLECTION,
            "ServerReflectionInfo",
            "OK"
        ),
        Some(1.0)
    );
    assert_eq!(scrape.sum("grpc_server_started_total", &[]), 6.0);
    let messages = |name: &str, method: &str| scrape.sum(name, &[("grpc_method", method)]);
    assert_eq!(messages("grpc_server_msg_received_total", "Check"), 3.0);
    assert_eq!(messages("grpc_server_msg_sent_total", "Check"), 2.0);
    assert_eq!(messages("grpc_server_msg_sent_total", "Watch"), 2.0);
    assert_eq!(
        messages("grpc_server_msg_received_total", "ServerReflectionInfo"),
        6.0
    );
    assert_eq!(
        messages("grpc_server_msg_sent_total", "ServerReflectionInfo"),
        6.0
    );
    assert_eq!(
        scrape.sum(
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "Check")]
        ),
        3.0
    );
    // The RED family: each call once, NOT_FOUND as its HTTP equivalent, the hang-up as 499.
    let red = |status: &str| scrape.sum("http_requests_total", &[("status", status)]);
    assert_eq!((red("2xx"), red("4xx"), red("5xx")), (4.0, 2.0, 0.0));
}

#[tokio::test]
async fn the_sidecars_own_failures_reach_grpc_clients_as_grpc_errors() {
    let closed = crate::stub::closed_port().await;
    let sidecar = Sidecar::start(
        &format!("http://{closed}"),
        "[protocols]\nupstream = \"h2c\"\n",
    )
    .await;
    let mut health = HealthClient::new(channel(&sidecar).await);
    let refused = health.check(check("")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("refused"), "{refused:?}");

    let scrape = sidecar
        .scrape_until("the failed call handled", |s| {
            handled(s, "unary", HEALTH, "Check", "Unavailable") == Some(1.0)
        })
        .await;
    assert_eq!(scrape.sum("http_requests_total", &[("status", "5xx")]), 1.0);
    assert_eq!(
        scrape.value(
            "sidecar_upstream_errors_total",
            &[("error_type", "connect_refused"), ("handler", "none")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_plain_http_error_gets_the_code_a_grpc_client_derives_and_keeps_its_status() {
    // A REST upstream's 404 page for a gRPC-shaped call: `Unimplemented` in the gRPC families
    // (the gRPC spec's HTTP mapping), the real 404 in the RED family.
    let stub = crate::stub::Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let response = crate::support::send(
        Request::post(sidecar.url("/status/404"))
            .header("content-type", "application/grpc")
            .body(crate::support::full(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 404);
    let scrape = sidecar
        .scrape_until("the call handled", |s| {
            handled(s, "unary", "status", "404", "Unimplemented") == Some(1.0)
        })
        .await;
    assert_eq!(scrape.sum("http_requests_total", &[("status", "4xx")]), 1.0);
}

#[tokio::test]
async fn a_call_past_its_grpc_timeout_ends_with_deadline_exceeded() {
    // Accepts connections (the kernel does) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sidecar = Sidecar::start(
        &format!("http://{}", silent.local_addr().unwrap()),
        "[protocols]\nupstream = \"h2c\"\n",
    )
    .await;
    let stream = tokio::net::TcpStream::connect(sidecar.proxy).await.unwrap();
    let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::post(sidecar.url("/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-timeout", "200m")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let started = std::time::Instant::now();
    let response = sender.send_request(request).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert!(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    let scrape = sidecar
        .scrape_until("the call handled", |s| {
            handled(s, "unary", HEALTH, "Check", "DeadlineExceeded") == Some(1.0)
        })
        .await;
    assert_eq!(scrape.sum("http_requests_total", &[("status", "5xx")]), 1.0);
    drop(silent);
}

/// Relays TCP connections to `to` until aborted; aborting drops both sockets, which is what the
/// sidecar sees when the upstream's process dies (its kernel closes the connections).
async fn relay(to: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(to).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_upstream_that_dies_mid_stream_ends_the_call_as_unavailable_not_a_hang() {
    let upstream = grpc_upstream().await;
    let (relay_addr, relay_task) = relay(upstream.addr).await;
    let sidecar = Sidecar::start(
        &format!("http://{relay_addr}"),
        "[protocols]\nupstream = \"h2c\"\n",
    )
    .await;
    let mut health = HealthClient::new(channel(&sidecar).await);
    let mut updates = health
        .watch(check("redside.Test"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        updates.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );

    relay_task.abort();
    let end = tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("the stream ends when its upstream dies");
    // A gRPC status in trailers, not a reset stream (which clients read as INTERNAL): the
    // client and the metrics say the same thing.
    let status = end.expect("an error, not a clean end").unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "upstream connection lost mid-stream");

    let scrape = sidecar
        .scrape_until("the broken call handled", |s| {
            s.sum("grpc_server_handled_total", &[]) == 1.0
        })
        .await;
    assert_eq!(
        handled(&scrape, "unary", HEALTH, "Watch", "Unavailable"),
        Some(1.0)
    );
    // Still the upstream's failure in the RED family.
    assert_eq!(scrape.sum("http_requests_total", &[("status", "5xx")]), 1.0);
    assert_eq!(
        scrape.sum(
            "sidecar_upstream_errors_total",
            &[("error_type", "body_error")]
        ),
        1.0
    );
    assert_eq!(scrape.sum("sidecar_upstream_errors_total", &[]), 1.0);
}
