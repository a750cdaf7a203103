//! Test support for the observability stack's tests (`e2e/tests/`): the dashboards, the
//! Prometheus rules and configs, compose, and a real PostgreSQL + api + sidecar + Prometheus.
//!
//! - [`workspace`]: the repository root, the built binaries and plugins (failing loudly when a
//!   prerequisite is missing).
//! - [`config`]: the repository's YAML configuration files, untyped.
//! - [`dashboard`]: the provisioned Grafana dashboards, walked panel by panel.
//! - [`promql`]: Grafana macro substitution and the metric names a PromQL expression reads.
//! - [`rules`]: the recording and alerting rules of `prometheus/rules/`.
//! - [`contract`]: the metric contract read from `docs/metrics.md`: every family, who reads it,
//!   and the seed queries.
//! - [`prometheus`]: a real Prometheus server on a free port with the repository's rules, and
//!   its HTTP API.
//! - [`stack`]: a real api and sidecar (with the example plugins) in front of a throwaway
//!   PostgreSQL, and the sample traffic generator.

pub mod config;
pub mod contract;
pub mod dashboard;
pub mod prometheus;
pub mod promql;
pub mod rules;
pub mod stack;
pub mod workspace;
