//! Load for the fault tests: workers that create items in a loop (each `nom` unique, so the
//! database can be checked afterwards) and read back what they created, recording every answer
//! with when it was sent and how long it took.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::Method;
use tokio::{task::JoinHandle, time::Instant};

/// Longer than any bound the api promises: a request still unanswered then has hung.
pub const HANG: Duration = Duration::from_secs(30);

/// One request and its answer.
#[derive(Debug)]
pub struct Outcome {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    /// How long its answer took.
    pub latency: Duration,
    /// The status, or why there was none (a transport error, or no answer within [`HANG`]).
    pub status: Result<u16, String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// For a create (`POST`): the `nom` sent; `None` for a read back (`GET`).
    pub nom: Option<String>,
    /// For a 201: the id the api acknowledged.
    pub id: Option<i64>,
}

impl Outcome {
    /// Fails unless the request got a success or a 503 with `Retry-After: 1`.
    pub fn assert_success_or_retry_later(&self) {
        let status = self
            .status
            .as_ref()
            .unwrap_or_else(|e| panic!("{self:?}: {e}"));
        assert!(matches!(status, 200 | 201 | 503), "{self:?}");
        if *status == 503 {
            assert_eq!(self.retry_after.as_deref(), Some("1"), "{self:?}");
        }
    }
}

/// Fails unless some requests were sent from `settled` on (on the load's clock), and every one
/// of them succeeded.
pub fn assert_all_succeed_from(outcomes: &[Outcome], settled: Duration) {
    let after: Vec<_> = outcomes.iter().filter(|o| o.sent >= settled).collect();
    let failed: Vec<_> = (after.iter())
        .filter(|o| !matches!(o.status, Ok(200 | 201)))
        .collect();
    assert!(
        !after.is_empty() && failed.is_empty(),
        "every request sent after recovery succeeds: {failed:?}"
    );
}

/// Workers sending requests until [`Load::finish`].
pub struct Load {
    start: Instant,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<Vec<Outcome>>>,
}

impl Load {
    /// `workers` concurrent loops against the api at `base` (`http://127.0.0.1:port`): each
    /// creates an item, then reads the last item it created every other request.
    pub fn start(base: &str, workers: usize) -> Load {
        let start = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| tokio::spawn(worker(base.to_owned(), w, start, stop.clone())))
            .collect();
        Load {
            start,
            stop,
            workers,
        }
    }

    /// Time since the load started (the clock of [`Outcome::sent`]).
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Creates items through `app` until one is acknowledged (the api has recovered after the
    /// event at `since`, named `what`); that moment on the load's clock. Fails after 20 s.
    pub async fn first_create_after(
        &self,
        app: &crate::support::TestApp,
        since: Duration,
        what: &str,
    ) -> Duration {
        loop {
            let resp = app
                .post("/items", r#"{"nom":"after recovery","prix":1}"#)
                .await;
            if resp.status == 201 {
                return self.elapsed();
            }
            assert!(
                self.elapsed() - since < Duration::from_secs(20),
                "no 201 within 20 s of {what}: {}",
                resp.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the workers after their current request; every outcome, in no particular order.
    pub async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for worker in self.workers {
            all.extend(worker.await.expect("load worker"));
        }
        all
    }
}

async fn worker(base: String, w: usize, start: Instant, stop: Arc<AtomicBool>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut last_id = None;
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let read_back = n % 2 == 1 && last_id.is_some();
        let (method, path, nom) = match last_id {
            Some(id) if read_back => (Method::GET, format!("/items/{id}"), None),
            _ => (
                Method::POST,
                "/items".to_owned(),
                Some(format!("load w{w} n{n}")),
            ),
        };
        let body = nom
            .as_ref()
            .map(|nom| serde_json::json!({"nom": nom, "prix": n}).to_string());
        let sent = start.elapsed();
        let answer = tokio::time::timeout(
            HANG,
            testkit::http::send(method.clone(), &format!("{base}{path}"), body.as_deref()),
        )
        .await;
        let latency = start.elapsed() - sent;
        let mut outcome = Outcome {
            sent,
            latency,
            status: Err(String::new()),
            retry_after: None,
            nom,
            id: None,
        };
        match answer {
            Err(_) => outcome.status = Err(format!("no answer within {HANG:?}")),
            Ok(Err(e)) => outcome.status = Err(format!("{e:#}")),
            Ok(Ok(resp)) => {
                outcome.status = Ok(resp.status.as_u16());
                outcome.retry_after = resp
                    .headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if resp.status == 201 {
                    let item: serde_json::Value =
                        serde_json::from_slice(&resp.body).expect("a 201 body is JSON");
                    outcome.id = item["id"].as_i64();
                    last_id = outcome.id;
                }
            }
        }
        if outcome.status.is_err() {
            // A broken connection is reported once, not retried in a tight loop.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// Latency percentiles of `outcomes` (p50, p99, max), for the tests' printed summaries.
pub fn percentiles<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> [Duration; 3] {
    let mut latencies: Vec<Duration> = outcomes.map(|o| o.latency).collect();
    if latencies.is_empty() {
        return [Duration::ZERO; 3];
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.99), at(1.0)]
}
