//! The upstream's address, parsed from the `--upstream` flag: plain `http://host:port` only,
//! because the sidecar sits next to its service and speaks HTTP/1 to it. Anything else is a
//! [`ConfigError::Upstream`] saying what is wrong.

use http::uri::{Authority, Scheme, Uri};

use super::ConfigError;

/// The upstream's address. Only plain HTTP/1: the sidecar sits next to its service.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    /// `http`.
    pub scheme: Scheme,
    /// `host:port`.
    pub authority: Authority,
}

impl Upstream {
    /// Parses `http://host:port` (port defaults to 80; a trailing `/` is tolerated).
    ///
    /// # Errors
    /// Any other scheme, a missing host, or a path/query.
    pub(crate) fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Upstream {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = value.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(invalid(
                "the scheme must be http:// (the sidecar speaks plain HTTP/1 to its upstream)",
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("missing host"))?;
        if uri.path_and_query().is_some_and(|pq| pq.as_str() != "/") {
            return Err(invalid(
                "a path or query is not supported; give only http://host:port",
            ));
        }
        Ok(Self {
            scheme: Scheme::HTTP,
            authority,
        })
    }

    /// `host` and `port` for a plain TCP connect.
    pub(crate) fn host_port(&self) -> (&str, u16) {
        (
            self.authority.host(),
            self.authority.port_u16().unwrap_or(80),
        )
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}
