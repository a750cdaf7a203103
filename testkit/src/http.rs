//! A small HTTP/1 client for tests, on hyper-util's pooled client; bodies are read whole.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// A response read whole.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Builds a client with keep-alive; cheap enough to build per test.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `method url` with an optional JSON body and reads the whole response.
///
/// # Errors
/// On connection or protocol errors.
pub async fn send(method: Method, url: &str, json: Option<&str>) -> anyhow::Result<Response> {
    let mut req = Request::builder().method(method).uri(url);
    if json.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(json.unwrap_or_default().to_owned())))?;
    let resp = client().request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// `GET url`.
///
/// # Errors
/// On connection or protocol errors.
pub async fn get(url: &str) -> anyhow::Result<Response> {
    send(Method::GET, url, None).await
}

/// `POST url` with a JSON body.
///
/// # Errors
/// On connection or protocol errors.
pub async fn post(url: &str, json: &str) -> anyhow::Result<Response> {
    send(Method::POST, url, Some(json)).await
}

/// `GET url` with an owned URL, for `tokio::spawn`.
///
/// # Errors
/// On connection or protocol errors.
pub async fn get_owned(url: String) -> anyhow::Result<Response> {
    get(&url).await
}
