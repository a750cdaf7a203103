//! What every request handler needs, shared by every connection. Its own module so that the
//! dispatcher ([`crate::routes`]) and the handlers ([`crate::items`]) both depend on it rather
//! than on each other.

use std::{sync::Arc, time::Duration};

use prometheus_client::registry::Registry;

use crate::{db::Db, metrics::ItemMetrics, trace::Tracing};

/// What a request needs; shared by every connection.
#[derive(Debug)]
pub struct State {
    /// The items table.
    pub db: Db,
    /// Item counters.
    pub items: ItemMetrics,
    /// Everything `/metrics` exposes.
    pub registry: Arc<Registry>,
    /// How long `/readyz` waits for the database.
    pub ready_timeout: Duration,
    /// Sampling and span export.
    pub tracing: Tracing,
}
