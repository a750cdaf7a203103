//! WebSocket over HTTP/2 (extended CONNECT, RFC 8441) through the sidecar, with real peers: an
//! HTTP/2 client is hyper's (`CONNECT` with `:protocol`), a WebSocket end is tokio-tungstenite,
//! over the stream hyper hands over or over a plain socket. Each mix of client and upstream
//! versions carries messages both ways, counts the tunnel, and keeps the handshake out of the
//! duration histograms.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::SeqCst},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper::{
    Method, Request, Response, StatusCode, client::conn::http2, ext::Protocol,
    server::conn::http2 as server, service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::{
    WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, protocol::Role},
};

use crate::support::Sidecar;

const ROUTES: &str = "[[routes]]\ntemplate = \"/ws\"\n";

/// Echoes every text and binary message until the other side closes.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
            return;
        }
    }
}

/// An HTTP/1.1 WebSocket echo server (tokio-tungstenite's handshake).
async fn http1_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                    echo(ws).await;
                }
            });
        }
    });
    addr
}

/// An HTTP/2 WebSocket echo server: hyper's HTTP/2 server with extended CONNECT, tungstenite
/// on the stream it hands over. Without `extended_connect`, hyper's default: not offered.
async fn http2_echo_server(extended_connect: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|mut request: Request<hyper::body::Incoming>| async move {
                let websocket = request.method() == Method::CONNECT
                    && request.extensions().get::<Protocol>().map(Protocol::as_str)
                        == Some("websocket");
                let mut response = Response::new(Empty::<Bytes>::new());
                if !websocket {
                    *response.status_mut() = StatusCode::BAD_REQUEST;
                    return Ok::<_, Infallible>(response);
                }
                let upgrade = hyper::upgrade::on(&mut request);
                tokio::spawn(async move {
                    let stream = TokioIo::new(upgrade.await.unwrap());
                    echo(WebSocketStream::from_raw_socket(stream, Role::Server, None).await).await;
                });
                Ok(response)
            });
            let mut builder = server::Builder::new(TokioExecutor::new());
            if extended_connect {
                builder.enable_connect_protocol();
            }
            tokio::spawn(builder.serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

/// An HTTP/2 connection to `addr`, once the server's SETTINGS have allowed extended CONNECT
/// (a client must not send `:protocol` before: RFC 8441 §3).
async fn h2_client(addr: SocketAddr) -> http2::SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    // The connection knows the server's SETTINGS; it runs on a task of its own, which looks
    // until they allow extended CONNECT.
    let allowed = Arc::new(AtomicBool::new(false));
    let seen = allowed.clone();
    tokio::spawn(async move {
        let mut conn = pin!(conn);
        loop {
            tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep(Duration::from_millis(1)) => {
                    if conn.is_extended_connect_protocol_enabled() {
                        seen.store(true, SeqCst);
                        break;
                    }
                }
            }
        }
        let _ = conn.await;
    });
    for _ in 0..200 {
        if allowed.load(SeqCst) {
            return sender;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server at {addr} never enabled extended CONNECT");
}

fn connect(proxy: SocketAddr, protocol: Option<&'static str>) -> Request<Empty<Bytes>> {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{proxy}/ws"))
        .header("sec-websocket-version", "13")
        .body(Empty::new())
        .unwrap();
    if let Some(protocol) = protocol {
        request
            .extensions_mut()
            .insert(Protocol::from_static(protocol));
    }
    request
}

/// Opens a WebSocket over an HTTP/2 stream through the sidecar.
async fn websocket_over_h2(
    proxy: SocketAddr,
) -> WebSocketStream<TokioIo<hyper::upgrade::Upgraded>> {
    let mut h2 = h2_client(proxy).await;
    let mut response = h2
        .send_request(connect(proxy, Some("websocket")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    assert!(response.headers().get("sec-websocket-accept").is_none());
    let stream = hyper::upgrade::on(&mut response).await.unwrap();
    WebSocketStream::from_raw_socket(TokioIo::new(stream), Role::Client, None).await
}

/// Text both ways, a large binary message, then the client's close, answered.
async fn converse<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for i in 0..100 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().len(), 100_000);
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// After one tunnel closed: its families, and the handshake counted once with `method` and
/// `status` in the HTTP/1.1 form whatever the client spoke (`GET`, `1xx`), and no duration
/// sample.
async fn one_tunnel_counted(sidecar: &Sidecar, method: &str, status: &str) {
    let scrape = sidecar
        .scrape_until("the tunnel closed", |s| {
            s.value("sidecar_upgraded_connection_duration_seconds_count", &[]) == Some(1.0)
        })
        .await;
    assert_eq!(scrape.value("sidecar_upgraded_connections", &[]), Some(0.0));
    for direction in ["client_to_upstream", "upstream_to_client"] {
        let bytes = scrape.value("sidecar_upgraded_bytes_total", &[("direction", direction)]);
        assert!(
            bytes.unwrap() > 100_000.0 + 100.0 * 9.0,
            "{direction}: {bytes:?}"
        );
    }
    let labels = [("handler", "/ws"), ("method", method), ("status", status)];
    assert_eq!(scrape.value("http_requests_total", &labels), Some(1.0));
    let route = [("handler", "/ws"), ("method", method)];
    assert_eq!(
        scrape.value("http_request_duration_seconds_count", &route),
        None
    );
}

#[tokio::test]
async fn an_http2_client_opens_a_websocket_on_an_http1_upstream() {
    let upstream = http1_echo_server().await;
    let sidecar = Sidecar::start(&format!("http://{upstream}"), ROUTES).await;
    // tungstenite's server checks the key the sidecar made; the sidecar checks the accept.
    converse(websocket_over_h2(sidecar.proxy).await).await;
    one_tunnel_counted(&sidecar, "GET", "1xx").await;
}

#[tokio::test]
async fn an_http2_client_opens_a_websocket_on_an_http2_upstream() {
    let upstream = http2_echo_server(true).await;
    let file = format!("{ROUTES}[protocols]\nupstream = \"auto\"\n");
    let sidecar = Sidecar::start(&format!("http://{upstream}"), &file).await;
    converse(websocket_over_h2(sidecar.proxy).await).await;
    one_tunnel_counted(&sidecar, "GET", "1xx").await;
}

#[tokio::test]
async fn an_http1_client_opens_a_websocket_on_an_http2_upstream() {
    let upstream = http2_echo_server(true).await;
    let file = format!("{ROUTES}[protocols]\nupstream = \"h2c\"\n");
    let sidecar = Sidecar::start(&format!("http://{upstream}"), &file).await;
    // tungstenite's client checks the Sec-WebSocket-Accept the sidecar computed.
    let (ws, handshake) = connect_async(format!("ws://{}/ws", sidecar.proxy))
        .await
        .unwrap();
    assert_eq!(handshake.status(), 101);
    converse(ws).await;
    one_tunnel_counted(&sidecar, "GET", "1xx").await;
}

#[tokio::test]
async fn an_upstream_without_extended_connect_and_a_plain_connect_are_refused() {
    // An HTTP/2 server that does not offer extended CONNECT: nothing is sent on it.
    let upstream = http2_echo_server(false).await;
    let file = "[protocols]\nupstream = \"h2c\"\n";
    let sidecar = Sidecar::start(&format!("http://{upstream}"), file).await;
    let mut h2 = h2_client(sidecar.proxy).await;
    let refused = h2
        .send_request(connect(sidecar.proxy, Some("websocket")))
        .await
        .unwrap();
    assert_eq!(refused.status(), 502);
    assert_eq!(refused.headers()["x-sidecar-error"], "protocol_error");

    // A CONNECT without :protocol asks for a tunnel to anywhere: refused before forwarding.
    let plain = Request::builder()
        .method(Method::CONNECT)
        .uri(upstream.to_string())
        .body(Empty::new())
        .unwrap();
    let plain = h2.send_request(plain).await.unwrap();
    assert_eq!(plain.status(), 405);
    let scrape = sidecar.scrape().await;
    assert_eq!(scrape.value("sidecar_upgraded_connections", &[]), Some(0.0));
}

#[tokio::test]
async fn shutdown_carries_an_http2_tunnel_through_the_grace_period_then_closes_it() {
    let upstream = http1_echo_server().await;
    let file = "[limits]\ngrace_period = \"1s\"\nfinal_scrape_wait = \"0s\"\n";
    let mut sidecar = Sidecar::start(&format!("http://{upstream}"), file).await;
    let ws = websocket_over_h2(sidecar.proxy).await;
    crate::websocket::carried_through_the_grace_period_then_closed(ws, &mut sidecar).await;
}

/// Plugins see a WebSocket handshake in its HTTP/1.1 form whichever version the client spoke,
/// as Envoy's codecs show filters: `GET` with `upgrade: websocket`, answered `101`; the HTTP/2
/// client still gets its `200`, and both handshakes count alike.
#[tokio::test]
async fn plugins_see_an_http2_websocket_as_an_http1_one() {
    let upstream = http1_echo_server().await;
    let file = format!(
        "{ROUTES}[[plugins]]\nname = \"trailer-watch\"\npath = {:?}\n",
        testkit::plugins::dist("trailer-watch")
    );
    let sidecar = Sidecar::start(&format!("http://{upstream}"), &file).await;
    let view = |headers: &http::HeaderMap| {
        ["method", "upgrade", "status", "protocol"].map(|field| {
            let value = &headers[format!("x-seen-{field}").as_str()];
            value.to_str().unwrap().to_owned()
        })
    };

    let mut h2 = h2_client(sidecar.proxy).await;
    let mut request = connect(sidecar.proxy, Some("websocket"));
    request
        .headers_mut()
        .insert("x-show-view", http::HeaderValue::from_static("1"));
    let mut response = h2.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    assert_eq!(
        view(response.headers()),
        ["GET", "websocket", "101", "HTTP/2"]
    );
    assert!(response.headers().get("upgrade").is_none());
    let stream = hyper::upgrade::on(&mut response).await.unwrap();
    converse(WebSocketStream::from_raw_socket(TokioIo::new(stream), Role::Client, None).await)
        .await;

    let mut request = format!("ws://{}/ws", sidecar.proxy)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-show-view", http::HeaderValue::from_static("1"));
    let (ws, handshake) = connect_async(request).await.unwrap();
    assert_eq!(handshake.status(), 101);
    assert_eq!(
        view(handshake.headers()),
        ["GET", "websocket", "101", "HTTP/1.1"]
    );
    converse(ws).await;

    let scrape = sidecar
        .scrape_until("both tunnels closed", |s| {
            s.value("sidecar_upgraded_connection_duration_seconds_count", &[]) == Some(2.0)
        })
        .await;
    let labels = [("handler", "/ws"), ("method", "GET"), ("status", "1xx")];
    assert_eq!(scrape.value("http_requests_total", &labels), Some(2.0));
}
