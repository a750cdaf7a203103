//! The items API and the sidecar in one test process, each on 127.0.0.1:0, the API on a real
//! PostgreSQL (`stack`): the sidecar labels the API's requests with its OpenAPI templates
//! (`items_api`), one trace runs from the caller through both to the statement (`tracing_api`),
//! and the example plugins built by `plugins/build` report exact business and SLO series
//! (`plugins`). These lived in the sidecar's tests; here the sidecar needs no `api` dependency.
#![allow(clippy::unwrap_used)]

mod items_api;
mod plugins;
mod stack;
mod tracing_api;
