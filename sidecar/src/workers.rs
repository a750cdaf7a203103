//! The proxy's worker threads: each runs its own single-threaded tokio runtime with its own
//! upstream connection pool, the way nginx runs `worker_processes`. A request, its client
//! connection and its upstream connection then stay on one thread: no cross-thread wake-ups on
//! the hot path, which on a small machine cost more than the proxying itself. What must be
//! global (metrics, the route table, the concurrency limit, the plugins) is shared through the
//! [`Stack`].
//!
//! One acceptor, on the caller's runtime, deals the client connections to the workers in turn
//! ([`serve::Spreader`]), so each worker gets its share of the connections (see
//! `serve::accept` for the imbalance a shared accepting socket gave).

use std::{
    future::Future,
    sync::{Arc, OnceLock},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};
use tracing::info;

use crate::{config::LimitsConfig, stack::Stack};

/// How many workers `configured` means: `0` is one per CPU.
pub(crate) fn count(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        thread::available_parallelism().map_or(1, usize::from)
    }
}

/// Running workers.
pub(crate) struct Workers {
    stop: watch::Sender<bool>,
    acceptor: JoinHandle<()>,
    done: Vec<oneshot::Receiver<()>>,
}

/// Starts `count` workers serving the connections accepted on `listener`. Call it inside a
/// tokio runtime: the acceptor runs there.
///
/// # Errors
/// When a thread or runtime can't be created.
pub(crate) fn start(
    count: usize,
    listener: TcpListener,
    stack: Stack,
    limits: LimitsConfig,
    serve_limits: serve::Limits,
) -> anyhow::Result<Workers> {
    let (stop, stopped) = watch::channel(false);
    let (spreader, handoffs) = serve::Spreader::new(listener, count);
    let mut done = Vec::with_capacity(count);
    for (index, handoff) in handoffs.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a worker runtime")?;
        let (stack, limits, mut stopped) = (stack.clone(), limits.clone(), stopped.clone());
        let (finished, finished_rx) = oneshot::channel();
        thread::Builder::new()
            .name(format!("proxy-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let service = stack.build();
                    let since = Arc::new(OnceLock::new());
                    // Stop when told to, or when the sender is gone (the sidecar's run was dropped).
                    let shutdown = {
                        let since = Arc::clone(&since);
                        async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                            let _ = since.set(Instant::now());
                        }
                    };
                    serve::serve(
                        handoff,
                        service,
                        serve_limits,
                        shutdown,
                        limits.grace_period,
                    )
                    .await;
                    // Upgraded connections left the drain with their 101: they get what is
                    // left of the grace period, then the runtime's end closes them.
                    let spent = since.get().map_or(Duration::ZERO, Instant::elapsed);
                    let left = limits.grace_period.saturating_sub(spent);
                    stack.tunnels().wait_closed(left).await;
                });
                // Dropping the runtime ends what outlived the grace period.
                drop(runtime);
                let _ = finished.send(());
            })
            .context("spawning a proxy worker thread")?;
        done.push(finished_rx);
    }
    let mut stopped = stop.subscribe();
    let acceptor = tokio::spawn(spreader.run(async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    info!(workers = count, "proxy workers started");
    Ok(Workers {
        stop,
        acceptor,
        done,
    })
}

impl Workers {
    /// Serves until `shutdown` completes, then has every worker stop accepting and drain, and
    /// waits for them all.
    pub(crate) async fn serve_until(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let _ = self.stop.send(true);
        // The listening socket closes with the acceptor: new connections are refused from here.
        let _ = self.acceptor.await;
        for worker in self.done {
            // A worker that panicked drops its sender; there is nothing left to wait for.
            let _ = worker.await;
        }
        info!("proxy workers drained");
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("count", &self.done.len())
            .finish()
    }
}
