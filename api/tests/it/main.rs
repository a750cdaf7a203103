//! The api's integration tests: one binary (one link step), a real PostgreSQL from
//! `testkit::Postgres`, and the real server from `api::run` on 127.0.0.1:0.

mod support;

mod concurrency;
mod database;
mod errors;
mod frozen_database;
mod items;
mod load;
mod metrics;
mod openapi;
mod outage_under_load;
mod process;
mod tracing;
