//! The front door of every test: [`spawn_app`] starts the real api on 127.0.0.1:0 over a
//! fresh database, and [`TestApp`] talks to it.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use http::Method;
use serde_json::Value;
use testkit::{Postgres, Scrape, http::Response};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// A running api and the database it uses.
pub struct TestApp {
    pub addr: SocketAddr,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The api over a fresh database in the process's shared cluster.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(&Postgres::shared().create_database(), &[]).await
}

/// The api over `database_url`, with extra flags (`--pool-size 1`, ...).
pub async fn spawn_app_on(database_url: &str, flags: &[&str]) -> TestApp {
    let args = ["api", "--database-url", database_url]
        .into_iter()
        .chain(flags.iter().copied());
    let config = api::Config::try_parse_from(args).expect("valid test flags");
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let app = TestApp {
        addr,
        database_url: database_url.to_owned(),
        stop: Some(stop),
        task,
    };
    app.wait_ready().await;
    app
}

impl TestApp {
    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with an optional JSON body.
    pub async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Response {
        testkit::http::send(method.clone(), &self.url(path), body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Response {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &str) -> Response {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.send(Method::DELETE, path, None).await
    }

    /// Creates an item and returns its id.
    pub async fn create(&self, nom: &str, prix: f64) -> i64 {
        let body = serde_json::json!({"nom": nom, "prix": prix}).to_string();
        let resp = self.post("/items", &body).await;
        assert_eq!(resp.status, 201, "{}", resp.text());
        json(&resp)["id"].as_i64().expect("id is an integer")
    }

    /// Scrapes and parses `/metrics`.
    pub async fn scrape(&self) -> Scrape {
        let resp = testkit::http::scrape(&self.url("/metrics"))
            .await
            .expect("scrape");
        assert_eq!(resp.status, 200);
        Scrape::parse(&resp.text()).unwrap_or_else(|e| panic!("{e:#}\n{}", resp.text()))
    }

    /// A direct session that holds item `id`'s row lock (in an open transaction) until dropped,
    /// so the api's next statement on that row waits on the server.
    pub async fn lock_row(&self, id: i64) -> tokio_postgres::Client {
        let locker = self.db().await;
        locker
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM items WHERE id = {id} FOR UPDATE"
            ))
            .await
            .expect("lock row");
        locker
    }

    /// A direct connection to the api's database, for arranging and checking state.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    /// Asks the api to stop and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("api stops within 15 s")
            .expect("api task")
    }

    /// Polls `/healthz` until the api serves (start-up applies the schema first).
    async fn wait_ready(&self) {
        for _ in 0..600 {
            assert!(
                !self.task.is_finished(),
                "api::run returned during start-up"
            );
            if testkit::http::get(&self.url("/healthz"))
                .await
                .is_ok_and(|r| r.status == 200)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("api not serving after 30 s");
    }
}

/// A direct connection to `database_url`, its driver task spawned.
pub async fn connect(database_url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {database_url}: {e}"));
    tokio::spawn(connection);
    client
}

/// The body as JSON.
pub fn json(resp: &Response) -> Value {
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", resp.text()))
}

/// Asserts a JSON error response: status, `error` text present, `field` as expected.
pub fn assert_error(resp: &Response, status: u16, field: Option<&str>) {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.headers["content-type"], "application/json");
    let body = json(resp);
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["field"].as_str(), field, "{body}");
}

/// Waits until some session of the database is blocked on a lock (a request held by a row
/// lock the test took from another session).
pub async fn wait_for_lock_waiter(database_url: &str) {
    let observer = connect(database_url).await;
    for _ in 0..400 {
        let waiting: i64 = observer
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'", &[])
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no session blocked on a lock within 10 s");
}
