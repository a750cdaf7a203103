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
    send_with_headers(method, url, json, &[]).await
}

/// [`send`] with extra request headers (`traceparent`, ...).
///
/// # Errors
/// On connection or protocol errors.
pub async fn send_with_headers(
    method: Method,
    url: &str,
    json: Option<&str>,
    headers: &[(&str, &str)],
) -> anyhow::Result<Response> {
    let mut req = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if json.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Full::new(Bytes::from(json.unwrap_or_default().to_owned())))?;
    read_whole(client().request(req).await?).await
}

async fn read_whole(resp: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<Response> {
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

/// What Prometheus sends when it scrapes: OpenMetrics first, the classic text format after.
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `GET url` with an `Accept` header, as a scraper sends it.
///
/// # Errors
/// On connection or protocol errors.
pub async fn get_accepting(url: &str, accept: &str) -> anyhow::Result<Response> {
    let req = Request::get(url)
        .header(hyper::header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))?;
    read_whole(client().request(req).await?).await
}

/// `GET url` as Prometheus scrapes it (OpenMetrics).
///
/// # Errors
/// On connection or protocol errors.
pub async fn scrape(url: &str) -> anyhow::Result<Response> {
    get_accepting(url, PROMETHEUS_ACCEPT).await
}

/// `GET url` with an owned URL, for `tokio::spawn`.
///
/// # Errors
/// On connection or protocol errors.
pub async fn get_owned(url: String) -> anyhow::Result<Response> {
    get(&url).await
}

/// Sends `POST path` with a body of `body_len` bytes the way Python's `urllib` and `requests`
/// do: the head, then the whole body, before anything is read. Returns the response (head and a
/// `Content-Length` body), or the error the write or the read met (a reset shows as one).
///
/// # Errors
/// If connecting, writing or reading fails, or no whole response comes within 10 s.
pub async fn post_whole_then_read(
    addr: std::net::SocketAddr,
    path: &str,
    body_len: usize,
) -> anyhow::Result<String> {
    use anyhow::Context;
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    );
    // The head goes first, as Python's http.client sends it; the pause lets the server answer
    // before the body arrives, as it would over a slower network.
    stream
        .write_all(head.as_bytes())
        .await
        .context("writing the request head")?;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stream
        .write_all(&vec![b' '; body_len])
        .await
        .context("writing the whole body")?;
    read_response(&mut stream).await
}

/// Reads one response from `stream`: its head and as much body as its `Content-Length` says,
/// or what comes until the server closes.
///
/// # Errors
/// If reading fails (a reset shows as one) or no whole response comes within 10 s.
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> anyhow::Result<String> {
    use anyhow::Context;
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        while !is_whole_response(&answer) {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&chunk[..n]);
        }
        std::io::Result::Ok(())
    })
    .await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    read.with_context(|| format!("no whole response within 10 s, only {text:?}"))?
        .with_context(|| format!("reading the answer after {text:?}"))?;
    Ok(text)
}

/// Whether `bytes` hold a response head and as much body as its `Content-Length` says.
fn is_whole_response(bytes: &[u8]) -> bool {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let length = (head.lines())
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    bytes.len() >= end + 4 + length
}
