//! Fixtures shared by the workspace's integration tests. Dev-only: no binary depends on it.
//!
//! - [`postgres`]: a throwaway PostgreSQL cluster from the installed binaries, shared per test
//!   process or private to one test, with a fresh database per test.
//! - [`process`]: a child-process guard (killed on drop), readiness polling and signals.
//! - [`scrape`]: Prometheus/OpenMetrics text parsed with a real parser, flattened to samples.
//! - [`http`]: a tiny HTTP/1 client for tests (keep-alive pool from hyper-util), and a raw one
//!   that writes a whole request before reading, as Python's clients do.
//! - [`promtool`]: `promtool check metrics` over an exposition.
//! - [`exemplars`]: exemplars read back from OpenMetrics text.
//! - [`otlp`]: an OTLP/HTTP trace receiver decoding with the official protobuf definitions,
//!   over TLS too ([`tls`]: a CA and a server certificate made at test time).
//! - [`plugins`]: the built Proxy-Wasm modules in `plugins/dist/`.

pub mod exemplars;
pub mod http;
pub mod otlp;
pub mod plugins;
pub mod postgres;
pub mod process;
pub mod promtool;
pub mod scrape;
pub mod tls;

pub use postgres::Postgres;
pub use process::{Process, free_port};
pub use scrape::Scrape;
