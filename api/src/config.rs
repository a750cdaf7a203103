//! Command-line flags with environment fallbacks (`API_*`, and `DATABASE_URL` as libpq tools
//! use it). Every value but the database URL has a default that works locally.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use clap::Parser;

/// The api's configuration.
#[derive(Clone, Parser)]
#[command(
    name = "api",
    version,
    about = "The items CRUD API on PostgreSQL, with Prometheus metrics."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "API_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// PostgreSQL connection string: libpq key/value (`host=/tmp user=postgres dbname=items`) or
    /// a `postgres://` URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Largest number of database connections the pool opens.
    #[arg(long, env = "API_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub pool_size: u16,

    /// How long a request waits for a free pooled connection before it gets a 503.
    #[arg(long, env = "API_POOL_WAIT_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub pool_wait_timeout: Duration,

    /// How long opening a new database connection may take.
    #[arg(long, env = "API_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// How long checking a pooled connection before reuse may take.
    #[arg(long, env = "API_RECYCLE_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub recycle_timeout: Duration,

    /// How long one statement may take before the request gets a 503, its connection is
    /// discarded and the statement cancelled on the server (whose own `statement_timeout` is
    /// set to twice this, as a backstop).
    // The api enforces it itself because a frozen server cannot run its own timer. 5 s is far
    // above any healthy statement here (milliseconds under load) and below clients' patience:
    // the sidecar's response-header timeout is 30 s and HTTP clients commonly give up at 10 to
    // 30 s, so a slow database is a clean 503 from us, not a client-side timeout.
    #[arg(long, env = "API_STATEMENT_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration)]
    pub statement_timeout: Duration,

    /// How long `/readyz` waits for `SELECT 1` before answering 503.
    #[arg(long, env = "API_READY_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub ready_timeout: Duration,

    /// How long start-up keeps retrying an unreachable database before giving up.
    #[arg(long, env = "API_STARTUP_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub startup_timeout: Duration,

    /// After SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[arg(long, env = "API_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Sampling and OTLP span export (`OTEL_*` fallbacks).
    #[command(flatten)]
    pub tracing: traces::TracingArgs,
}

/// The URL may carry a password, so `Debug` leaves it out.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("recycle_timeout", &self.recycle_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("ready_timeout", &self.ready_timeout)
            .field("startup_timeout", &self.startup_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("tracing", &self.tracing)
            .finish()
    }
}

/// Parses `250ms`, `2s`, `1m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("invalid duration `{text}`: expected e.g. `250ms`, `2s`, `1m` or `1.5`");
    let value = f64::from_str(number).map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// [`parse_duration`], refusing zero (a deadline of zero would fail every statement, and
/// PostgreSQL reads a zero `statement_timeout` as "no limit").
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("`{}` must be more than zero", text.trim())),
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_bare_seconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations_are_rejected_with_the_value() {
        for bad in ["", "s", "10h", "-1s", "1..2s", "fast"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn flags_have_working_defaults_and_the_url_is_redacted() {
        let config = Config::try_parse_from(["api", "--database-url", "postgres://u:secret@h/db"])
            .expect("parses");
        assert_eq!(config.listen, "127.0.0.1:8000".parse().expect("addr"));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn statements_have_a_bounded_deadline_that_is_never_zero() {
        let config = Config::try_parse_from(["api", "--database-url", "x"]).expect("parses");
        assert_eq!(config.statement_timeout, Duration::from_secs(5));
        for zero in ["0", "0s", "0ms"] {
            assert!(
                Config::try_parse_from(["api", "--database-url", "x", "--statement-timeout", zero])
                    .is_err(),
                "{zero}"
            );
        }
    }

    #[test]
    fn zero_pool_size_is_refused() {
        assert!(
            Config::try_parse_from(["api", "--database-url", "x", "--pool-size", "0"]).is_err()
        );
    }
}
