//! Faults under load, through the real sidecar and a real upstream, with a plugin built with the
//! public SDK (`plugins/fault-drill`): one request in ten makes it trap, spin or exhaust its
//! memory. Each fault costs only that request: no client sees a difference, the plugin sees
//! every other request (its own counter), and every fault is counted by kind.

use http::{Method, Request};
use http_body_util::{BodyExt, Full};

use crate::sidecar::Sidecar;
use crate::upstream::{Upstream, answer};

const KINDS: [&str; 5] = ["trap", "deadline", "memory", "instantiate", "pause_timeout"];

/// `[[plugins]]` entries named `name` running the built module `module`.
fn plugins_toml(plugins: &[(&str, &str)]) -> String {
    plugins
        .iter()
        .map(|(name, module)| {
            format!(
                "[[plugins]]\nname = \"{name}\"\npath = \"{module}.wasm\"\nmemory_limit_mib = 16\n"
            )
        })
        .collect()
}

/// `GET path` through `url`'s host, with `x-drill` when given: (status, body).
async fn get(base: &str, path: &str, drill: Option<&str>) -> (u16, String) {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(format!("{base}{path}"));
    if let Some(drill) = drill {
        request = request.header("x-drill", drill);
    }
    let response = testkit::http::client()
        .request(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn faults(scrape: &testkit::scrape::Scrape, plugin: &str, kind: &str) -> Option<f64> {
    scrape.value(
        "sidecar_plugin_faults_total",
        &[("plugin", plugin), ("kind", kind)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_faulting_on_one_request_in_ten_misses_none_of_the_others() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(upstream.addr, &plugins_toml(&[("drill", "fault-drill")])).await;
    let base = sidecar.url("");

    // 16 clients at once, 30 requests each; every tenth request asks for a fault, in turn a
    // panic, an endless loop and a memory bomb.
    const CLIENTS: usize = 16;
    const EACH: usize = 30;
    let drills = ["trap", "loop", "memory"];
    let clients = (0..CLIENTS).map(|client| {
        let base = base.clone();
        tokio::spawn(async move {
            let mut differences = Vec::new();
            for i in 0..EACH {
                let n = client * EACH + i;
                let drill = (n % 10 == 9).then(|| drills[(n / 10) % drills.len()]);
                let path = format!("/items/{n}");
                let got = get(&base, &path, drill).await;
                if got != (200, answer("GET", &path)) {
                    differences.push((n, drill, got));
                }
            }
            differences
        })
    });
    let mut differences = Vec::new();
    for client in futures_util::future::join_all(clients).await {
        differences.extend(client.unwrap());
    }
    assert!(
        differences.is_empty(),
        "clients saw a difference: {differences:?}"
    );

    let total = CLIENTS * EACH;
    let faulting = total / 10;
    let per_kind = faulting / drills.len();
    let scrape = sidecar.scrape().await;
    assert_eq!(
        scrape.value("drill_requests_seen_total", &[]),
        Some((total - faulting) as f64),
        "the plugin saw every request that did not fault"
    );
    for (kind, expected) in [
        ("trap", per_kind),
        ("deadline", per_kind),
        ("memory", per_kind),
        ("instantiate", 0),
        ("pause_timeout", 0),
    ] {
        assert_eq!(
            faults(&scrape, "drill", kind),
            Some(expected as f64),
            "faults of kind {kind}"
        );
    }
    let callbacks = scrape.value(
        "sidecar_plugin_callbacks_total",
        &[
            ("plugin", "drill"),
            ("callback", "proxy_on_request_headers"),
        ],
    );
    assert_eq!(
        callbacks,
        Some(total as f64),
        "every request reached the plugin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_series_read_zero_for_every_plugin_and_kind_from_load_and_reload() {
    let upstream = Upstream::start().await;
    let sidecar = Sidecar::start(upstream.addr, &plugins_toml(&[("first", "fault-drill")])).await;
    let scrape = sidecar.scrape().await;
    for kind in KINDS {
        assert_eq!(faults(&scrape, "first", kind), Some(0.0), "first, {kind}");
    }

    sidecar
        .reload(&plugins_toml(&[
            ("first", "fault-drill"),
            ("second", "client-slo"),
        ]))
        .await;
    let scrape = sidecar.scrape().await;
    for plugin in ["first", "second"] {
        for kind in KINDS {
            assert_eq!(faults(&scrape, plugin, kind), Some(0.0), "{plugin}, {kind}");
        }
    }
}
