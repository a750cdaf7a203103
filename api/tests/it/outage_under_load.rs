//! PostgreSQL stopped in the middle of a load, then started again: every answer while it is
//! down is a quick 503, none hangs, the api recovers by itself, and every create acknowledged
//! with a 201 is in the database afterwards, once.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use testkit::Postgres;
use tokio::{task::block_in_place, time::sleep};

use crate::{
    load::{Load, assert_all_succeed_from, percentiles},
    support::spawn_app_on,
};

/// The api's `--pool-wait-timeout` (its default): while the database is down, no answer may
/// take longer (plus room for a loaded 2-core machine), since a refused connection fails at once.
const POOL_WAIT: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_millis(500);
const DOWN: Duration = Duration::from_secs(3);
/// The default pool wait, connect and statement bounds together, plus the margin: no request,
/// whatever the database does, takes longer.
const WORST: Duration = Duration::from_millis(1000 + 2000 + 5000 + 500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_stopped_under_load_gives_quick_503s_and_loses_no_acknowledged_create() {
    let pg = Postgres::start();
    let app = spawn_app_on(&pg.create_database(), &["--pool-wait-timeout", "1s"]).await;
    let load = Load::start(&app.url(""), 32);
    sleep(Duration::from_millis(1500)).await;

    let stopping_at = load.elapsed();
    block_in_place(|| pg.stop());
    let down_at = load.elapsed();
    sleep(DOWN).await;
    let starting_at = load.elapsed();
    block_in_place(|| pg.restart());
    let recovered_at = load
        .first_create_after(&app, starting_at, "the restart")
        .await;
    sleep(Duration::from_millis(1500)).await;
    let outcomes = load.finish().await;

    for o in &outcomes {
        o.assert_success_or_retry_later();
        assert!(
            o.latency <= WORST,
            "longer than every bound together: {o:?}"
        );
    }
    // From the start of the stop to the end of the restart, every answer is a quick 503 or
    // (before the server finished stopping) a success.
    let outage: Vec<_> = outcomes
        .iter()
        .filter(|o| o.sent >= stopping_at && o.sent < starting_at)
        .collect();
    for o in &outage {
        assert!(
            o.latency <= POOL_WAIT + MARGIN,
            "slower than the pool wait: {o:?}"
        );
    }
    let down: Vec<_> = outage.iter().filter(|o| o.sent >= down_at).collect();
    assert!(
        !down.is_empty() && down.iter().all(|o| o.status == Ok(503)),
        "every request sent while the database is down is a 503: {down:?}"
    );
    assert_all_succeed_from(&outcomes, recovered_at + Duration::from_millis(500));

    // Every acknowledged create is stored, under its id, exactly once.
    let acknowledged: BTreeMap<i64, &str> = outcomes
        .iter()
        .filter_map(|o| Some((o.id?, o.nom.as_deref()?)))
        .collect();
    let creates = outcomes.iter().filter(|o| o.id.is_some()).count();
    assert_eq!(acknowledged.len(), creates, "acknowledged ids are unique");
    let rows = app
        .db()
        .await
        .query("SELECT id, nom FROM items", &[])
        .await
        .expect("read the table");
    let mut stored: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for row in &rows {
        stored.entry(row.get(1)).or_default().push(row.get(0));
    }
    let mut missing = BTreeSet::new();
    for (id, nom) in &acknowledged {
        match stored.get(nom).map(Vec::as_slice) {
            Some([stored_id]) if stored_id == id => {}
            Some(other) => panic!("`{nom}` acknowledged as id {id}, stored as {other:?}"),
            None => {
                missing.insert(*id);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );

    let [p50, p99, max] = percentiles(down.iter().copied().copied());
    eprintln!(
        "database down {DOWN:?} under load: {} requests, {} acknowledged creates all stored once \
         ({} rows); {} sent while down, all 503 (p50 {p50:?}, p99 {p99:?}, max {max:?}); \
         first 201 {:?} after the restart began",
        outcomes.len(),
        acknowledged.len(),
        rows.len(),
        down.len(),
        recovered_at - starting_at,
    );
}
