//! A database that is frozen (`SIGSTOP`: sockets open, nothing answers), not stopped: every
//! statement is bounded by the api's own deadline, cancelled on the server, and its connection
//! discarded; the api answers 503 and recovers by itself after `SIGCONT`.

use std::time::Duration;

use testkit::Postgres;
use tokio::time::{Instant, sleep};

use crate::{
    load::{HANG, Load, assert_all_succeed_from, percentiles},
    support::{assert_error, connect, spawn_app_on, wait_for_lock_waiter},
};

/// Short bounds, so that the freeze below lasts well past all of them together.
const STATEMENT: Duration = Duration::from_millis(500);
const POOL_WAIT: Duration = Duration::from_millis(500);
const CONNECT: Duration = Duration::from_millis(500);
const FLAGS: [&str; 8] = [
    "--statement-timeout",
    "500ms",
    "--pool-wait-timeout",
    "500ms",
    "--connect-timeout",
    "500ms",
    "--pool-size",
    "8",
];
const FREEZE: Duration = Duration::from_secs(5);
/// The longest a request may take: waiting for a pool slot, opening a connection, then one
/// statement, plus room for a loaded 2-core machine. Well under [`FREEZE`], so a request that
/// waited for the server to thaw fails the test.
const BOUND: Duration = Duration::from_millis(
    (STATEMENT.as_millis() + POOL_WAIT.as_millis() + CONNECT.as_millis() + 1500) as u64,
);
const _: () =
    assert!(BOUND.as_millis() < FREEZE.as_millis() && BOUND.as_millis() < HANG.as_millis());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_database_gives_bounded_503s_and_the_api_recovers_by_itself() {
    let pg = Postgres::start();
    let database_url = pg.create_database();
    let app = spawn_app_on(&database_url, &FLAGS).await;
    let load = Load::start(&app.url(""), 24);
    sleep(Duration::from_secs(1)).await;

    let frozen = pg.freeze();
    let frozen_at = load.elapsed();
    sleep(FREEZE).await;
    frozen.thaw();
    let thawed_at = load.elapsed();
    let recovered_at = load.first_create_after(&app, thawed_at, "SIGCONT").await;
    sleep(Duration::from_secs(1)).await;
    let outcomes = load.finish().await;

    for o in &outcomes {
        o.assert_success_or_retry_later();
        assert!(o.latency <= BOUND, "took longer than {BOUND:?}: {o:?}");
    }
    let during: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent >= frozen_at && o.sent + BOUND <= thawed_at)
        .collect();
    assert!(
        !during.is_empty() && during.iter().all(|o| o.status == Ok(503)),
        "every request sent while frozen is a 503: {during:?}"
    );
    assert_all_succeed_from(&outcomes, recovered_at + Duration::from_millis(500));
    let sessions = wait_for_api_sessions_at_most(&database_url, 8).await;

    let [p50, p99, max] = percentiles(during.iter().copied());
    eprintln!(
        "frozen {FREEZE:?}: {} requests, {} while frozen, all 503 (p50 {p50:?}, p99 {p99:?}, max {max:?}); \
         first 201 {:?} after SIGCONT; {sessions} api sessions on the server afterwards",
        outcomes.len(),
        during.len(),
        recovered_at - thawed_at,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_past_its_deadline_is_cancelled_and_its_connection_discarded() {
    let pg = Postgres::start();
    let database_url = pg.create_database();
    let app = spawn_app_on(
        &database_url,
        &["--statement-timeout", "500ms", "--pool-size", "1"],
    )
    .await;
    let id = app.create("locked", 1.0).await;
    // Another session holds the row lock, so the api's UPDATE waits on it on the server.
    let locker = app.lock_row(id).await;
    let put = tokio::spawn({
        let url = app.url(&format!("/items/{id}"));
        async move {
            let start = Instant::now();
            let resp =
                testkit::http::send(http::Method::PUT, &url, Some(r#"{"nom":"x","prix":2}"#))
                    .await
                    .expect("put");
            (resp, start.elapsed())
        }
    });
    wait_for_lock_waiter(&database_url).await;
    let observer = connect(&database_url).await;
    let waiter: i32 = observer
        .query_one(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
            &[],
        )
        .await
        .expect("the waiting backend")
        .get(0);

    let (resp, took) = put.await.expect("task");

    assert_error(&resp, 503, None);
    assert_eq!(resp.headers["retry-after"], "1");
    // The server still holds the lock, yet the backend is gone: the api cancelled the
    // statement and closed the connection rather than returning it to the pool.
    wait_until_gone(&observer, waiter).await;
    assert!(
        pg.log().contains("canceling statement due to user request"),
        "the api's cancel request ended the statement (not the server's own statement_timeout):\n{}",
        pg.log()
    );
    // The pool's only slot was freed: another request is served while the lock is still held.
    let other = app.create("other", 3.0).await;
    assert_eq!(app.get(&format!("/items/{other}")).await.status, 200);
    locker.batch_execute("ROLLBACK").await.expect("unlock");
    assert_eq!(
        crate::support::json(&app.get(&format!("/items/{id}")).await)["nom"],
        "locked",
        "the cancelled update changed nothing"
    );
    eprintln!("statement deadline 500ms: 503 after {took:?}");
}

/// Waits (at most 10 s) until backend `pid` has left `pg_stat_activity`.
async fn wait_until_gone(observer: &tokio_postgres::Client, pid: i32) {
    for _ in 0..200 {
        let present: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if present == 0 {
            return;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("backend {pid} still present 10 s after its statement's deadline");
}

/// Waits (at most 10 s) until the api holds at most `max` sessions on the server: connections
/// it discarded while the server was frozen are closed on the server too once it runs again.
async fn wait_for_api_sessions_at_most(database_url: &str, max: i64) -> i64 {
    let observer = connect(database_url).await;
    let mut sessions = 0;
    for _ in 0..200 {
        sessions = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'redside-api'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if sessions <= max {
            return sessions;
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{sessions} api sessions on the server 10 s after the thaw; the pool holds at most {max}"
    );
}
