//! The route table: request path → route template, the only source of the `handler` label.
//!
//! Templates come from `[[routes]]` and from the upstream's OpenAPI document; they are the
//! closed set of label values. A path that matches none gets `none`. Past
//! `metrics.max_handlers` templates, the extra ones also report `none` and count an overflow, so
//! no configuration can blow up the series count. The table is immutable and swapped whole on
//! reload ([`Routes`]), so a request sees one consistent table.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// The `handler` value of unmatched requests (the teaching stack's value, `docs/metrics.md`).
pub(crate) const NONE: &str = "none";

/// Where a template came from (shown on the admin `/routes` page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RouteSource {
    /// `[[routes]]` in the TOML file.
    Config,
    /// The upstream's OpenAPI document.
    Openapi,
}

/// One template in the table.
#[derive(Clone, Debug)]
pub(crate) struct RouteEntry {
    /// The template, e.g. `/items/{id}`.
    pub template: Arc<str>,
    /// Where it came from.
    pub source: RouteSource,
    /// Whether it is past `max_handlers` (it then reports `none`).
    pub over_cap: bool,
}

/// A template the router cannot take (a conflict with another, a bad parameter).
#[derive(Debug, thiserror::Error)]
#[error("route template {template:?} rejected: {reason}")]
pub(crate) struct RouteError {
    /// The template.
    pub template: String,
    /// The router's reason.
    pub reason: String,
}

/// An immutable route table.
#[derive(Debug)]
pub(crate) struct RouteTable {
    router: matchit::Router<usize>,
    entries: Vec<RouteEntry>,
    none: Arc<str>,
}

/// The result of a lookup, borrowed from the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Lookup<'a> {
    /// The `handler` label: the template, or `none`.
    pub handler: &'a str,
    /// Whether a template matched (and is within the cap).
    pub templated: bool,
    /// A template matched but is past the cap.
    pub overflow: bool,
}

impl RouteTable {
    /// An empty table: every request is `none`.
    pub(crate) fn empty() -> Self {
        Self {
            router: matchit::Router::new(),
            entries: Vec::new(),
            none: Arc::from(NONE),
        }
    }

    /// Builds a table from `(template, source)` pairs in priority order. Duplicates are skipped
    /// silently. Templates from the OpenAPI document that conflict with an earlier one are
    /// skipped with a warning; a configured one that conflicts is an error.
    ///
    /// # Errors
    /// A configured template the router rejects.
    pub(crate) fn build<'a>(
        templates: impl IntoIterator<Item = (&'a str, RouteSource)>,
        max_handlers: usize,
    ) -> Result<Self, RouteError> {
        let mut table = Self::empty();
        for (template, source) in templates {
            if table.entries.iter().any(|e| &*e.template == template) {
                continue;
            }
            match table.router.insert(template, table.entries.len()) {
                Ok(()) => {
                    let over_cap = table.entries.len() >= max_handlers;
                    table.entries.push(RouteEntry {
                        template: Arc::from(template),
                        source,
                        over_cap,
                    });
                }
                Err(error) if source == RouteSource::Openapi => {
                    tracing::warn!(template, %error, "an OpenAPI path the route table cannot take is left out");
                }
                Err(error) => {
                    return Err(RouteError {
                        template: template.into(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        let over = table.entries.iter().filter(|e| e.over_cap).count();
        if over > 0 {
            tracing::warn!(
                max_handlers,
                over,
                "more route templates than metrics.max_handlers; the extra ones report handler=\"none\""
            );
        }
        Ok(table)
    }

    /// The route for `path`. A path that matches only with its trailing `/` added or removed
    /// takes that template, as the teaching stack's instrumentation does.
    pub(crate) fn lookup(&self, path: &str) -> Lookup<'_> {
        let index = self.router.at(path).map(|m| *m.value).ok().or_else(|| {
            let alternative = match path.strip_suffix('/') {
                Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
                Some(_) => return None,
                None => format!("{path}/"),
            };
            self.router.at(&alternative).map(|m| *m.value).ok()
        });
        match index.map(|i| &self.entries[i]) {
            Some(entry) if !entry.over_cap => Lookup {
                handler: &entry.template,
                templated: true,
                overflow: false,
            },
            over_cap => Lookup {
                handler: &self.none,
                templated: false,
                overflow: over_cap.is_some(),
            },
        }
    }

    /// Every template, in priority order.
    pub(crate) fn entries(&self) -> &[RouteEntry] {
        &self.entries
    }
}

/// The current route table, shared by the RED layer, the admin page and the reloader.
/// Lookups are lock-free; a reload swaps the whole table.
#[derive(Clone, Debug)]
pub(crate) struct Routes(Arc<ArcSwap<RouteTable>>);

impl Routes {
    /// Shares `table`.
    pub(crate) fn new(table: RouteTable) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(table)))
    }

    /// The current table.
    pub(crate) fn current(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }

    /// Resolves `path` against the current table and hands the result to `f` by reference: no
    /// count on the shared label is taken (this is on every request's path).
    pub(crate) fn lookup<R>(&self, path: &str, f: impl FnOnce(Lookup<'_>) -> R) -> R {
        f(self.0.load().lookup(path))
    }

    /// Replaces the table; requests already routed keep their label.
    pub(crate) fn replace(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(templates: &[&str], cap: usize) -> RouteTable {
        RouteTable::build(templates.iter().map(|t| (*t, RouteSource::Config)), cap).unwrap()
    }

    #[test]
    fn template_matches_and_static_segments_win() {
        let t = table(&["/items", "/items/{id}", "/items/stats"], 10);
        assert_eq!(t.lookup("/items/42").handler, "/items/{id}");
        assert_eq!(t.lookup("/items/stats").handler, "/items/stats");
        assert_eq!(t.lookup("/items").handler, "/items");
    }

    #[test]
    fn trailing_slash_mismatch_takes_the_template() {
        let t = table(&["/items/", "/users"], 10);
        assert_eq!(t.lookup("/items").handler, "/items/");
        assert_eq!(t.lookup("/users/").handler, "/users");
        assert_eq!(t.lookup("/").handler, NONE);
    }

    #[test]
    fn unmatched_path_is_none() {
        let t = table(&["/items"], 10);
        let r = t.lookup("/nope/123");
        assert_eq!(r.handler, NONE);
        assert!(!r.templated && !r.overflow);
    }

    #[test]
    fn templates_past_the_cap_report_none_and_overflow() {
        let t = table(&["/a", "/b", "/c"], 2);
        assert_eq!(t.lookup("/b").handler, "/b");
        let r = t.lookup("/c");
        assert_eq!(r.handler, NONE);
        assert!(r.overflow);
    }

    #[test]
    fn conflicting_configured_template_is_an_error_but_openapi_one_is_left_out() {
        let err = RouteTable::build(
            [
                ("/x/{a}", RouteSource::Config),
                ("/x/{b}", RouteSource::Config),
            ],
            10,
        );
        assert!(err.is_err());
        let ok = RouteTable::build(
            [
                ("/x/{a}", RouteSource::Config),
                ("/x/{b}", RouteSource::Openapi),
            ],
            10,
        )
        .unwrap();
        assert_eq!(ok.entries().len(), 1);
    }
}
