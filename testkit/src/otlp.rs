//! A real OTLP/HTTP trace receiver for tests: hyper on 127.0.0.1:0, every `POST /v1/traces`
//! body decoded with the official protobuf definitions (`opentelemetry-proto`), gunzipped first
//! when it says `Content-Encoding: gzip`, the spans kept with their `service.name` and each
//! export's headers kept. It can be slow, to show that a slow collector costs only spans, and
//! it can speak TLS ([`Receiver::start_tls`], a certificate from a CA made at test time), to
//! show that `https://` endpoints work and that an unknown issuer is refused.

use std::{
    convert::Infallible,
    io::Read as _,
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    HeaderMap, Request, Response, StatusCode, body::Incoming, server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
    task::JoinHandle,
};

use crate::tls::TestCa;

/// One received span and the service that sent it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The resource's `service.name`.
    pub service: String,
    /// The span as decoded.
    pub span: Span,
}

impl Received {
    /// The trace id as hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span id as hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span id as hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }

    /// A string or integer attribute, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        let value = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match value.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(n) => Some(n.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The receiver; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    exports: Arc<Mutex<Vec<HeaderMap>>>,
    tls: Option<TestCa>,
    handshake_failures: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver that answers at once.
    pub async fn start() -> Receiver {
        Self::start_with_delay(Duration::ZERO).await
    }

    /// A receiver that waits `delay` before answering each export.
    pub async fn start_with_delay(delay: Duration) -> Receiver {
        Self::start_with(delay, None).await
    }

    /// A receiver behind TLS, its certificate signed by a CA made for it ([`Receiver::ca_path`]);
    /// its [`Receiver::endpoint`] is `https://127.0.0.1:<port>/v1/traces`.
    pub async fn start_tls() -> Receiver {
        Self::start_with(Duration::ZERO, Some(TestCa::new())).await
    }

    /// # Panics
    /// When it cannot bind 127.0.0.1:0.
    async fn start_with(delay: Duration, tls: Option<TestCa>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let spans = Arc::new(Mutex::new(Vec::new()));
        let exports = Arc::new(Mutex::new(Vec::new()));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            spans: spans.clone(),
            exports: exports.clone(),
            delay,
        };
        let acceptor = tls.as_ref().map(TestCa::acceptor);
        let failures = handshake_failures.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    match acceptor {
                        None => shared.serve(stream).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => shared.serve(stream).await,
                            Err(_) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        },
                    }
                });
            }
        });
        Receiver {
            addr,
            spans,
            exports,
            tls,
            handshake_failures,
            task,
        }
    }

    /// The PEM file of the CA that signed the TLS receiver's certificate.
    ///
    /// # Panics
    /// On a receiver without TLS.
    pub fn ca_path(&self) -> &Path {
        self.tls.as_ref().expect("a TLS receiver").ca_path()
    }

    /// TLS handshakes that failed (a client that refused the certificate, above all).
    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// The headers of every export request decoded so far.
    pub fn export_headers(&self) -> Vec<HeaderMap> {
        self.exports.lock().expect("not poisoned").clone()
    }

    /// The traces endpoint (`https://` for a TLS receiver).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/v1/traces", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().expect("not poisoned").clone()
    }

    /// Waits until `done` holds for the spans received, failing after `timeout` with them.
    ///
    /// # Panics
    /// On timeout.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; spans received: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// What every connection's service shares.
#[derive(Clone)]
struct Shared {
    spans: Arc<Mutex<Vec<Received>>>,
    exports: Arc<Mutex<Vec<HeaderMap>>>,
    delay: Duration,
}

impl Shared {
    async fn serve(self, io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static) {
        let service = service_fn(move |request| {
            receive(
                self.spans.clone(),
                self.exports.clone(),
                self.delay,
                request,
            )
        });
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }
}

fn gunzip(body: &[u8]) -> Option<Bytes> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut plain)
        .ok()?;
    Some(Bytes::from(plain))
}

async fn receive(
    spans: Arc<Mutex<Vec<Received>>>,
    exports: Arc<Mutex<Vec<HeaderMap>>>,
    delay: Duration,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(delay).await;
    let is_traces = request.uri().path() == "/v1/traces"
        && request
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/x-protobuf");
    let headers = request.headers().clone();
    let gzipped = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let body = match body {
        Ok(body) if gzipped => gunzip(&body),
        Ok(body) => Some(body),
        Err(_) => None,
    };
    let decoded = match (is_traces, body) {
        (true, Some(body)) => ExportTraceServiceRequest::decode(body).ok(),
        _ => None,
    };
    let Some(decoded) = decoded else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"bad export")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return Ok(response);
    };
    exports.lock().expect("not poisoned").push(headers);
    let mut received = spans.lock().expect("not poisoned");
    for resource_spans in decoded.resource_spans {
        let service = (resource_spans.resource.iter())
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            received.extend(scope.spans.into_iter().map(|span| Received {
                service: service.clone(),
                span,
            }));
        }
    }
    Ok(Response::new(Full::new(Bytes::new())))
}
