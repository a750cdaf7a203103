//! Real HTTP servers on 127.0.0.1:0 for the callout, service and trailer tests: an auth service
//! a plugin calls out to (its answer depends on `x-user`), and an upstream that echoes what a
//! plugin added to the request and can answer with trailers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// A body of `data` then `trailers` (sent chunked).
pub fn with_trailers(data: &str, trailers: &[(&'static str, &'static str)]) -> Body {
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.insert(*k, v.parse().unwrap());
    }
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from(data.to_owned()))),
        Ok(Frame::trailers(map)),
    ];
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

fn full(text: String) -> Body {
    Full::new(Bytes::from(text)).boxed()
}

/// The auth service: `x-user: alice` → 200 with `x-auth-user`, a body and a trailer;
/// `mallory` → 403; `boom` → 500; `slow` → 200 after 3 s.
async fn auth(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let user = request
        .headers()
        .get("x-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = match user.as_str() {
        "mallory" => Response::builder().status(403).body(full("no".into())),
        "boom" => Response::builder().status(500).body(full("broken".into())),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::builder().status(200).body(full("late".into()))
        }
        _ => Response::builder()
            .status(200)
            .header("x-auth-user", &user)
            // hyper sends only the trailers a response declares.
            .header("trailer", "x-auth-trailer")
            .body(with_trailers(
                &format!("ok {user}"),
                &[("x-auth-trailer", "t1")],
            )),
    };
    Ok(response.unwrap())
}

/// The upstream: its body lists the `x-auth-*` headers it got; it reads the request body;
/// `/missing` is a 404.
async fn echo(request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let mut seen: Vec<String> = request
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-auth-"))
        .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
        .collect();
    seen.sort();
    let path = request.uri().path().to_owned();
    let _ = request.into_body().collect().await;
    let body = format!("echo {path} {}", seen.join(" "));
    let mut response = Response::new(full(body));
    if path == "/missing" {
        *response.status_mut() = http::StatusCode::NOT_FOUND;
    }
    Ok(response)
}

/// A server; its accept task ends when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handler))
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// The auth service.
pub async fn auth_service() -> Server {
    serve(auth).await
}

/// The echoing upstream.
pub async fn echo_upstream() -> Server {
    serve(echo).await
}

/// An upstream written by hand: answers every request with a chunked body and the trailers
/// `x-checksum` and `grpc-status`, whether asked for them or not (hyper sends trailers only to
/// a client that sent `TE: trailers`, which a proxy does not forward), then closes.
pub async fn raw_trailers_upstream() -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = "HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n";
                let _ = stream.write_all(head.as_bytes()).await;
                // The end comes later: a body the sidecar reads whole before answering is sent
                // with a content-length, and its trailers are lost (a proxy bug, reported).
                tokio::time::sleep(Duration::from_millis(50)).await;
                let end = "0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n";
                let _ = stream.write_all(end.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { addr, task }
}

/// An address nothing listens on (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// `GET url` with headers: (status, headers, body).
pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, String) {
    let mut request = Request::get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = testkit::http::client()
        .request(request.body(Full::default()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}
