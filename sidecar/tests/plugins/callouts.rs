//! HTTP callouts through the real sidecar: `plugins/callout-auth` (built with the public SDK)
//! pauses each request, calls a real auth service declared as a `[[clusters]]` entry, and
//! allows or denies on its answer. The auth service down, slow or answering 500 reaches the
//! plugin as Envoy reports it (an answer with no headers, or the status), never as a trap.

use crate::scripted::{auth_service, closed_port, echo_upstream, get};
use crate::sidecar::{CalloutToml, Sidecar};

fn callouts(scrape: &testkit::scrape::Scrape, result: &str) -> f64 {
    crate::sidecar::callouts(scrape, "auth", "auth", result)
}

fn faults(scrape: &testkit::scrape::Scrape) -> f64 {
    crate::sidecar::faults(scrape, "auth")
}

fn toml(auth: std::net::SocketAddr, config: &str, cluster_extra: &str) -> String {
    CalloutToml {
        module: "callout-auth",
        plugin: "auth",
        cluster: ("auth", auth),
        cluster_extra,
        service: false,
    }
    .text(config)
}

fn decisions(scrape: &testkit::scrape::Scrape, decision: &str) -> f64 {
    scrape
        .value("auth_decisions_total", &[("decision", decision)])
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_plugin_allows_denies_and_fails_closed_on_the_services_answers() {
    let (upstream, auth) = (echo_upstream().await, auth_service().await);
    let sidecar = Sidecar::start(upstream.addr, &toml(auth.addr, "auth 500", "")).await;

    // Allowed: the request reaches the upstream with the service's header, body and trailer.
    let (status, _, body) = get(&sidecar.url("/items"), &[("x-user", "alice")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "echo /items x-auth-body=ok alice x-auth-trailer=t1 x-auth-user=alice"
    );

    // Denied by a 403.
    let (status, headers, body) = get(&sidecar.url("/items"), &[("x-user", "mallory")]).await;
    assert_eq!((status, body.as_str()), (403, "denied\n"));
    assert_eq!(headers["x-auth"], "denied");

    // The service answering 500: the plugin sees the status and fails closed.
    let (status, headers, _) = get(&sidecar.url("/items"), &[("x-user", "boom")]).await;
    assert_eq!(
        (status, &headers["x-auth"]),
        (503, &"error".parse().unwrap())
    );

    // The service too slow for the plugin's 500 ms: an answer with no headers.
    let (status, headers, _) = get(&sidecar.url("/items"), &[("x-user", "slow")]).await;
    assert_eq!(
        (status, &headers["x-auth"]),
        (503, &"unavailable".parse().unwrap())
    );

    let scrape = sidecar.scrape().await;
    for (decision, expected) in [
        ("allow", 1.0),
        ("deny", 1.0),
        ("error", 1.0),
        ("unavailable", 1.0),
        ("dispatch_failed", 0.0),
    ] {
        assert_eq!(decisions(&scrape, decision), expected, "{decision}");
    }
    assert_eq!(callouts(&scrape, "response"), 3.0);
    assert_eq!(callouts(&scrape, "timeout"), 1.0);
    assert_eq!(faults(&scrape), 0.0, "no callout outcome traps the plugin");
    assert_eq!(
        scrape.value(
            "sidecar_plugin_callbacks_total",
            &[
                ("plugin", "auth"),
                ("callback", "proxy_on_http_call_response")
            ]
        ),
        Some(4.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_is_an_answer_with_no_headers() {
    let upstream = echo_upstream().await;
    let down = closed_port().await;
    let sidecar = Sidecar::start(upstream.addr, &toml(down, "auth 1000", "")).await;
    for _ in 0..3 {
        let (status, headers, _) = get(&sidecar.url("/items"), &[("x-user", "alice")]).await;
        assert_eq!(
            (status, &headers["x-auth"]),
            (503, &"unavailable".parse().unwrap())
        );
    }
    let scrape = sidecar.scrape().await;
    assert_eq!(decisions(&scrape, "unavailable"), 3.0);
    assert_eq!(callouts(&scrape, "refused"), 3.0);
    assert_eq!(faults(&scrape), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_clusters_cap_fail_at_once_and_an_unknown_cluster_is_refused() {
    let (upstream, auth) = (echo_upstream().await, auth_service().await);
    let sidecar = Sidecar::start(
        upstream.addr,
        &toml(auth.addr, "auth 1000", "max_concurrent_calls = 1"),
    )
    .await;
    // The first slow call holds the only permit for its 1 s timeout; the second, sent while
    // it waits, is over the cap.
    let url = sidecar.url("/items");
    let first = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[("x-user", "slow")]).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, headers, _) = get(&url, &[("x-user", "alice")]).await;
    assert_eq!(
        (status, &headers["x-auth"]),
        (503, &"unavailable".parse().unwrap())
    );
    let (status, _, _) = first.await.unwrap();
    assert_eq!(status, 503);
    let scrape = sidecar.scrape().await;
    assert_eq!(callouts(&scrape, "overflow"), 1.0);
    assert_eq!(callouts(&scrape, "timeout"), 1.0);
    // With the permit back, calls go through again.
    let (status, _, _) = get(&url, &[("x-user", "alice")]).await;
    assert_eq!(status, 200);

    // A cluster the TOML does not declare: `dispatch_http_call` returns an error.
    sidecar.reload(&toml(auth.addr, "nowhere 1000", "")).await;
    let (status, headers, _) = get(&url, &[("x-user", "alice")]).await;
    assert_eq!(
        (status, &headers["x-auth"]),
        (500, &"dispatch-failed".parse().unwrap())
    );
    assert_eq!(faults(&sidecar.scrape().await), 0.0);
}
