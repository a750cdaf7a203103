//! Graceful shutdown: in-flight requests finish, new ones are refused, the admin listener
//! answers until the proxy has drained.

use std::time::Duration;

use crate::stub::Stub;
use crate::support::{Sidecar, total};

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_the_admin_last() {
    let stub = Stub::start().await;
    let mut sidecar = Sidecar::start(
        &stub.url(),
        "[limits]\ngrace_period = \"10s\"\nfinal_scrape_wait = \"0s\"\n",
    )
    .await;
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        let url = sidecar.url("/slow/700");
        in_flight.push(tokio::spawn(async move { testkit::http::get(&url).await }));
    }
    sidecar
        .scrape_until("3 requests in flight", |s| {
            s.value("http_requests_inprogress", &[]) == Some(3.0)
        })
        .await;

    sidecar.shutdown();
    // New connections are refused once the listener is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(sidecar.proxy).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "proxy listener still accepting"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While draining, the admin still answers and shows the requests in flight.
    let s = sidecar.scrape().await;
    assert_eq!(s.value("http_requests_inprogress", &[]), Some(3.0));

    for request in in_flight {
        let response = request
            .await
            .unwrap()
            .expect("in-flight request failed during shutdown");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "slow");
    }
    let admin = sidecar.admin;
    sidecar.stop().await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "admin listener still open after run returned"
    );
}

#[tokio::test]
async fn admin_waits_for_a_final_scrape_after_the_drain() {
    let stub = Stub::start().await;
    let mut sidecar = Sidecar::start(&stub.url(), "[limits]\nfinal_scrape_wait = \"20s\"\n").await;
    let url = sidecar.url("/slow/300");
    let pending = tokio::spawn(async move { testkit::http::get(&url).await.unwrap() });
    sidecar
        .scrape_until("1 request in flight", |s| {
            s.value("http_requests_inprogress", &[]) == Some(1.0)
        })
        .await;
    sidecar.shutdown();
    assert_eq!(pending.await.unwrap().status, 200);

    // Scrape until the sidecar stops: the first scrape after the drain lets it stop, long before
    // final_scrape_wait, and the last scrape that succeeded shows the final count.
    let started = tokio::time::Instant::now();
    let mut last = None;
    while !sidecar.is_finished() {
        if let Ok(r) = testkit::http::get(&sidecar.admin_url("/metrics")).await {
            last = Some(testkit::Scrape::parse(&r.text()).unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "admin did not stop after the final scrape"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = last.expect("no scrape succeeded after shutdown");
    assert_eq!(total(&last, "http_requests_total"), 1.0);
    assert_eq!(last.value("http_requests_inprogress", &[]), Some(0.0));
    sidecar.stop().await.unwrap();
}
