//! The database: the connection pool and one typed method per statement.
//!
//! Every statement is timed into `db_query_duration_seconds{operation}`; the wait for a pooled
//! connection is timed separately (`db_connection_pool_wait_seconds`). The pool's wait, connect
//! and recycle timeouts are all bounded, so a database that is down or unreachable gives fast
//! errors ([`DbError::is_unavailable`] → 503) rather than hung requests, and dead connections
//! are replaced by fresh ones when it comes back.
//!
//! Every statement is bounded too, by the api's own deadline (`--statement-timeout`): a server
//! that is frozen (stopped, swapped out, partitioned) cannot run its `statement_timeout`, so
//! only the client can bound the wait. A statement past its deadline is a 503; its connection
//! is discarded and the statement cancelled on the server ([`lease`]).

mod lease;

use std::{
    future::Future,
    str::FromStr,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio::time::Instant;
use tokio_postgres::{NoTls, Row, error::SqlState};
use tracing::instrument;

use traces::SpanSink;

use self::lease::Lease;

use crate::{
    config::Config,
    item::{Item, NewItem},
    metrics::{DbMetrics, Operation},
    trace,
};

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection: the pool timed out, or opening a connection failed.
    #[error("no database connection")]
    Pool(#[source] PoolError),
    /// A statement failed.
    #[error("{operation} statement failed")]
    Query {
        /// Which statement.
        operation: Operation,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database did not answer in time.
    #[error("no answer from the database within {0:?}")]
    TimedOut(Duration),
}

impl DbError {
    /// True when the database is down, unreachable, overloaded or restarting: a transient
    /// outage (503), as opposed to a failing statement (500).
    pub fn is_unavailable(&self) -> bool {
        match self {
            // Wrong credentials (class 28) are a misconfiguration, not an outage.
            DbError::Pool(PoolError::Backend(e)) => {
                e.code().is_none_or(|c| !c.code().starts_with("28"))
            }
            DbError::Pool(_) | DbError::TimedOut(_) => true,
            DbError::Query { source, .. } => {
                let Some(code) = source.code() else {
                    // No SQLSTATE: the connection broke (I/O error, closed by the server).
                    return true;
                };
                // Class 08 connection exception, 53 insufficient resources, 57 operator
                // intervention (admin shutdown, statement timeout), 40001/40P01 retryable.
                let class = code.code().get(..2).unwrap_or_default();
                matches!(class, "08" | "53" | "57")
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            }
        }
    }
}

/// Builds the pool (no connection is opened until the first use).
pub fn pool(config: &Config) -> anyhow::Result<Pool> {
    let mut pg = tokio_postgres::Config::from_str(&config.database_url)
        .context("parsing the database URL")?;
    // libpq would fall back to a default socket directory; tokio-postgres has no default, and
    // without this check the mistake would only show as connection errors retried at start-up.
    if pg.get_hosts().is_empty() && pg.get_hostaddrs().is_empty() {
        anyhow::bail!(
            "the database URL names no host: add `host=<socket directory or name>` \
             (or use postgres://user@host/dbname)"
        );
    }
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name("redside-api");
    }
    // The server's own limit is a backstop for a statement whose cancel request never arrived
    // (the api died, or the cancel connection failed). Twice the api's deadline: the cancel
    // sent at the deadline is what normally ends a statement, and the server still stops it
    // soon when that cancel is lost.
    let statement_timeout = format!(
        "-c statement_timeout={}",
        config.statement_timeout.saturating_mul(2).as_millis()
    );
    let options = match pg.get_options() {
        Some(existing) => format!("{existing} {statement_timeout}"),
        None => statement_timeout,
    };
    pg.options(options);

    // `Fast` recycling checks only that the connection is still open: a verification query per
    // checkout would double the round trips, and a connection that died since is detected by
    // its first statement (a 503 for that one request).
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(usize::from(config.pool_size))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.pool_wait_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.recycle_timeout))
        .build()
        .context("building the connection pool")
}

/// Where `database_url` points (`host=/tmp port=5432 dbname=items user=postgres`), without
/// the password, for error messages.
pub fn target(database_url: &str) -> String {
    let Ok(pg) = tokio_postgres::Config::from_str(database_url) else {
        return "an unparsable URL".into();
    };
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = pg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} dbname={} user={}",
        if hosts.is_empty() {
            "(default)".into()
        } else {
            hosts.join(",")
        },
        if ports.is_empty() {
            "5432".into()
        } else {
            ports.join(",")
        },
        pg.get_dbname().unwrap_or("(default)"),
        pg.get_user().unwrap_or("(default)"),
    )
}

/// The items table, through the pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    metrics: DbMetrics,
    /// The api's deadline for one statement.
    statement_timeout: Duration,
    /// How long sending a cancel request may take.
    cancel_timeout: Duration,
    /// Where statement spans go.
    spans: SpanSink,
}

const INSERT: &str = "INSERT INTO items (nom, prix) VALUES ($1, $2) RETURNING id, nom, prix";
const SELECT: &str = "SELECT id, nom, prix FROM items WHERE id = $1";
const LIST: &str = "SELECT id, nom, prix FROM items ORDER BY id LIMIT $1 OFFSET $2";
const UPDATE: &str = "UPDATE items SET nom = $2, prix = $3 WHERE id = $1 RETURNING id, nom, prix";
const DELETE: &str = "DELETE FROM items WHERE id = $1";

impl Db {
    /// Wraps `pool`; statements are timed into `metrics` and bounded by
    /// `config.statement_timeout`.
    pub fn new(pool: Pool, metrics: DbMetrics, config: &Config) -> Db {
        Db {
            pool,
            metrics,
            statement_timeout: config.statement_timeout,
            cancel_timeout: config.connect_timeout,
            spans: SpanSink::disabled(),
        }
    }

    /// Records a span per statement of a sampled request into `spans`.
    pub fn with_spans(self, spans: SpanSink) -> Db {
        Db { spans, ..self }
    }

    /// Inserts an item and returns it with its new id.
    #[instrument(level = "debug", name = "db.insert", skip_all)]
    pub async fn insert(&self, item: &NewItem) -> Result<Item, DbError> {
        let client = self.client().await?;
        self.timed(Operation::Insert, &client, async {
            let row = client
                .query_one(
                    &client.prepare_cached(INSERT).await?,
                    &[&item.nom, &item.prix],
                )
                .await?;
            item_from(&row)
        })
        .await
    }

    /// The item with `id`, if any.
    #[instrument(level = "debug", name = "db.select", skip(self))]
    pub async fn select(&self, id: i64) -> Result<Option<Item>, DbError> {
        let client = self.client().await?;
        self.timed(Operation::Select, &client, async {
            let row = client
                .query_opt(&client.prepare_cached(SELECT).await?, &[&id])
                .await?;
            row.as_ref().map(item_from).transpose()
        })
        .await
    }

    /// A page of items in id order.
    #[instrument(level = "debug", name = "db.list", skip(self))]
    pub async fn list(&self, limit: i64, offset: i64) -> Result<Vec<Item>, DbError> {
        let client = self.client().await?;
        self.timed(Operation::List, &client, async {
            let rows = client
                .query(&client.prepare_cached(LIST).await?, &[&limit, &offset])
                .await?;
            rows.iter().map(item_from).collect()
        })
        .await
    }

    /// Replaces the item with `id`; `None` if there is none.
    #[instrument(level = "debug", name = "db.update", skip(self, item))]
    pub async fn update(&self, id: i64, item: &NewItem) -> Result<Option<Item>, DbError> {
        let client = self.client().await?;
        self.timed(Operation::Update, &client, async {
            let row = client
                .query_opt(
                    &client.prepare_cached(UPDATE).await?,
                    &[&id, &item.nom, &item.prix],
                )
                .await?;
            row.as_ref().map(item_from).transpose()
        })
        .await
    }

    /// Deletes the item with `id`; false if there was none.
    #[instrument(level = "debug", name = "db.delete", skip(self))]
    pub async fn delete(&self, id: i64) -> Result<bool, DbError> {
        let client = self.client().await?;
        self.timed(Operation::Delete, &client, async {
            client
                .execute(&client.prepare_cached(DELETE).await?, &[&id])
                .await
        })
        .await
        .map(|deleted| deleted > 0)
    }

    /// `SELECT 1`: the database answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.client().await?;
        self.timed(Operation::Ping, &client, client.simple_query("SELECT 1"))
            .await?;
        Ok(())
    }

    /// Runs a schema script (several statements, no parameters).
    pub async fn apply_schema(&self, script: &str) -> Result<(), DbError> {
        let client = self.client().await?;
        self.timed(Operation::Schema, &client, client.batch_execute(script))
            .await
    }

    /// Closes the pool: idle connections are dropped now, busy ones when returned.
    pub fn close(&self) {
        self.pool.close();
    }

    /// A pooled connection, the wait timed and timeouts counted.
    async fn client(&self) -> Result<Lease, DbError> {
        let start = Instant::now();
        let result = self.pool.get().await;
        self.metrics.observe_pool_wait(start.elapsed());
        if let Err(PoolError::Timeout(_)) = &result {
            self.metrics.pool_timed_out();
        }
        let object = result.map_err(DbError::Pool)?;
        Ok(Lease::new(object, self.cancel_timeout))
    }

    /// Runs one statement on `client` within the statement deadline, timing its round trip.
    /// Past the deadline (or when this future is dropped first), `client` stays marked busy,
    /// so dropping it discards the connection and cancels the statement.
    async fn timed<T>(
        &self,
        operation: Operation,
        client: &Lease,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        let traced = trace::current().map(|parent| (parent, SystemTime::now()));
        let start = Instant::now();
        client.started();
        let result = tokio::time::timeout(self.statement_timeout, statement).await;
        let elapsed = start.elapsed();
        self.metrics.observe_query(
            operation,
            elapsed,
            traced.map(|(parent, _)| parent.trace_id),
        );
        if let Some((parent, wall)) = traced {
            let failed = !matches!(result, Ok(Ok(_)));
            (self.spans).record(trace::statement_span(
                parent, operation, wall, elapsed, failed,
            ));
        }
        let result = result.map_err(|_| DbError::TimedOut(self.statement_timeout))?;
        client.finished();
        result.map_err(|source| DbError::Query { operation, source })
    }
}

/// Reads an item from `id, nom, prix`. The types come from `schema.sql`; `try_get` still
/// turns a table of another shape into an error rather than a panic.
fn item_from(row: &Row) -> Result<Item, tokio_postgres::Error> {
    Ok(Item {
        id: row.try_get(0)?,
        nom: row.try_get(1)?,
        prix: row.try_get(2)?,
    })
}
