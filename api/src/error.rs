//! Every way a request can fail, and how each becomes an HTTP response with a JSON body
//! `{"error": "<message>", "field": "<name>" | null}`.
//!
//! This is where request errors are handled, so this is where they are logged, once: client
//! errors at `debug` (they are the client's business), an unavailable database at `warn`,
//! anything else at `error`. Internal details never reach the client.

use std::fmt;

use http::{HeaderValue, Method, StatusCode, header};
use serde::Serialize;
use tracing::{debug, error, warn};

use crate::{db::DbError, item::BodyError, json::Reply, json::json};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown path, or no item with that id.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// The method that was used.
        method: Method,
        /// The `Allow` header value.
        allow: &'static str,
    },
    /// Malformed JSON, an unreadable body, or a bad query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed JSON that breaks the rules for `field`.
    #[error("{message}")]
    Invalid {
        /// The offending field; `None` when the body as a whole is wrong (not an object).
        field: Option<String>,
        /// What is wrong with it.
        message: String,
    },
    /// The body is over the limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The database is down, unreachable, or the pool had no connection in time.
    #[error("database unavailable")]
    Unavailable(#[source] DbError),
    /// A failure that is our bug or the database's, not a transient outage.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs the error once and turns it into the response the client gets.
    pub fn into_response(self) -> Reply {
        let status = self.status();
        match &self {
            Error::Unavailable(cause) => {
                warn!(status = status.as_u16(), error = %Chain(cause), "database unavailable")
            }
            Error::Internal(cause) => {
                error!(status = status.as_u16(), error = %Chain(cause.as_ref()), "internal error")
            }
            _ => debug!(status = status.as_u16(), error = %self, "request rejected"),
        }
        let field = match &self {
            Error::Invalid { field, .. } => field.as_deref(),
            _ => None,
        };
        let mut response = json(
            status,
            &Problem {
                error: &self.to_string(),
                field,
            },
        );
        if let Error::MethodNotAllowed { allow, .. } = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The outage is usually short: tell well-behaved clients when to try again.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<BodyError> for Error {
    fn from(error: BodyError) -> Error {
        match error {
            BodyError::Malformed(message) => Error::BadRequest(message),
            BodyError::Invalid { field, message } => Error::Invalid { field, message },
        }
    }
}

impl From<DbError> for Error {
    fn from(error: DbError) -> Error {
        if error.is_unavailable() {
            Error::Unavailable(error)
        } else {
            Error::Internal(Box::new(error))
        }
    }
}

/// The JSON error body.
#[derive(Serialize)]
struct Problem<'a> {
    error: &'a str,
    field: Option<&'a str>,
}

/// Displays an error with its whole `source()` chain (`a: b: c`), because tokio-postgres keeps
/// the useful part (the server's message, the I/O error) in the sources.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
