//! Each hostcall category through the real plugin layer, with WAT modules small enough to read.

use std::sync::Arc;

use http::Request;
use wasm_host::{RouteTemplate, full};

use crate::logs;
use crate::support::{Host, config};

#[tokio::test]
async fn headers_properties_and_metrics_round_trip_through_guest_memory() {
    let mut plugin = config("abi-headers", "headers_properties_metrics.wat");
    plugin.configuration = "abi_requests_total{source=\"wat\"}".into();
    plugin.vm_configuration = "vm-config-marker-1f3a".into();
    plugin.histogram_buckets = vec![100.0, 200.0, 300.0];
    let host = Host::new(&[plugin]);

    for _ in 0..3 {
        let mut request = Request::get("/items/7?x=1")
            .header("x-test", "forwarded")
            .header("x-remove-me", "gone")
            .body(full(""))
            .unwrap();
        request
            .extensions_mut()
            .insert(RouteTemplate(Arc::from("/items/{id}")));
        let reply = host.send(request).await;
        // response headers written by the guest in on_response_headers
        assert_eq!(reply.headers["x-plugin"], "seen");
        assert_eq!(
            reply.headers["x-path"], "/items/7?x=1",
            "request.path property"
        );
        assert_eq!(
            reply.headers["x-route"], "/items/{id}",
            "route_name property = matched template"
        );
        assert_eq!(reply.headers["x-upstream"], "yes");
    }
    // request headers rewritten before forwarding
    for seen in host.seen.all() {
        assert_eq!(seen["x-echo"], "forwarded");
        assert!(!seen.contains_key("x-remove-me"));
    }
    let scrape = host
        .wait_for("abi_requests_total", &[("source", "wat")], 3.0)
        .await;
    assert_eq!(scrape, 3.0, "counter named by the plugin configuration");
    let host_scrape = host.wait_for("property_roundtrips_total", &[], 3.0).await;
    assert_eq!(host_scrape, 3.0, "set_property value read back in on_log");
    let scrape = host.scrape();
    assert_eq!(
        scrape.value("seen_by_get_metric", &[]),
        Some(3.0),
        "get_metric reads what increment wrote"
    );
    assert_eq!(scrape.value("codes_count", &[]), Some(3.0));
    assert_eq!(
        scrape.value("codes_sum", &[]),
        Some(600.0),
        "response.code decoded as 8-byte LE integer"
    );
    assert_eq!(
        scrape.value("codes_bucket", &[("le", "200.0")]),
        Some(3.0),
        "buckets from the configuration"
    );
    assert_eq!(scrape.value("codes_bucket", &[("le", "100.0")]), Some(0.0));
    assert_eq!(
        scrape.value(
            "sidecar_plugin_callbacks_total",
            &[("plugin", "abi-headers"), ("callback", "proxy_on_log")]
        ),
        Some(3.0)
    );
    assert!(
        logs::contain(&["abi-headers", "vm-config-marker-1f3a"]),
        "VM configuration logged with the plugin name"
    );
}

#[tokio::test]
async fn shared_data_compare_and_swap_counts_across_instances() {
    let mut plugin = config("abi-shared", "shared_tick_local.wat");
    plugin.instances = 2;
    let host = Host::new(&[plugin]);
    let requests = (0..20).map(|_| host.get("/", &[]));
    futures_util::future::join_all(requests).await;
    assert_eq!(
        host.scrape().value("shared_hits", &[]),
        Some(20.0),
        "every increment landed despite two instances"
    );
}

#[tokio::test]
async fn tick_timers_call_on_tick_repeatedly() {
    let host = Host::new(&[config("abi-tick", "shared_tick_local.wat")]);
    host.get("/", &[]).await;
    host.wait_for("ticks_total", &[], 3.0).await;
}

#[tokio::test]
async fn unknown_effective_context_is_a_bad_argument() {
    let host = Host::new(&[config("abi-effective", "shared_tick_local.wat")]);
    assert_eq!(
        host.scrape().value("effective_context_status", &[]),
        Some(2.0)
    );
}

#[tokio::test]
async fn local_response_answers_without_calling_the_upstream() {
    let host = Host::new(&[config("abi-local", "shared_tick_local.wat")]);
    let reply = host.get("/teapot", &[("x-teapot", "1")]).await;
    assert_eq!(reply.status.as_u16(), 418);
    assert_eq!(reply.body, "short and stout");
    assert_eq!(reply.headers["x-local"], "yes");
    assert!(
        host.seen.all().is_empty(),
        "the upstream never saw the request"
    );
    let plain = host.get("/", &[]).await;
    assert_eq!(plain.status.as_u16(), 200);
}

#[tokio::test]
async fn bodies_rewritten_by_the_guest_reach_the_upstream_and_the_client() {
    let mut plugin = config("abi-bodies", "body_rewrite.wat");
    plugin.request_body = true;
    plugin.response_body = true;
    let host = Host::new(&[plugin]);
    let request = Request::post("/items")
        .header("content-length", "7")
        .body(full("7 bytes"))
        .unwrap();
    let reply = host.send(request).await;
    assert_eq!(reply.status.as_u16(), 200);
    // The upstream counted the guest's 29-byte request body; the guest then read the first
    // 8 bytes of the answer ("upstream") and replaced them.
    assert_eq!(reply.body, "plugin-saw got 29 bytes");
    assert_eq!(reply.headers["content-length"], "23");
    assert_eq!(host.seen.all()[0]["content-length"], "29");
    let scrape = host.scrape();
    assert_eq!(
        scrape.value(
            "sidecar_plugin_faults_total",
            &[("plugin", "abi-bodies"), ("kind", "trap")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn bad_pointers_failing_allocator_and_malformed_maps_get_statuses_not_panics() {
    let host = Host::new(&[config("abi-memory", "memory_protocol.wat")]);
    let reply = host.get("/", &[("x-one", "1")]).await;
    assert_eq!(reply.status.as_u16(), 200);
    let scrape = host.scrape();
    let status = |call: &str| scrape.value("status", &[("call", call)]);
    assert_eq!(status("log_bad_ptr"), Some(6.0), "InvalidMemoryAccess");
    assert_eq!(status("pairs_bad_out_ptr"), Some(6.0));
    assert_eq!(status("pairs_alloc_fails"), Some(6.0), "malloc returning 0");
    assert_eq!(status("set_malformed_pairs"), Some(2.0), "BadArgument");
    assert_eq!(status("property_unknown"), Some(1.0), "NotFound");
    // :method :path :authority :scheme + x-one
    assert_eq!(scrape.value("request_header_pairs", &[]), Some(5.0));
    assert_eq!(
        scrape.sum("sidecar_plugin_faults_total", &[("plugin", "abi-memory")]),
        0.0
    );
}

#[tokio::test]
async fn queue_and_callout_hostcalls_answer_envoys_statuses() {
    let host = Host::new(&[config("abi-queues", "queue_and_call_statuses.wat")]);
    let scrape = host.scrape();
    for (what, status) in [
        ("register", 0.0),
        ("resolve", 0.0),
        ("same_id", 1.0),
        ("resolve_missing", 1.0),      // NotFound
        ("dequeue_empty", 7.0),        // Empty (the SDK's `Ok(None)`)
        ("dequeue_unknown", 1.0),      // NotFound
        ("enqueue_unknown", 1.0),      // NotFound
        ("call_unknown_cluster", 2.0), // BadArgument, as Envoy
    ] {
        assert_eq!(
            scrape.value(&format!("status_{what}"), &[]),
            Some(status),
            "{what}"
        );
    }
}

#[tokio::test]
async fn grpc_callout_hostcalls_answer_statuses_the_sdk_survives_and_cancel_drops_the_answer() {
    // A cluster nothing listens on: the kept call closes with UNAVAILABLE.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = down.local_addr().unwrap().to_string();
    drop(down);
    let host = Host::with_clusters(
        &[config("abi-grpc", "grpc_call_statuses.wat")],
        &[wasm_host::ClusterConfig::new("grpc", address)],
    )
    .unwrap();
    let callouts = [
        ("plugin", "abi-grpc"),
        ("cluster", "grpc"),
        ("result", "refused"),
    ];
    host.wait_for("sidecar_plugin_callouts_total", &callouts, 1.0)
        .await;
    host.wait_for("closed_status", &[], 1.0).await;
    let scrape = host.scrape();
    for (what, value) in [
        ("status_unknown_cluster", 4.0), // ParseFailure (the SDK's `Err`; Envoy: BadArgument)
        ("status_bad_method", 4.0),
        ("status_call", 0.0),
        ("status_cancel", 0.0),
        ("status_cancel_again", 1.0), // NotFound
        ("status_close_unknown", 1.0),
        ("status_stream", 4.0), // ParseFailure, as a call
        ("status_get_status", 0.0),
        ("get_status_code", 0.0),
        ("status_second_call", 0.0),
        // Only the kept call (token 2) is answered; the cancelled one never started.
        ("closed_token", 2.0),
        ("closed_status", 14.0),
        ("closed_status_code", 14.0),
    ] {
        assert_eq!(scrape.value(what, &[]), Some(value), "{what}");
    }
    assert!(scrape.value("closed_message_len", &[]).unwrap() > 0.0);
    assert_eq!(scrape.value("received", &[]), None);
    assert_eq!(
        scrape.value("sidecar_plugin_callouts_total", &callouts),
        Some(1.0)
    );
}
