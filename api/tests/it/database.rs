//! The database going away and coming back, an exhausted pool, and start-up without a database.

use std::time::Duration;

use clap::Parser;
use http::Method;
use testkit::Postgres;
use tokio::net::TcpListener;

use crate::support::{TestApp, assert_error, json, spawn_app, spawn_app_on, wait_for_lock_waiter};

#[tokio::test]
async fn database_outage_gives_503s_and_the_api_recovers_by_itself() {
    let pg = Postgres::start();
    let app = spawn_app_on(&pg.create_database(), &[]).await;
    let id = app.create("survivor", 1.0).await;
    let item = format!("/items/{id}");

    pg.stop();

    for (method, path, body) in [
        (Method::GET, item.as_str(), None),
        (Method::GET, "/items", None),
        (Method::POST, "/items", Some(r#"{"nom":"x","prix":1}"#)),
        (Method::PUT, item.as_str(), Some(r#"{"nom":"x","prix":1}"#)),
        (Method::DELETE, item.as_str(), None),
        (Method::GET, "/readyz", None),
    ] {
        let resp = app.send(method.clone(), path, body).await;
        assert_error(&resp, 503, None);
        assert_eq!(resp.headers["retry-after"], "1", "{method} {path}");
    }
    assert_eq!(
        app.get("/healthz").await.status,
        200,
        "liveness does not depend on the database"
    );

    pg.restart();

    let recovered = poll_until_status(&app, &item, 200).await;
    assert_eq!(json(&recovered)["nom"], "survivor");
    assert_eq!(
        app.post("/items", r#"{"nom":"after","prix":2}"#)
            .await
            .status,
        201
    );
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn exhausted_pool_gives_503_and_counts_a_timeout() {
    let app = spawn_app_on(
        &Postgres::shared().create_database(),
        &["--pool-size", "1", "--pool-wait-timeout", "200ms"],
    )
    .await;
    let id = app.create("locked", 1.0).await;
    // A second session holds the row lock, so a PUT blocks while holding the pool's only connection.
    let locker = app.lock_row(id).await;
    let put = tokio::spawn(send_owned(
        app.url(&format!("/items/{id}")),
        r#"{"nom":"unlocked","prix":2}"#,
    ));
    wait_for_lock_waiter(&app.database_url).await;

    let resp = app.get(&format!("/items/{id}")).await;

    assert_error(&resp, 503, None);
    locker
        .batch_execute("ROLLBACK")
        .await
        .expect("release lock");
    let put = put.await.expect("task").expect("put");
    assert_eq!(put.status, 200, "{}", put.text());
    let scrape = app.scrape().await;
    assert_eq!(
        scrape.value("db_connection_pool_timeouts_total", &[]),
        Some(1.0)
    );
    assert_eq!(scrape.value("db_connection_pool_max", &[]), Some(1.0));
}

#[tokio::test]
async fn startup_gives_up_on_an_unreachable_database_with_a_clear_error() {
    let dir = tempfile_dir_name();
    let config = api::Config::try_parse_from([
        "api",
        "--database-url",
        &format!("host={dir} user=postgres dbname=nowhere"),
        "--startup-timeout",
        "300ms",
    ])
    .expect("flags");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");

    let error = api::run(config, listener, std::future::pending())
        .await
        .expect_err("no database");

    let message = format!("{error:#}");
    assert!(
        message.contains("database not reachable after 300ms"),
        "{message}"
    );
    assert!(
        message.contains(&dir),
        "the error says where it tried: {message}"
    );
}

#[tokio::test]
async fn shutdown_during_startup_ends_run_cleanly() {
    let config = api::Config::try_parse_from([
        "api",
        "--database-url",
        &format!("host={} user=postgres", tempfile_dir_name()),
    ])
    .expect("flags");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");

    let result = api::run(
        config,
        listener,
        tokio::time::sleep(Duration::from_millis(200)),
    )
    .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn invalid_database_url_is_reported() {
    let config = api::Config::try_parse_from(["api", "--database-url", "postgres://[not a url"])
        .expect("flags");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");

    let error = api::run(config, listener, std::future::pending())
        .await
        .expect_err("bad url");

    assert!(
        format!("{error:#}").contains("parsing the database URL"),
        "{error:#}"
    );
}

#[tokio::test]
async fn database_url_without_a_host_is_reported_at_once() {
    for url in ["", "user=postgres dbname=items"] {
        let config = api::Config::try_parse_from(["api", "--database-url", url]).expect("flags");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");

        let error = api::run(config, listener, std::future::pending())
            .await
            .expect_err("no host");

        assert!(
            format!("{error:#}").contains("names no host"),
            "{url:?}: {error:#}"
        );
    }
}

#[tokio::test]
async fn a_second_start_on_the_same_database_keeps_the_data() {
    let app = spawn_app().await;
    let id = app.create("kept", 3.0).await;
    let url = app.database_url.clone();
    app.stop().await.expect("stop");

    let again = spawn_app_on(&url, &[]).await;

    assert_eq!(
        json(&again.get(&format!("/items/{id}")).await)["nom"],
        "kept"
    );
}

/// A socket directory that does not exist.
fn tempfile_dir_name() -> String {
    format!(
        "/tmp/redside-missing-{}-{}",
        std::process::id(),
        rand_suffix()
    )
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

async fn send_owned(url: String, body: &'static str) -> anyhow::Result<testkit::http::Response> {
    testkit::http::send(Method::PUT, &url, Some(body)).await
}

/// Polls `path` until it answers `status` (the pool replaces dead connections on its own).
async fn poll_until_status(app: &TestApp, path: &str, status: u16) -> testkit::http::Response {
    for _ in 0..200 {
        let resp = app.get(path).await;
        if resp.status == status {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never answered {status} within 10 s");
}
