//! Start-up schema setup: `schema.sql`, applied idempotently, retried with backoff while the
//! database is not reachable yet (it often starts alongside the api), for a bounded time.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::{db::Db, error::Chain};

/// The schema script; every statement in it is idempotent.
pub const SCRIPT: &str = include_str!("../schema.sql");

/// Applies [`SCRIPT`], retrying transient failures until `timeout` has passed.
///
/// # Errors
/// When the database stays unreachable for `timeout`, or the script fails for another reason
/// (permissions, an incompatible existing table): retrying would not help.
pub async fn apply(db: &Db, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0u32;
    loop {
        let error = match db.apply_schema(SCRIPT).await {
            Ok(()) => {
                info!(attempts = attempt + 1, "schema ready");
                return Ok(());
            }
            Err(error) => error,
        };
        if !error.is_unavailable() {
            bail!("applying the schema failed: {}", Chain(&error));
        }
        let pause = backoff(attempt);
        if Instant::now() + pause > deadline {
            bail!(
                "database not reachable after {timeout:?} (API_STARTUP_TIMEOUT): {}",
                Chain(&error)
            );
        }
        warn!(attempt = attempt + 1, retry_in = ?pause, error = %Chain(&error), "database not reachable yet");
        tokio::time::sleep(pause).await;
        attempt = attempt.saturating_add(1);
    }
}

/// How long to wait before retry number `attempt` (0-based): 100 ms doubling up to 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100 << attempt.min(5)).min(Duration::from_secs(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps_at_two_seconds() {
        let pauses: Vec<u64> = (0..8).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }
}
