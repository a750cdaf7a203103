//! CRUD behaviour on the happy paths, and the probes.

use serde_json::json;

use crate::support::{json, spawn_app};

#[tokio::test]
async fn seed_request_creates_an_item_with_location() {
    let app = spawn_app().await;

    let resp = app.post("/items", r#"{"nom":"Test","prix":10.5}"#).await;

    assert_eq!(resp.status, 201, "{}", resp.text());
    let item = json(&resp);
    let id = item["id"].as_i64().expect("integer id");
    assert!(id >= 1);
    assert_eq!(resp.headers["location"], format!("/items/{id}").as_str());
    assert_eq!(resp.headers["content-type"], "application/json");
    assert_eq!(item, json!({"id": id, "nom": "Test", "prix": 10.5}));
    // Round trip: 10.5 is stored and returned as the JSON number 10.5.
    assert!(resp.text().contains(r#""prix":10.5"#), "{}", resp.text());
}

#[tokio::test]
async fn get_returns_the_stored_item() {
    let app = spawn_app().await;
    let id = app.create("Chaise", 49.99).await;

    let resp = app.get(&format!("/items/{id}")).await;

    assert_eq!(resp.status, 200);
    assert_eq!(
        json(&resp),
        json!({"id": id, "nom": "Chaise", "prix": 49.99})
    );
}

#[tokio::test]
async fn list_pages_in_id_order() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(app.create(&format!("item {n}"), f64::from(n)).await);
    }
    let ids_of = |resp: &testkit::http::Response| -> Vec<i64> {
        json(resp)
            .as_array()
            .expect("array")
            .iter()
            .map(|i| i["id"].as_i64().expect("id"))
            .collect()
    };

    let all = app.get("/items").await;
    assert_eq!(all.status, 200);
    assert_eq!(ids_of(&all), ids);
    assert_eq!(
        json(&all)[0],
        json!({"id": ids[0], "nom": "item 0", "prix": 0.0})
    );
    assert_eq!(ids_of(&app.get("/items?limit=2").await), ids[..2]);
    assert_eq!(ids_of(&app.get("/items?limit=2&offset=3").await), ids[3..]);
    assert_eq!(ids_of(&app.get("/items?offset=5").await), Vec::<i64>::new());
    assert_eq!(ids_of(&app.get("/items?limit=0").await), Vec::<i64>::new());
}

#[tokio::test]
async fn list_defaults_to_100_and_caps_at_1000() {
    let app = spawn_app().await;
    let db = app.db().await;
    db.execute(
        "INSERT INTO items (nom, prix) SELECT 'bulk ' || n, n FROM generate_series(1, 1001) AS n",
        &[],
    )
    .await
    .expect("bulk insert");
    let len = |resp: testkit::http::Response| json(&resp).as_array().expect("array").len();

    assert_eq!(len(app.get("/items").await), 100);
    assert_eq!(len(app.get("/items?limit=1000").await), 1000);
    assert_eq!(len(app.get("/items?limit=1000&offset=1000").await), 1);
    assert_eq!(app.get("/items?limit=1001").await.status, 400);
}

#[tokio::test]
async fn put_replaces_the_whole_item() {
    let app = spawn_app().await;
    let id = app.create("Avant", 1.0).await;

    let resp = app
        .put(&format!("/items/{id}"), r#"{"nom":"Après","prix":2.25}"#)
        .await;

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(json(&resp), json!({"id": id, "nom": "Après", "prix": 2.25}));
    assert_eq!(
        json(&app.get(&format!("/items/{id}")).await),
        json!({"id": id, "nom": "Après", "prix": 2.25})
    );
}

#[tokio::test]
async fn put_accepts_an_item_read_back_with_its_own_id() {
    let app = spawn_app().await;
    let id = app.create("x", 1.0).await;
    let mut item = json(&app.get(&format!("/items/{id}")).await);
    item["prix"] = json!(3.5);

    let resp = app.put(&format!("/items/{id}"), &item.to_string()).await;

    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(json(&resp)["prix"], 3.5);
}

#[tokio::test]
async fn delete_answers_204_and_the_item_is_gone() {
    let app = spawn_app().await;
    let id = app.create("x", 1.0).await;

    let resp = app.delete(&format!("/items/{id}")).await;

    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    assert_eq!(app.get(&format!("/items/{id}")).await.status, 404);
    assert_eq!(app.delete(&format!("/items/{id}")).await.status, 404);
}

#[tokio::test]
async fn probes_answer_and_openapi_is_served() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(json(&health), json!({"status": "ok"}));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(json(&ready), json!({"status": "ready"}));
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.headers["content-type"], "application/json");
    assert_eq!(json(&doc)["openapi"], "3.0.3");
}

#[tokio::test]
async fn run_returns_ok_after_shutdown() {
    let app = spawn_app().await;
    app.create("x", 1.0).await;
    let addr = app.addr;

    app.stop().await.expect("run returns Ok");

    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}
