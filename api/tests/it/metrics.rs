//! `/metrics` after known traffic: the names, labels and values of the contract (the API part
//! of `docs/metrics.md`), read with a real exposition parser.

use crate::support::spawn_app;

const ITEM: &str = r#"{"nom":"x","prix":1}"#;

#[tokio::test]
async fn counters_and_query_timings_match_known_traffic() {
    let app = spawn_app().await;
    let a = app.create("a", 1.0).await;
    let b = app.create("b", 2.0).await;
    assert_eq!(app.post("/items", r#"{"nom":""}"#).await.status, 422);
    assert_eq!(app.get(&format!("/items/{a}")).await.status, 200);
    assert_eq!(app.get("/items/999999").await.status, 404);
    assert_eq!(app.get("/items/abc").await.status, 404);
    assert_eq!(app.get("/items").await.status, 200);
    assert_eq!(app.put(&format!("/items/{a}"), ITEM).await.status, 200);
    assert_eq!(app.put("/items/999999", ITEM).await.status, 404);
    assert_eq!(app.delete(&format!("/items/{b}")).await.status, 204);
    assert_eq!(app.delete(&format!("/items/{b}")).await.status, 404);
    assert_eq!(app.get("/readyz").await.status, 200);

    let scrape = app.scrape().await;

    // Only successes count; a list of 2 reads 2.
    assert_eq!(scrape.value("items_created_total", &[]), Some(2.0));
    assert_eq!(scrape.value("items_read_total", &[]), Some(3.0));
    assert_eq!(scrape.value("items_updated_total", &[]), Some(1.0));
    assert_eq!(scrape.value("items_deleted_total", &[]), Some(1.0));
    // Every statement is timed, hits and misses alike; rejected requests never reach the database.
    let count = |op: &str| scrape.value("db_query_duration_seconds_count", &[("operation", op)]);
    assert_eq!(count("insert"), Some(2.0));
    assert_eq!(count("select"), Some(2.0));
    assert_eq!(count("list"), Some(1.0));
    assert_eq!(count("update"), Some(2.0));
    assert_eq!(count("delete"), Some(2.0));
    assert_eq!(count("ping"), Some(1.0));
    assert_eq!(count("schema"), Some(1.0));
    let operations: Vec<String> = scrape
        .series("db_query_duration_seconds_count")
        .iter()
        .map(|s| s.labels["operation"].clone())
        .collect();
    assert_eq!(
        operations.len(),
        7,
        "a closed set of operations: {operations:?}"
    );
    assert!(
        scrape
            .value("db_query_duration_seconds_sum", &[("operation", "insert")])
            .is_some_and(|s| s > 0.0)
    );
    // Each request that reached the database waited for a connection once.
    assert_eq!(
        scrape.value("db_connection_pool_wait_seconds_count", &[]),
        Some(11.0)
    );
    assert_eq!(
        scrape.value("db_connection_pool_timeouts_total", &[]),
        Some(0.0)
    );
}

#[tokio::test]
async fn query_histogram_has_exactly_the_contract_buckets() {
    let app = spawn_app().await;
    app.create("x", 1.0).await;

    let scrape = app.scrape().await;

    let mut bounds: Vec<(f64, String)> = scrape
        .series("db_query_duration_seconds_bucket")
        .iter()
        .filter(|s| s.labels["operation"] == "insert")
        .map(|s| {
            (
                s.labels["le"].parse::<f64>().expect("le is a number"),
                s.labels["le"].clone(),
            )
        })
        .collect();
    bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    let bounds: Vec<String> = bounds.into_iter().map(|(_, le)| le).collect();
    assert_eq!(
        bounds,
        [
            "0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0",
            "+Inf"
        ]
    );
    assert_eq!(
        scrape.value(
            "db_query_duration_seconds_bucket",
            &[("operation", "insert"), ("le", "+Inf")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn pool_gauges_build_info_and_process_metrics_are_exposed() {
    let app = crate::support::spawn_app_on(
        &testkit::Postgres::shared().create_database(),
        &["--pool-size", "7"],
    )
    .await;
    app.create("x", 1.0).await;

    let scrape = app.scrape().await;

    assert_eq!(scrape.value("db_connection_pool_max", &[]), Some(7.0));
    let size = scrape
        .value("db_connection_pool_size", &[])
        .expect("pool size");
    assert!(
        (1.0..=7.0).contains(&size),
        "one connection opened so far, at most max: {size}"
    );
    let available = scrape
        .value("db_connection_pool_available", &[])
        .expect("available");
    assert!(available <= size, "{available} <= {size}");
    assert_eq!(scrape.value("db_connection_pool_waiting", &[]), Some(0.0));
    assert_eq!(
        scrape.value("api_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    assert!(
        scrape
            .value("process_resident_memory_bytes", &[])
            .is_some_and(|v| v > 1e6)
    );
    assert!(
        scrape
            .value("process_open_fds", &[])
            .is_some_and(|v| v >= 3.0)
    );
    assert!(
        scrape
            .value("process_cpu_seconds_total", &[])
            .is_some_and(|v| v >= 0.0)
    );
    for family in [
        "process_virtual_memory_bytes",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
    ] {
        assert!(scrape.value(family, &[]).is_some(), "{family}");
    }
}

#[tokio::test]
async fn family_types_match_the_contract() {
    let app = spawn_app().await;

    let scrape = app.scrape().await;

    let expected = [
        ("items_created", "counter"),
        ("items_read", "counter"),
        ("items_updated", "counter"),
        ("items_deleted", "counter"),
        ("db_query_duration_seconds", "histogram"),
        ("db_connection_pool_size", "gauge"),
        ("db_connection_pool_max", "gauge"),
        ("db_connection_pool_available", "gauge"),
        ("db_connection_pool_waiting", "gauge"),
        ("db_connection_pool_wait_seconds", "histogram"),
        ("db_connection_pool_timeouts", "counter"),
        ("api_build_info", "gauge"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
    ];
    for (family, kind) in expected {
        assert_eq!(
            scrape.families.get(family).map(String::as_str),
            Some(kind),
            "{family}: {:?}",
            scrape.families
        );
    }
    // Series exist before any traffic, so rate() starts from 0 rather than from nothing.
    assert_eq!(scrape.value("items_created_total", &[]), Some(0.0));
    assert_eq!(
        scrape.value(
            "db_query_duration_seconds_count",
            &[("operation", "insert")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn metrics_follow_the_accept_header_and_the_classic_text_passes_promtool() {
    let app = spawn_app().await;
    app.create("x", 1.0).await;
    let url = app.url("/metrics");

    let openmetrics = testkit::http::scrape(&url).await.unwrap();
    assert_eq!(
        openmetrics.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.text().ends_with("# EOF\n"));

    let classic = app.get("/metrics").await;
    assert_eq!(
        classic.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = classic.text();
    assert!(!text.contains("# EOF"));
    assert!(
        text.contains("# HELP items_created_total Items created.\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE items_created_total counter\n"),
        "{text}"
    );
    testkit::promtool::check_metrics(&text).unwrap();
    let names = |text: &str| -> std::collections::BTreeSet<String> {
        (testkit::Scrape::parse(text).unwrap().samples.into_iter())
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(names(&text), names(&openmetrics.text()));
}
