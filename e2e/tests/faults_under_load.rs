//! Faults under load, with the real processes: clients keep sending CRUD requests through the
//! sidecar (bounded in count and time, loopback only) while
//! - the api is killed (SIGKILL) and started again: every request gets an answer, the failures
//!   are 502s that the sidecar counts as upstream errors by type, `/readyz` follows, and the
//!   sidecar recovers without a restart;
//! - the sidecar gets SIGTERM: no request it accepted fails, and its final scrape counts every
//!   answer the clients got.
//!
//! Needs `cargo build --workspace --bins`, `plugins/build` and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::stack::{Stack, scrape};
use http::Method;

/// What one request got.
#[derive(Debug)]
struct Answer {
    started: Instant,
    /// The status, or the transport error.
    status: Result<u16, String>,
    took: Duration,
}

/// Clients that send GET and POST `/items` in turn until stopped, at most `MAX_REQUESTS` each.
struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const CLIENTS: usize = 8;
const MAX_REQUESTS: usize = 2_000;

impl Load {
    fn start(proxy_url: &str, stop_at_first_error: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..CLIENTS)
            .map(|client| {
                let (stop, answers) = (stop.clone(), answers.clone());
                let url = format!("{proxy_url}/items");
                tokio::spawn(async move {
                    for n in 0..MAX_REQUESTS {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let started = Instant::now();
                        let result = if n % 2 == 0 {
                            testkit::http::send(Method::GET, &format!("{url}?limit=5"), None).await
                        } else {
                            let body = format!(r#"{{"nom":"load {client}-{n}","prix":1.5}}"#);
                            testkit::http::send(Method::POST, &url, Some(&body)).await
                        };
                        let failed = result.is_err();
                        answers.lock().unwrap().push(Answer {
                            started,
                            status: result
                                .map(|r| r.status.as_u16())
                                .map_err(|e| format!("{e:#}")),
                            took: started.elapsed(),
                        });
                        if failed && stop_at_first_error {
                            break;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            answers,
            tasks,
        }
    }

    async fn finish(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.answers).unwrap().into_inner().unwrap()
    }
}

async fn readyz(stack: &Stack) -> u16 {
    let url = format!("http://{}/readyz", stack.admin_addr);
    testkit::http::get(&url).await.unwrap().status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_killed_under_load_gives_counted_502s_and_the_sidecar_recovers_alone() {
    let mut stack = Stack::start(&testkit::Postgres::shared().create_database())
        .await
        .unwrap();
    let sidecar_pid = stack.sidecar.id();
    let load = Load::start(&stack.proxy_url, false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.kill_api().await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(readyz(&stack).await, 503, "readiness follows the api down");
    stack.restart_api().await.unwrap();
    assert_eq!(readyz(&stack).await, 200, "and back up");
    let recovered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let answers = load.finish().await;

    let transport: Vec<&Answer> = answers.iter().filter(|a| a.status.is_err()).collect();
    assert!(
        transport.is_empty(),
        "every request gets an answer: {transport:?}"
    );
    let status = |a: &Answer| *a.status.as_ref().unwrap();
    let unexpected: Vec<&Answer> = (answers.iter())
        .filter(|a| !matches!(status(a), 200 | 201 | 502))
        .collect();
    assert!(
        unexpected.is_empty(),
        "only 200, 201 and 502: {unexpected:?}"
    );
    let failed = answers.iter().filter(|a| status(a) == 502).count();
    assert!(failed > 0, "the api was killed under load");
    let after: Vec<&Answer> = (answers.iter())
        .filter(|a| a.started > recovered + Duration::from_millis(100))
        .collect();
    assert!(!after.is_empty(), "traffic after the restart");
    assert!(
        after.iter().all(|a| matches!(status(a), 200 | 201)),
        "recovered without restarting the sidecar: {after:?}"
    );
    let slowest = answers.iter().map(|a| a.took).max().unwrap();
    assert!(
        slowest < Duration::from_secs(10),
        "no request hangs: {slowest:?}"
    );
    assert_eq!(stack.sidecar.id(), sidecar_pid);

    let sidecar = scrape(&format!("http://{}/metrics", stack.admin_addr))
        .await
        .unwrap();
    assert_eq!(
        sidecar.sum("http_requests_total", &[("status", "5xx")]),
        failed as f64,
        "every 502 the clients saw is in the RED family"
    );
    assert_eq!(
        sidecar.sum("sidecar_upstream_errors_total", &[]),
        failed as f64,
        "and counted as an upstream error by type"
    );
    eprintln!(
        "{} requests, {failed} answered 502 while the api was down, slowest {slowest:?}",
        answers.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_stopped_under_load_fails_no_accepted_request() {
    let mut stack = Stack::start(&testkit::Postgres::shared().create_database())
        .await
        .unwrap();
    let metrics = format!("http://{}/metrics", stack.admin_addr);
    let load = Load::start(&stack.proxy_url, true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.sidecar.signal(testkit::process::UnixSignal::SIGTERM);
    // The last scrape before the sidecar exits is its final count.
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match scrape(&metrics).await {
            Ok(s) => last = Some(s),
            Err(_) if last.is_some() => break,
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = stack
        .sidecar
        .wait_exit(Duration::from_secs(20))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let answers = load.finish().await;

    let answered: Vec<u16> = answers
        .iter()
        .filter_map(|a| a.status.clone().ok())
        .collect();
    let failed: Vec<&u16> = answered
        .iter()
        .filter(|s| !matches!(s, 200 | 201))
        .collect();
    assert!(failed.is_empty(), "an accepted request failed: {failed:?}");
    assert!(answered.len() > CLIENTS, "load ran: {}", answered.len());
    let last = last.expect("at least one scrape");
    assert_eq!(
        last.sum("http_requests_total", &[]),
        answered.len() as f64,
        "the final scrape counts every answer"
    );
    eprintln!(
        "{} answered before the sidecar stopped, {} refused after",
        answered.len(),
        answers.len() - answered.len()
    );
}
