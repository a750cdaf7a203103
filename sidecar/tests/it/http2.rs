//! HTTP/2: cleartext clients with prior knowledge on the proxy port, next to HTTP/1.1 ones;
//! the upstream leg over h2c (multiplexed on one connection per worker) or following the
//! client (`auto`); trailers passed through; the RED family counting both versions alike.

use std::sync::atomic::Ordering::SeqCst;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, Version, body::Incoming, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    stub::Stub,
    support::{Sidecar, echoed, send},
};

/// An HTTP/2 (prior knowledge) connection to `addr`.
async fn h2_client(addr: std::net::SocketAddr) -> http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn get(sidecar: &Sidecar, path: &str) -> Request<Full<Bytes>> {
    Request::get(sidecar.url(path))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The whole response: status, body, trailers.
async fn read(response: Response<Incoming>) -> (u16, Bytes, Option<hyper::HeaderMap>) {
    let status = response.status().as_u16();
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (status, collected.to_bytes(), trailers)
}

fn echo_of(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not an echo ({e}): {body:?}"))
}

#[tokio::test]
async fn http2_and_http1_clients_share_the_port_and_the_red_family() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/items/{id}\"\n").await;

    let mut h2 = h2_client(sidecar.proxy).await;
    let response = h2
        .send_request(get(&sidecar, "/items/7?x=1"))
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let (status, body, _) = read(response).await;
    assert_eq!(status, 200);
    let echo = echo_of(&body);
    // HTTP/1.1 upstream (the default): `:authority` became `Host`.
    assert_eq!(echo["version"], "HTTP/1.1");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "x=1");
    assert_eq!(echo["headers"]["host"][0], sidecar.proxy.to_string());

    let plain = send(
        Request::get(sidecar.url("/items/8"))
            .body(crate::support::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(echoed(&plain)["version"], "HTTP/1.1");

    let labels = [
        ("handler", "/items/{id}"),
        ("method", "GET"),
        ("status", "2xx"),
    ];
    let scrape = sidecar
        .scrape_until("both requests counted", |s| {
            s.value("http_requests_total", &labels) == Some(2.0)
        })
        .await;
    assert_eq!(
        scrape.value(
            "http_request_duration_seconds_count",
            &[("handler", "/items/{id}"), ("method", "GET")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn an_h2c_upstream_gets_streams_on_one_connection_and_trailers_come_back() {
    let stub = Stub::start_both().await;
    let sidecar = Sidecar::start(
        &stub.url(),
        "workers = 1\n[protocols]\nupstream = \"h2c\"\n",
    )
    .await;

    // An HTTP/1.1 client, forwarded over HTTP/2 with its Host as :authority.
    let plain = send(
        Request::get(sidecar.url("/echo"))
            .header("te", "trailers")
            .body(crate::support::empty())
            .unwrap(),
    )
    .await;
    let echo = echoed(&plain);
    assert_eq!(echo["version"], "HTTP/2.0");
    assert!(echo["headers"].get("host").is_none(), "{echo}");
    assert_eq!(echo["headers"]["te"][0], "trailers");

    // Many concurrent streams from one HTTP/2 client: one upstream connection carries them.
    let h2 = h2_client(sidecar.proxy).await;
    let calls = (0..20).map(|i| {
        let mut h2 = h2.clone();
        let request = get(&sidecar, &format!("/slow/{}", 50 + i));
        async move { read(h2.send_request(request).await.unwrap()).await.0 }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(stub.state.connections.load(SeqCst), 1);

    // Trailers from the upstream reach an HTTP/2 client.
    let (status, body, trailers) = read(
        h2.clone()
            .send_request(get(&sidecar, "/trailers"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body[..]), (200, &b"body then trailers"[..]));
    assert_eq!(trailers.unwrap()["x-checksum"], "abc");
}

#[tokio::test]
async fn trailers_of_an_http1_upstream_reach_http2_and_http1_clients() {
    // Chunked with trailers from an HTTP/1.1 upstream, small enough to arrive with its head.
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "").await;
    let request = Request::get(sidecar.url("/trailers"))
        .header("te", "trailers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body, trailers) = read(
        h2_client(sidecar.proxy)
            .await
            .send_request(request)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body[..]), (200, &b"body then trailers"[..]));
    assert_eq!(trailers.expect("trailers")["x-checksum"], "abc");

    // An HTTP/1.1 client that takes trailers gets them too, announced and after the last chunk.
    let mut raw = TcpStream::connect(sidecar.proxy).await.unwrap();
    raw.write_all(
        b"GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    raw.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("\r\ntrailer: x-checksum\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n0\r\nx-checksum: abc\r\n\r\n"),
        "{answer}"
    );
}

#[tokio::test]
async fn auto_speaks_to_the_upstream_what_the_client_spoke() {
    let stub = Stub::start_both().await;
    let sidecar = Sidecar::start(&stub.url(), "[protocols]\nupstream = \"auto\"\n").await;

    let (_, body, _) = read(
        h2_client(sidecar.proxy)
            .await
            .send_request(get(&sidecar, "/echo"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo_of(&body)["version"], "HTTP/2.0");

    let plain = send(
        Request::get(sidecar.url("/echo"))
            .body(crate::support::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(echoed(&plain)["version"], "HTTP/1.1");
}

#[tokio::test]
async fn a_dead_h2c_upstream_is_a_502_like_any_other() {
    let port = crate::stub::closed_port().await;
    let sidecar = Sidecar::start(
        &format!("http://{port}"),
        "[protocols]\nupstream = \"h2c\"\n",
    )
    .await;
    let (status, _, _) = read(
        h2_client(sidecar.proxy)
            .await
            .send_request(get(&sidecar, "/x"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    sidecar
        .scrape_until("the refused connect counted", |s| {
            s.value(
                "sidecar_upstream_errors_total",
                &[("error_type", "connect_refused"), ("handler", "none")],
            ) == Some(1.0)
        })
        .await;
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[protocols]\nhttp2 = false\n").await;
    let stream = TcpStream::connect(sidecar.proxy).await.unwrap();
    let handshake =
        http2::handshake::<_, _, Full<Bytes>>(TokioExecutor::new(), TokioIo::new(stream)).await;
    // hyper's HTTP/1 server answers the preface with a 400 and closes: no HTTP/2 stream works.
    let failed = match handshake {
        Err(_) => true,
        Ok((mut sender, conn)) => {
            tokio::spawn(conn);
            sender.send_request(get(&sidecar, "/echo")).await.is_err()
        }
    };
    assert!(failed);
}

#[tokio::test]
async fn upgrade_h2c_is_ignored_and_the_request_served_over_http1() {
    let stub = Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), "[[routes]]\ntemplate = \"/echo\"\n").await;
    let response = send(
        Request::get(sidecar.url("/echo"))
            .header("connection", "Upgrade, HTTP2-Settings")
            .header("upgrade", "h2c")
            .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
            .body(crate::support::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(response.status, 200);
    let echo = echoed(&response);
    assert_eq!(echo["version"], "HTTP/1.1");
    // The upgrade and its settings are hop-by-hop: the upstream sees a plain request.
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(
            echo["headers"].get(name).is_none(),
            "{name} forwarded: {echo}"
        );
    }
    let scrape = sidecar
        .scrape_until("the request counted", |s| {
            s.value(
                "http_requests_total",
                &[("handler", "/echo"), ("method", "GET"), ("status", "2xx")],
            ) == Some(1.0)
        })
        .await;
    assert_eq!(scrape.value("sidecar_upgraded_connections", &[]), Some(0.0));
}
