//! Concurrent writes: none lost, ids unique.

use std::collections::BTreeSet;

use crate::support::{json, spawn_app_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_creates_are_all_stored_with_unique_ids() {
    // 50 requests share 16 connections; a generous pool wait keeps a loaded CI machine (slow
    // connects) from turning queueing into 503s, which is not what this test is about.
    let database_url = testkit::Postgres::shared().create_database();
    let app = spawn_app_on(&database_url, &["--pool-wait-timeout", "30s"]).await;
    let url = app.url("/items");

    let creates = (0..50).map(|n| {
        let url = url.clone();
        tokio::spawn(async move {
            testkit::http::post(&url, &format!(r#"{{"nom":"parallel {n}","prix":{n}}}"#)).await
        })
    });
    let responses = futures_util::future::join_all(creates).await;

    let mut ids = BTreeSet::new();
    for resp in responses {
        let resp = resp.expect("task").expect("request");
        assert_eq!(resp.status, 201, "{}", resp.text());
        ids.insert(json(&resp)["id"].as_i64().expect("id"));
    }
    assert_eq!(ids.len(), 50, "ids are unique");
    let listed = json(&app.get("/items?limit=1000").await);
    let listed: BTreeSet<i64> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(
        app.scrape().await.value("items_created_total", &[]),
        Some(50.0)
    );
}
