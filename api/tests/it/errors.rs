//! Bad input gets a clear JSON error and changes nothing; unknown paths, wrong methods and
//! oversized bodies get their status.

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, assert_error, json, spawn_app};

async fn count_items(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn malformed_json_is_a_400_and_creates_nothing() {
    let app = spawn_app().await;
    for body in [
        "",
        "{",
        "not json",
        r#"{"nom":"x","prix":}"#,
        r#"{"nom":"x","prix":NaN}"#,
        r#"{"nom":"x","prix":1}trailing"#,
    ] {
        assert_error(&app.post("/items", body).await, 400, None);
    }
    assert_eq!(count_items(&app).await, 0);
}

#[tokio::test]
async fn rule_breaking_bodies_are_422_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let long = "n".repeat(201);
    let cases = [
        (r#"{"prix":1}"#.to_owned(), Some("nom")),
        (r#"{"nom":"","prix":1}"#.to_owned(), Some("nom")),
        (r#"{"nom":"  ","prix":1}"#.to_owned(), Some("nom")),
        (r#"{"nom":12,"prix":1}"#.to_owned(), Some("nom")),
        (format!(r#"{{"nom":"{long}","prix":1}}"#), Some("nom")),
        (r#"{"nom":"x"}"#.to_owned(), Some("prix")),
        (r#"{"nom":"x","prix":-1}"#.to_owned(), Some("prix")),
        (r#"{"nom":"x","prix":1e999}"#.to_owned(), Some("prix")),
        (r#"{"nom":"x","prix":"10.5"}"#.to_owned(), Some("prix")),
        (r#"{"nom":"x","prix":null}"#.to_owned(), Some("prix")),
        (
            r#"{"nom":"x","prix":1,"couleur":"rouge"}"#.to_owned(),
            Some("couleur"),
        ),
        (r#"{"id":7,"nom":"x","prix":1}"#.to_owned(), Some("id")),
        (r#"[{"nom":"x","prix":1}]"#.to_owned(), None),
    ];
    for (body, field) in &cases {
        let resp = app.post("/items", body).await;
        assert_error(&resp, 422, *field);
    }
    assert_eq!(count_items(&app).await, 0);
}

#[tokio::test]
async fn nom_of_exactly_200_characters_is_accepted() {
    let app = spawn_app().await;
    let nom = "é".repeat(200);
    let id = app.create(&nom, 0.0).await;
    assert_eq!(
        json(&app.get(&format!("/items/{id}")).await)["nom"],
        nom.as_str()
    );
}

#[tokio::test]
async fn bad_put_changes_nothing() {
    let app = spawn_app().await;
    let id = app.create("Original", 5.0).await;
    let path = format!("/items/{id}");

    assert_error(
        &app.put(&path, r#"{"nom":"Nouveau"}"#).await,
        422,
        Some("prix"),
    );
    assert_error(
        &app.put(&path, r#"{"nom":"Nouveau","prix":"#).await,
        400,
        None,
    );
    assert_error(
        &app.put(
            &path,
            &format!(r#"{{"id":{},"nom":"Nouveau","prix":1}}"#, id + 1),
        )
        .await,
        422,
        Some("id"),
    );

    assert_eq!(
        json(&app.get(&path).await),
        serde_json::json!({"id": id, "nom": "Original", "prix": 5.0})
    );
}

#[tokio::test]
async fn missing_and_non_numeric_ids_are_404() {
    let app = spawn_app().await;
    for path in [
        "/items/999",
        "/items/abc",
        "/items/0",
        "/items/-1",
        "/items/1.5",
        "/items/99999999999999999999",
    ] {
        assert_error(&app.get(path).await, 404, None);
        assert_error(&app.delete(path).await, 404, None);
        assert_error(&app.put(path, r#"{"nom":"x","prix":1}"#).await, 404, None);
    }
    assert_eq!(count_items(&app).await, 0);
}

#[tokio::test]
async fn bad_paging_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "offset=-5",
        "offset=x",
    ] {
        assert_error(&app.get(&format!("/items?{query}")).await, 400, None);
    }
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    for path in [
        "/",
        "/nope",
        "/items/",
        "/items/1/extra",
        "/Items",
        "/healthz/x",
    ] {
        assert_error(&app.get(path).await, 404, None);
    }
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow() {
    let app = spawn_app().await;
    let cases = [
        (Method::PATCH, "/items", "GET, POST"),
        (Method::DELETE, "/items", "GET, POST"),
        (Method::POST, "/items/1", "GET, PUT, DELETE"),
        (Method::PATCH, "/items/abc", "GET, PUT, DELETE"),
        (Method::POST, "/healthz", "GET"),
        (Method::PUT, "/readyz", "GET"),
        (Method::DELETE, "/metrics", "GET"),
        (Method::POST, "/openapi.json", "GET"),
    ];
    for (method, path, allow) in cases {
        let resp = app.send(method.clone(), path, None).await;
        assert_error(&resp, 405, None);
        assert_eq!(resp.headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn body_of_exactly_one_mib_is_accepted() {
    let app = spawn_app().await;
    let json = r#"{"nom":"padded","prix":1}"#;
    let body = format!("{json}{}", " ".repeat(1024 * 1024 - json.len()));

    let resp = app.post("/items", &body).await;

    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[tokio::test]
async fn announced_body_over_one_mib_is_413_without_being_sent() {
    let app = spawn_app().await;
    let head = "POST /items HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1048577\r\n\r\n";

    let response = raw_exchange(&app, head.as_bytes()).await;

    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains(r#""field":null"#), "{response}");
}

#[tokio::test]
async fn chunked_body_over_one_mib_is_413() {
    let app = spawn_app().await;
    let size = 1024 * 1024 + 1;
    let mut request = format!(
        "POST /items HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{size:x}\r\n"
    )
    .into_bytes();
    request.extend(std::iter::repeat_n(b' ', size));
    request.extend_from_slice(b"\r\n0\r\n\r\n");

    let response = raw_exchange(&app, &request).await;

    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(count_items(&app).await, 0);
}

/// Writes `request` on a fresh connection and reads what comes back until the server closes
/// it (or resets it after an unread body: what was received before still counts).
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    // The server may answer and close before reading everything (that is the point of the
    // limit), so a failed write is not a failure: the answer is what matters.
    let _ = stream.write_all(request).await;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf)).await
        {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                received.extend_from_slice(&buf[..n]);
                // One response is all we want; stop once its JSON body has arrived.
                if received.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => panic!(
                "no response within 10 s; got {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_client_that_writes_a_two_mib_body_before_reading_gets_its_413() {
    // Python's urllib and requests write the whole body, then read: the api answers 413
    // early and must not reset the connection under them (lingering close).
    let app = spawn_app().await;
    for attempt in 0..10 {
        let answer = testkit::http::post_whole_then_read(app.addr, "/items", 2 << 20)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error:#}"));
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: {answer:?}"
        );
    }
    assert_eq!(count_items(&app).await, 0);
}
