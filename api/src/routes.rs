//! [`App`], the api as a tower `Service`: method and path dispatch, 404 for unknown paths,
//! 405 with `Allow` for known paths with another method, and a span per request.
//!
//! [`ROUTES`] is the route table; a test checks that `openapi.json` describes exactly these
//! paths and methods.

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, task::Poll, time::SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tracing::{Instrument, debug, field, info_span};

use crate::{
    db::DbError,
    error::Error,
    items,
    json::{Reply, json, with_type},
    openapi,
    request_body::BoxError,
    state::State,
    trace::{RequestSpan, Tracing},
};

/// One path template and the methods it answers.
#[derive(Debug)]
pub struct Route {
    /// The path template, as in `openapi.json` (`/items/{id}`).
    pub template: &'static str,
    /// The methods it answers, as in its `Allow` header.
    pub allow: &'static str,
}

/// Every route the api answers.
pub const ROUTES: [Route; 6] = [
    Route {
        template: "/items",
        allow: "GET, POST",
    },
    Route {
        template: "/items/{id}",
        allow: "GET, PUT, DELETE",
    },
    Route {
        template: "/healthz",
        allow: "GET",
    },
    Route {
        template: "/readyz",
        allow: "GET",
    },
    Route {
        template: "/metrics",
        allow: "GET",
    },
    Route {
        template: "/openapi.json",
        allow: "GET",
    },
];

/// The api service. Cloning is cheap (one `Arc`).
#[derive(Clone, Debug)]
pub struct App {
    state: Arc<State>,
}

impl App {
    /// The service over `state`.
    pub fn new(state: State) -> App {
        App {
            state: Arc::new(state),
        }
    }

    /// Answers one request; every error becomes its response here.
    pub async fn handle<B>(&self, req: Request<B>) -> Reply
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let state = &*self.state;
        let Some((route, id)) = route(path) else {
            return Error::NotFound(format!("no route for `{path}`")).into_response();
        };
        let result = match (route.template, &parts.method) {
            ("/items", &Method::GET) => items::list(state, parts.uri.query()).await,
            ("/items", &Method::POST) => items::create(state, &parts.headers, body).await,
            ("/items/{id}", &Method::GET) => items::get(state, id).await,
            ("/items/{id}", &Method::PUT) => items::replace(state, id, &parts.headers, body).await,
            ("/items/{id}", &Method::DELETE) => items::delete(state, id).await,
            ("/healthz", &Method::GET) => {
                Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
            }
            ("/readyz", &Method::GET) => ready(state).await,
            ("/metrics", &Method::GET) => exposition(state, &parts.headers),
            ("/openapi.json", &Method::GET) => Ok(with_type(
                StatusCode::OK,
                "application/json",
                Bytes::from_static(openapi::DOCUMENT.as_bytes()),
            )),
            (_, method) => Err(Error::MethodNotAllowed {
                method: method.clone(),
                allow: route.allow,
            }),
        };
        result.unwrap_or_else(Error::into_response)
    }
}

/// The route for `path` and, for `/items/{id}`, the raw id segment.
fn route(path: &str) -> Option<(&'static Route, &str)> {
    if let Some(id) = path.strip_prefix("/items/") {
        return (!id.is_empty() && !id.contains('/')).then_some((&ROUTES[1], id));
    }
    ROUTES.iter().find(|r| r.template == path).map(|r| (r, ""))
}

/// `/readyz`: 200 when `SELECT 1` answers within the ready timeout, else 503.
async fn ready(state: &State) -> Result<Reply, Error> {
    match tokio::time::timeout(state.ready_timeout, state.db.ping()).await {
        Ok(Ok(())) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready"}),
        )),
        Ok(Err(e)) => Err(Error::Unavailable(e)),
        Err(_elapsed) => Err(Error::Unavailable(DbError::TimedOut(state.ready_timeout))),
    }
}

/// `/metrics`: OpenMetrics text when the scraper asks for it (Prometheus does), the classic
/// text format otherwise.
fn exposition(state: &State, headers: &http::HeaderMap) -> Result<Reply, Error> {
    let format = exposition::Format::negotiate(headers);
    let text =
        exposition::encode(&state.registry, format).map_err(|e| Error::Internal(Box::new(e)))?;
    Ok(with_type(
        StatusCode::OK,
        format.content_type(),
        Bytes::from(text),
    ))
}

impl<B> tower::Service<Request<B>> for App
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let app = self.clone();
        let connection = req
            .extensions()
            .get::<serve::Peer>()
            .map(|p| p.connection_id);
        let incoming = self.state.tracing.begin(req.headers());
        // The trace id is a field of the request's span, so every log line inside carries it.
        let span = info_span!("request", method = %req.method(), path = %req.uri().path(), connection, status = field::Empty, trace_id = field::Empty);
        if let Some(trace_id) = incoming.log_id {
            span.record("trace_id", field::display(trace_id));
        }
        Box::pin(
            async move {
                let start = Instant::now();
                let Some(context) = incoming.span else {
                    let response = app.handle(req).await;
                    tracing::Span::current().record("status", response.status().as_u16());
                    debug!(elapsed = ?start.elapsed(), "request done");
                    return Ok(response);
                };
                let wall = SystemTime::now();
                let method = req.method().to_string();
                let route = route(req.uri().path()).map(|(route, _)| route.template);
                let response = Tracing::scope(context, app.handle(req)).await;
                let elapsed = start.elapsed();
                tracing::Span::current().record("status", response.status().as_u16());
                debug!(?elapsed, "request done");
                app.state.tracing.request_span(
                    context,
                    RequestSpan {
                        method,
                        route,
                        status: response.status(),
                        start: wall,
                        elapsed,
                    },
                );
                Ok(response)
            }
            .instrument(span),
        )
    }
}
