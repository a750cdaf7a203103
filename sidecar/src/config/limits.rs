//! The `[limits]` section: upstream timeouts, the client header-read guard, request-head size,
//! the concurrency limit, and the shutdown timings, with defaults that work locally. Durations
//! use [`crate::config::duration`]'s humane format.

use std::time::Duration;

use serde::Deserialize;

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// TCP connect to the upstream (then 504 `connect_timeout`).
    #[serde(with = "crate::config::duration")]
    pub connect_timeout: Duration,
    /// From sending the request to the upstream's response headers (then 504 `response_timeout`).
    #[serde(with = "crate::config::duration")]
    pub response_header_timeout: Duration,
    /// How long the upstream may send no response body bytes once its headers are in (Envoy's
    /// stream idle timeout, nginx's `proxy_read_timeout`); then the response is aborted and
    /// counted as `body_timeout`.
    #[serde(with = "crate::config::duration")]
    pub response_body_idle_timeout: Duration,
    /// How long a client may take to send each request head, counted from when the connection
    /// opens or the previous response is done (slowloris guard, and the keep-alive idle time;
    /// then the connection is closed without an answer, as nginx does).
    #[serde(with = "crate::config::duration")]
    pub header_read_timeout: Duration,
    /// Largest request head accepted from a client, in bytes (then 431).
    pub max_request_header_bytes: usize,
    /// Requests in flight at once; past it, 503 `overloaded` at once.
    pub max_concurrent_requests: usize,
    /// How long shutdown waits for in-flight requests.
    #[serde(with = "crate::config::duration")]
    pub grace_period: Duration,
    /// After draining, how long the admin listener waits for one last `/metrics` scrape
    /// (so the final counts are collected) before it stops; `0` stops at once.
    #[serde(with = "crate::config::duration")]
    pub final_scrape_wait: Duration,
    /// Idle upstream connections are closed after this long at the latest (after at least
    /// three quarters of it: the pool's clock ticks four times per timeout).
    #[serde(with = "crate::config::duration")]
    pub pool_idle_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_header_timeout: Duration::from_secs(30),
            response_body_idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_request_header_bytes: 64 * 1024,
            max_concurrent_requests: 4096,
            grace_period: Duration::from_secs(10),
            final_scrape_wait: Duration::from_secs(5),
            // Below the keep-alive timeouts of common upstreams (uvicorn and Node 5 s, the
            // items API 10 s): a POST sent on a connection the upstream is closing as idle
            // can't be retried, and bench/stress.sh saw such 502s with 60 s here.
            pool_idle_timeout: Duration::from_secs(4),
        }
    }
}
