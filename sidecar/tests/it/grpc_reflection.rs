//! `grpc_reflection`: the gRPC method labels from the upstream's server reflection (tonic's,
//! v1 and v1alpha), a closed set that a client's made-up path cannot add to; and what happens
//! without it, required or not.

use http::uri::PathAndQuery;
use testkit::Scrape;
use tokio_stream::StreamExt;
use tonic::{Code, transport::Channel};
use tonic_health::{ServingStatus, pb::health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest,
};

use crate::{
    grpc::{HEALTH, Reflection, channel, check, grpc_upstream_with, handled},
    support::Sidecar,
};

const EVIL: &str = "/evil.Service/Random123";

fn toml(required: bool) -> String {
    format!("grpc_reflection = {{ required = {required} }}\n[protocols]\nupstream = \"h2c\"\n")
}

/// A unary call to `path` with an empty message, as any gRPC client makes it; its status.
async fn call(channel: &Channel, path: &'static str) -> Code {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc
        .unary(
            tonic::Request::new(()),
            PathAndQuery::from_static(path),
            codec,
        )
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// `POST /reload`'s `grpc_methods`.
async fn reload(sidecar: &Sidecar) -> serde_json::Value {
    let reply = testkit::http::post(&sidecar.admin_url("/reload"), "")
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    report["reloaded"]["grpc_methods"].clone()
}

fn series_of(scrape: &Scrape, service: &str) -> f64 {
    scrape.sum("grpc_server_started_total", &[("grpc_service", service)])
}

#[tokio::test]
async fn listed_methods_get_their_labels_and_types_and_any_other_path_is_none() {
    let upstream = grpc_upstream_with(Reflection::V1).await;
    let sidecar = Sidecar::start(&format!("http://{}", upstream.addr), &toml(true)).await;
    let channel = channel(&sidecar).await;
    let mut health = HealthClient::new(channel.clone());

    let answer = health.check(check("redside.Test")).await.unwrap();
    assert_eq!(answer.into_inner().status, ServingStatus::Serving as i32);
    // Server streaming from its first call: the type is the descriptor's, not learned.
    let mut updates = health
        .watch(check("redside.Test"))
        .await
        .unwrap()
        .into_inner();
    updates.next().await.unwrap().unwrap();
    drop(updates);
    // Paths the upstream does not list: it answers UNIMPLEMENTED, the labels are `none`.
    for _ in 0..2 {
        assert_eq!(call(&channel, EVIL).await, Code::Unimplemented);
    }
    // The reflection service is left out of the set on purpose: `none` too.
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
        .unwrap()
        .into_inner();
    while let Some(answer) = answers.next().await {
        answer.unwrap();
    }

    let scrape = sidecar
        .scrape_until("every call handled", |s| {
            s.sum("grpc_server_handled_total", &[]) == 5.0
        })
        .await;
    assert_eq!(handled(&scrape, "unary", HEALTH, "Check", "OK"), Some(1.0));
    assert_eq!(
        handled(&scrape, "server_stream", HEALTH, "Watch", "Canceled"),
        Some(1.0)
    );
    assert_eq!(
        handled(&scrape, "unary", "none", "none", "Unimplemented"),
        Some(2.0)
    );
    assert_eq!(handled(&scrape, "unary", "none", "none", "OK"), Some(1.0));
    assert_eq!(series_of(&scrape, "evil.Service"), 0.0);
    // The families otherwise as without reflection: every call started and timed once.
    assert_eq!(scrape.sum("grpc_server_started_total", &[]), 5.0);
    assert_eq!(scrape.sum("grpc_server_handling_seconds_count", &[]), 5.0);
    // (The upstream answers a path it lacks before reading the request: no received count
    // there to rely on.)
    assert_eq!(
        scrape.sum("grpc_server_msg_sent_total", &[("grpc_method", "none")]),
        1.0
    );
    assert_eq!(
        scrape.sum("grpc_server_msg_sent_total", &[("grpc_method", "Watch")]),
        1.0
    );
    assert_eq!(scrape.sum("http_requests_total", &[]), 5.0);

    // A reload asks again: Health's Check and Watch.
    assert_eq!(reload(&sidecar).await, 2);
}

#[tokio::test]
async fn a_v1alpha_only_upstream_is_asked_in_v1alpha() {
    let upstream = grpc_upstream_with(Reflection::V1alpha).await;
    let sidecar = Sidecar::start(&format!("http://{}", upstream.addr), &toml(true)).await;
    let channel = channel(&sidecar).await;
    HealthClient::new(channel.clone())
        .check(check("redside.Test"))
        .await
        .unwrap();
    assert_eq!(call(&channel, EVIL).await, Code::Unimplemented);
    let scrape = sidecar
        .scrape_until("both calls handled", |s| {
            s.sum("grpc_server_handled_total", &[]) == 2.0
        })
        .await;
    assert_eq!(handled(&scrape, "unary", HEALTH, "Check", "OK"), Some(1.0));
    assert_eq!(
        handled(&scrape, "unary", "none", "none", "Unimplemented"),
        Some(1.0)
    );
    assert_eq!(reload(&sidecar).await, 2);
}

#[tokio::test]
async fn required_reflection_that_the_upstream_does_not_serve_stops_start_up() {
    let upstream = grpc_upstream_with(Reflection::Off).await;
    let error = Sidecar::try_start(&format!("http://{}", upstream.addr), &toml(true))
        .await
        .err()
        .expect("start-up fails");
    let message = format!("{error:#}");
    assert!(
        message.contains("grpc_reflection.required = true")
            && message.contains("does not serve gRPC server reflection"),
        "{message}"
    );
}

#[tokio::test]
async fn optional_reflection_that_fails_leaves_labels_from_paths() {
    let upstream = grpc_upstream_with(Reflection::Off).await;
    let sidecar = Sidecar::start(&format!("http://{}", upstream.addr), &toml(false)).await;
    let channel = channel(&sidecar).await;
    assert_eq!(call(&channel, EVIL).await, Code::Unimplemented);
    let scrape = sidecar
        .scrape_until("the call handled", |s| {
            s.sum("grpc_server_handled_total", &[]) == 1.0
        })
        .await;
    assert_eq!(
        handled(
            &scrape,
            "unary",
            "evil.Service",
            "Random123",
            "Unimplemented"
        ),
        Some(1.0)
    );
    // A reload that can't have the list either succeeds and keeps the labels from paths.
    assert_eq!(reload(&sidecar).await, serde_json::Value::Null);
}

#[tokio::test]
async fn optional_reflection_loads_in_the_background() {
    let upstream = grpc_upstream_with(Reflection::V1).await;
    let sidecar = Sidecar::start(&format!("http://{}", upstream.addr), &toml(false)).await;
    let channel = channel(&sidecar).await;
    // Calls before the list lands are labelled from their path; once it has, `none`.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        assert_eq!(call(&channel, EVIL).await, Code::Unimplemented);
        let scrape = sidecar
            .scrape_until("the call handled", |s| {
                s.sum("grpc_server_started_total", &[]) == s.sum("grpc_server_handled_total", &[])
            })
            .await;
        if handled(&scrape, "unary", "none", "none", "Unimplemented") == Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the method list never arrived: {:#?}",
            scrape.samples
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
