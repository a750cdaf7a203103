//! The `grpc_service`/`grpc_method` label set ([`MethodSet`]) and how `grpc_reflection` fills it
//! ([`MethodLoader`]).
//!
//! Open (the default): methods come from the paths of calls as they arrive
//! (`/package.Service/Method`), at most `metrics.max_handlers` of them; past it, and for a path
//! of another shape, `none`. Their `grpc_type` is learned: `unary` until one of a method's calls
//! carries a second message in a direction (then `client_stream`, `server_stream` or
//! `bidi_stream`).
//!
//! Closed (with `grpc_reflection`): the methods the upstream's server reflection lists, as
//! OpenAPI templates are for routes; any other path is `none`, so a client cannot mint labels,
//! and each method's type is its descriptor's from its first call. [`MethodLoader`] is the one
//! policy start-up, its background retry and reload share.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU8, Ordering::Relaxed},
    },
    time::Duration,
};

use tracing::warn;

use super::reflection::{ReflectedMethod, ReflectionError, list_methods};
use crate::config::{GrpcReflectionConfig, Upstream};

const TYPES: [&str; 4] = ["unary", "client_stream", "server_stream", "bidi_stream"];
const CLIENT_STREAMS: u8 = 1;
const SERVER_STREAMS: u8 = 2;

/// One method's labels.
#[derive(Debug)]
pub(super) struct Method {
    pub(super) service: Arc<str>,
    pub(super) method: Arc<str>,
    /// [`CLIENT_STREAMS`] and [`SERVER_STREAMS`], as seen so far (or as described).
    streams: AtomicU8,
    /// The streams come from the method's descriptor: nothing to learn.
    described: bool,
}

impl Method {
    fn new(service: &str, method: &str, streams: u8, described: bool) -> Arc<Self> {
        Arc::new(Self {
            service: service.into(),
            method: method.into(),
            streams: AtomicU8::new(streams),
            described,
        })
    }

    fn described(known: &ReflectedMethod) -> Arc<Self> {
        let streams = (u8::from(known.client_streaming) * CLIENT_STREAMS)
            | (u8::from(known.server_streaming) * SERVER_STREAMS);
        Self::new(&known.service, &known.method, streams, true)
    }

    /// The `grpc_type` its calls start with now.
    pub(super) fn grpc_type(&self) -> &'static str {
        TYPES[usize::from(self.streams.load(Relaxed) & 3)]
    }

    /// A call carried a second message from the client (`client`) or to it: the method streams
    /// that way, and its next calls are labelled so (unless its descriptor said otherwise).
    pub(super) fn learn_streaming(&self, client: bool) {
        if !self.described {
            let bit = if client {
                CLIENT_STREAMS
            } else {
                SERVER_STREAMS
            };
            self.streams.fetch_or(bit, Relaxed);
        }
    }
}

/// The label set; clones share it.
#[derive(Clone, Debug)]
pub(crate) struct MethodSet(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    table: Mutex<Table>,
    max_methods: usize,
    overflow: Arc<Method>,
}

/// Path → method.
#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<Box<str>, Arc<Method>>,
    closed: bool,
}

impl MethodSet {
    /// An open set of at most `max_methods` methods.
    pub(super) fn new(max_methods: usize) -> Self {
        Self(Arc::new(Inner {
            table: Mutex::new(Table::default()),
            max_methods,
            overflow: Method::new("none", "none", 0, false),
        }))
    }

    /// The method a call to `path` counts under.
    pub(super) fn resolve(&self, path: &str) -> Arc<Method> {
        let mut table = self.lock();
        if let Some(method) = table.by_path.get(path) {
            return method.clone();
        }
        let Some((service, method)) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .filter(|(s, m)| !s.is_empty() && !m.is_empty() && !m.contains('/'))
        else {
            return self.0.overflow.clone();
        };
        if table.closed || table.by_path.len() >= self.0.max_methods {
            return self.0.overflow.clone();
        }
        let entry = Method::new(service, method, 0, false);
        table.by_path.insert(path.into(), entry.clone());
        entry
    }

    /// Closes the set on `known` (sorted; past `max_methods`, the rest report `none`). `None`:
    /// open again (a set that was open already keeps what it learned).
    pub(super) fn set_known(&self, known: Option<&[ReflectedMethod]>) {
        let mut table = self.lock();
        let Some(known) = known else {
            if table.closed {
                *table = Table::default();
            }
            return;
        };
        let max = self.0.max_methods;
        if known.len() > max {
            warn!(
                max_handlers = max,
                over = known.len() - max,
                "more gRPC methods than metrics.max_handlers; the extra ones report grpc_method=\"none\""
            );
        }
        let by_path = (known.iter().take(max))
            .map(|m| (m.path().into_boxed_str(), Method::described(m)))
            .collect();
        *table = Table {
            by_path,
            closed: true,
        };
    }

    /// How many methods a closed set holds; `None` while open.
    pub(super) fn known(&self) -> Option<usize> {
        let table = self.lock();
        table.closed.then_some(table.by_path.len())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        (self.0.table.lock()).unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a load leaves the set as.
#[derive(Debug)]
pub(crate) enum Refresh {
    /// No `grpc_reflection`: open.
    Off,
    /// Closed on these methods.
    Listed(Vec<ReflectedMethod>),
    /// Reflection is optional and failed: the set stays as it is.
    Kept,
}

/// Loads the set per `grpc_reflection`.
#[derive(Clone, Debug)]
pub(crate) struct MethodLoader {
    upstream: Upstream,
    connect_timeout: Duration,
    methods: MethodSet,
}

impl MethodLoader {
    pub(crate) fn new(upstream: Upstream, connect_timeout: Duration, methods: MethodSet) -> Self {
        Self {
            upstream,
            connect_timeout,
            methods,
        }
    }

    /// Asks the upstream per `config` (`config.attempts` times when `retry`, else once; delays
    /// double from 200 ms). An optional list that can't be had is logged here: [`Refresh::Kept`].
    ///
    /// # Errors
    /// A required list that can't be had.
    pub(crate) async fn fetch(
        &self,
        config: Option<&GrpcReflectionConfig>,
        retry: bool,
    ) -> Result<Refresh, ReflectionError> {
        let Some(config) = config else {
            return Ok(Refresh::Off);
        };
        let attempts = if retry { config.attempts.max(1) } else { 1 };
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        let error = loop {
            match list_methods(&self.upstream, self.connect_timeout).await {
                Ok(methods) => return Ok(Refresh::Listed(methods)),
                Err(error) if error.is_transient() && attempt < attempts => {
                    tracing::debug!(%error, attempt, retry_in = ?delay, "gRPC server reflection not available yet");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => break error,
            }
        };
        if config.required {
            return Err(error);
        }
        warn!(
            %error,
            upstream = %self.upstream,
            attempts = attempt,
            "gRPC server reflection unavailable; the gRPC method labels stay as they were (from request paths, capped by metrics.max_handlers, unless a list was loaded before)"
        );
        Ok(Refresh::Kept)
    }

    /// Swaps the set; returns how many methods it now holds (`None`: open).
    pub(crate) fn apply(&self, refresh: Refresh) -> Option<usize> {
        match refresh {
            Refresh::Off => self.methods.set_known(None),
            Refresh::Listed(methods) => {
                tracing::info!(
                    methods = methods.len(),
                    upstream = %self.upstream,
                    "the gRPC method labels are the upstream's server reflection's list"
                );
                self.methods.set_known(Some(&methods));
            }
            Refresh::Kept => {}
        }
        self.methods.known()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(method: &str, client: bool, server: bool) -> ReflectedMethod {
        ReflectedMethod {
            service: "a.S".into(),
            method: method.into(),
            client_streaming: client,
            server_streaming: server,
        }
    }

    fn labels(set: &MethodSet, path: &str) -> (&'static str, String) {
        let m = set.resolve(path);
        (m.grpc_type(), format!("{}/{}", m.service, m.method))
    }

    #[test]
    fn a_closed_set_labels_its_methods_with_their_types_and_the_rest_none() {
        let set = MethodSet::new(2);
        let none = ("unary", "none/none".to_owned());
        set.set_known(Some(&[
            known("Bidi", true, true),
            known("Get", false, false),
            known("Watch", false, true),
        ]));
        assert_eq!(set.known(), Some(2));
        assert_eq!(
            labels(&set, "/a.S/Bidi"),
            ("bidi_stream", "a.S/Bidi".into())
        );
        assert_eq!(labels(&set, "/a.S/Get"), ("unary", "a.S/Get".into()));
        // Past the cap, and not listed: `none`, never a label from the path.
        assert_eq!(labels(&set, "/a.S/Watch"), none);
        assert_eq!(labels(&set, "/evil.S/Random123"), none);
        // A described unary method stays unary whatever a client sends.
        set.resolve("/a.S/Get").learn_streaming(true);
        assert_eq!(labels(&set, "/a.S/Get").0, "unary");

        set.set_known(None);
        assert_eq!(set.known(), None);
        assert_eq!(labels(&set, "/evil.S/Random123").1, "evil.S/Random123");
        set.resolve("/evil.S/Random123").learn_streaming(false);
        assert_eq!(labels(&set, "/evil.S/Random123").0, "server_stream");
    }
}
