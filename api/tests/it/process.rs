//! The built binary as a process: configuration from the environment, readiness, and a SIGTERM
//! that lets an in-flight request finish before the process exits 0.

use std::time::Duration;

use testkit::{Postgres, Process, free_port, process::UnixSignal};

use crate::support::{connect, wait_for_lock_waiter};

const API: &str = env!("CARGO_BIN_EXE_api");

#[tokio::test]
async fn sigterm_drains_an_in_flight_request_and_exits_0() {
    let database_url = Postgres::shared().create_database();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = Process::spawn(
        API,
        &[],
        [
            ("DATABASE_URL", database_url.as_str()),
            ("API_LISTEN", &format!("127.0.0.1:{port}")),
            ("RUST_LOG", "info"),
        ],
    );
    api.wait_ready(&format!("{base}/healthz"), Duration::from_secs(30))
        .await
        .expect("api ready");
    let created = testkit::http::post(&format!("{base}/items"), r#"{"nom":"slow","prix":1}"#)
        .await
        .expect("create");
    assert_eq!(created.status, 201, "{}", created.text());
    let location = created.headers["location"]
        .to_str()
        .expect("location")
        .to_owned();

    // A second session locks the row, so the PUT below is in flight until we let it go.
    let locker = connect(&database_url).await;
    locker
        .batch_execute("BEGIN; SELECT 1 FROM items FOR UPDATE")
        .await
        .expect("lock");
    let put_url = format!("{base}{location}");
    let put = tokio::spawn(async move {
        testkit::http::send(
            http::Method::PUT,
            &put_url,
            Some(r#"{"nom":"done","prix":2}"#),
        )
        .await
    });
    wait_for_lock_waiter(&database_url).await;

    api.signal(UnixSignal::SIGTERM);
    wait_until_refusing(port).await;
    assert!(
        !put.is_finished(),
        "the PUT is still waiting for the row lock"
    );
    locker.batch_execute("ROLLBACK").await.expect("unlock");

    let put = put
        .await
        .expect("task")
        .expect("the in-flight PUT completes");
    assert_eq!(put.status, 200, "{}", put.text());
    assert!(put.text().contains(r#""nom":"done""#), "{}", put.text());
    let status = api
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("api exits");
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        api.output_text()
    );
    assert!(
        api.output_text().contains("SIGTERM"),
        "{}",
        api.output_text()
    );
}

#[tokio::test]
async fn missing_database_url_is_a_usage_error() {
    // Not testkit::Process: the variable must be removed from an inherited environment.
    let output = tokio::process::Command::new(API)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .output();

    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("exits at once")
        .expect("runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--database-url"), "{stderr}");
}

/// Waits until new connections are refused: the api has stopped accepting.
async fn wait_until_refusing(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the api still accepts connections 5 s after SIGTERM");
}
