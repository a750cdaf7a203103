//! Upstreams for the tests: a stub (hyper on 127.0.0.1:0) that can echo, be slow, fail, hang,
//! stream in both directions and serve an OpenAPI document; raw TCP upstreams that close early
//! or speak garbage; a listener whose accept queue is full; a closed port.

use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Notify, mpsc, watch},
    task::JoinHandle,
};

use crate::support::{ChannelBody, TestBody, full};

/// The OpenAPI document the stub serves.
pub const OPENAPI: &str = r#"{"openapi":"3.0.3","info":{"title":"stub","version":"1"},
  "paths":{"/items":{"get":{}},"/items/{item_id}":{"get":{}},"/users/{id}/orders":{"get":{}}}}"#;

/// Shared state of the stub: what the tests observe and the gates they open.
#[derive(Default)]
pub struct StubState {
    /// Bytes of the current `/upload` body received so far.
    pub uploaded: watch::Sender<u64>,
    /// Opens the second half of `/download`.
    pub release_download: Notify,
    /// Requests the stub has received.
    pub requests: std::sync::atomic::AtomicU64,
    /// The highest connection number seen (only [`Stub::start_both`] numbers connections).
    pub connections: std::sync::atomic::AtomicU64,
}

/// A stub upstream on 127.0.0.1:0.
pub struct Stub {
    pub addr: SocketAddr,
    pub state: Arc<StubState>,
    task: JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(StubState::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| stub_handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Stub { addr, state, task }
    }

    /// The stub behind redside's own accept loop: HTTP/1.1 and HTTP/2 with prior knowledge on
    /// one port, connections numbered in [`StubState::connections`].
    pub async fn start_both() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(StubState::default());
        let shared = state.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            if let Some(peer) = req.extensions().get::<serve::Peer>() {
                (shared.connections)
                    .fetch_max(peer.connection_id, std::sync::atomic::Ordering::SeqCst);
            }
            stub_handle(shared.clone(), req)
        });
        let task = tokio::spawn(serve::serve(
            listener,
            service,
            serve::Limits::default(),
            std::future::pending(),
            Duration::from_secs(1),
        ));
        Stub { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests reached the stub.
    pub fn hits(&self) -> u64 {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn stub_handle(
    state: Arc<StubState>,
    req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    (state.requests).fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let response = match segments.as_slice() {
        ["slow", ms] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
            Response::new(full("slow"))
        }
        ["status", code] => {
            let mut r = Response::new(full(format!("status {code}")));
            *r.status_mut() = code
                .parse::<u16>()
                .ok()
                .and_then(|c| hyper::StatusCode::from_u16(c).ok())
                .unwrap();
            r
        }
        ["hang"] => std::future::pending().await,
        ["trailers"] => {
            let mut trailers = hyper::HeaderMap::new();
            trailers.insert("x-checksum", hyper::header::HeaderValue::from_static("abc"));
            let frames = [
                Ok(hyper::body::Frame::data(Bytes::from_static(
                    b"body then trailers",
                ))),
                Ok(hyper::body::Frame::trailers(trailers)),
            ];
            // An HTTP/1.1 server sends only the trailers it announced, to a client that takes them.
            let mut response = Response::new(
                http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync(),
            );
            let announced = hyper::header::HeaderValue::from_static("x-checksum");
            response.headers_mut().insert("trailer", announced);
            response
        }
        ["openapi.json"] => Response::new(full(OPENAPI)),
        ["upload"] => {
            let mut body = req.into_body();
            let mut total = 0u64;
            state.uploaded.send_replace(0);
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    total += data.len() as u64;
                    state.uploaded.send_replace(total);
                }
            }
            Response::new(full(total.to_string()))
        }
        ["download"] => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first-chunk;")).await;
                state.release_download.notified().await;
                let _ = tx.send(Bytes::from_static(b"second-chunk")).await;
            });
            Response::new(ChannelBody(rx).boxed_unsync())
        }
        ["big", n] => {
            let n: usize = n.parse().unwrap_or(0);
            Response::new(full(vec![b'x'; n]))
        }
        ["hop"] => Response::builder()
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("keep-alive", "timeout=5")
            .header("x-visible", "1")
            .body(full("hop"))
            .unwrap(),
        _ => return Ok(echo(req).await),
    };
    Ok(response)
}

/// Answers with what it received, as JSON.
async fn echo(req: Request<Incoming>) -> Response<TestBody> {
    let (parts, body) = req.into_parts();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.to_string())
            .or_default()
            .push(value.to_str().unwrap_or("?").to_owned());
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(full(json.to_string()))
        .unwrap()
}

/// How a raw TCP upstream misbehaves.
#[derive(Clone, Copy)]
pub enum Misbehaviour {
    /// Reads the request, then closes the connection without answering.
    Close,
    /// Reads the request, then answers with something that is not HTTP.
    Garbage,
}

/// A raw TCP upstream that misbehaves on every connection.
pub async fn raw_upstream(mode: Misbehaviour) -> (SocketAddr, JoinHandle<()>) {
    scripted_upstream(move |mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        if let Misbehaviour::Garbage = mode {
            let _ = stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
        }
    })
    .await
}

/// A raw TCP upstream on 127.0.0.1:0 that runs `script` on each connection it accepts (the
/// connection closes when the script returns).
pub async fn scripted_upstream<F, Fut>(script: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(script(stream));
        }
    });
    (addr, task)
}

/// A listener whose accept queue is full, so new connects hang (SYNs are dropped).
pub async fn blackhole_upstream() -> (SocketAddr, Vec<TcpStream>, tokio::net::TcpListener) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue; connects beyond it hang (or fail fast on some kernels, which the test
    // would show).
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    (addr, fillers, listener)
}

/// A port nothing listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
