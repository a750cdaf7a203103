//! WebSocket through the sidecar, with a real server and client (tokio-tungstenite): the
//! handshake is proxied, then messages flow both ways until either side closes. The 101 is
//! counted once and kept out of the duration histograms; the tunnel families count the
//! connection, its lifetime and its bytes; shutdown waits for open tunnels up to the grace
//! period, then closes them.

use std::{net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_tungstenite::{connect_async, tungstenite::Message};

use crate::support::Sidecar;

/// A WebSocket server that echoes every text and binary message; it closes after `close_after`
/// messages when given one.
async fn echo_server(close_after: Option<usize>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let mut echoed = 0;
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        if ws.send(message).await.is_err() {
                            return;
                        }
                        echoed += 1;
                        if close_after == Some(echoed) {
                            let _ = ws.close(None).await;
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

const ROUTES: &str = "[[routes]]\ntemplate = \"/ws\"\n";

#[tokio::test]
async fn messages_flow_both_ways_and_the_tunnel_is_counted_apart_from_requests() {
    let (upstream, _server) = echo_server(None).await;
    let sidecar = Sidecar::start(&format!("http://{upstream}"), ROUTES).await;

    let (mut ws, handshake) = connect_async(format!("ws://{}/ws", sidecar.proxy))
        .await
        .unwrap();
    assert_eq!(handshake.status(), 101);
    for i in 0..200 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    ws.send(Message::binary(vec![7u8; 100_000])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().len(), 100_000);

    let open = sidecar.scrape().await;
    assert_eq!(open.value("sidecar_upgraded_connections", &[]), Some(1.0));
    ws.close(None).await.unwrap();
    // The server answers the close; the client reads it and the stream ends.
    while let Some(Ok(_)) = ws.next().await {}

    let scrape = sidecar
        .scrape_until("the tunnel closed", |s| {
            s.value("sidecar_upgraded_connection_duration_seconds_count", &[]) == Some(1.0)
        })
        .await;
    assert_eq!(scrape.value("sidecar_upgraded_connections", &[]), Some(0.0));
    let bytes = |direction| {
        scrape
            .value("sidecar_upgraded_bytes_total", &[("direction", direction)])
            .unwrap()
    };
    // Client frames are masked (4 bytes more each), so more goes up than comes down; both
    // carry at least the payloads.
    assert!(bytes("client_to_upstream") > 100_000.0 + 200.0 * 9.0);
    assert!(bytes("upstream_to_client") > 100_000.0 + 200.0 * 9.0);
    // The handshake: one request, status 1xx, and no duration sample.
    let labels = [("handler", "/ws"), ("method", "GET"), ("status", "1xx")];
    assert_eq!(scrape.value("http_requests_total", &labels), Some(1.0));
    assert_eq!(
        scrape.value(
            "http_request_duration_seconds_count",
            &[("handler", "/ws"), ("method", "GET")]
        ),
        None
    );
}

#[tokio::test]
async fn the_upstream_may_close_first() {
    let (upstream, _server) = echo_server(Some(3)).await;
    let sidecar = Sidecar::start(&format!("http://{upstream}"), ROUTES).await;
    let (mut ws, _) = connect_async(format!("ws://{}/ws", sidecar.proxy))
        .await
        .unwrap();
    for i in 0..3 {
        ws.send(Message::text(format!("{i}"))).await.unwrap();
    }
    let mut received = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        received.push(message);
    }
    assert_eq!(
        received.len(),
        4,
        "three echoes and the close: {received:?}"
    );
    assert!(received[3].is_close());
    sidecar
        .scrape_until("the tunnel closed", |s| {
            s.value("sidecar_upgraded_connections", &[]) == Some(0.0)
                && s.value("sidecar_upgraded_connection_duration_seconds_count", &[]) == Some(1.0)
        })
        .await;
}

#[tokio::test]
async fn a_refused_upgrade_is_an_ordinary_response() {
    // The stub answers the handshake with its JSON echo (200): no tunnel, the client is told.
    let stub = crate::stub::Stub::start().await;
    let sidecar = Sidecar::start(&stub.url(), ROUTES).await;
    let refused = connect_async(format!("ws://{}/ws", sidecar.proxy)).await;
    assert!(refused.is_err());
    let scrape = sidecar
        .scrape_until("the request counted", |s| {
            s.value(
                "http_requests_total",
                &[("handler", "/ws"), ("method", "GET"), ("status", "2xx")],
            ) == Some(1.0)
        })
        .await;
    assert_eq!(scrape.value("sidecar_upgraded_connections", &[]), Some(0.0));
}

#[tokio::test]
async fn shutdown_waits_for_open_tunnels_up_to_the_grace_period_then_closes_them() {
    let (upstream, _server) = echo_server(None).await;
    let mut sidecar = Sidecar::start(
        &format!("http://{upstream}"),
        "[limits]\ngrace_period = \"1s\"\nfinal_scrape_wait = \"0s\"\n",
    )
    .await;
    let (ws, _) = connect_async(format!("ws://{}/ws", sidecar.proxy))
        .await
        .unwrap();
    carried_through_the_grace_period_then_closed(ws, &mut sidecar).await;
}

/// Shuts `sidecar` down (1 s of grace) with `ws` open: messages still flow for the grace
/// period, then the sidecar closes the tunnel and stops.
pub async fn carried_through_the_grace_period_then_closed<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    sidecar: &mut Sidecar,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));

    let started = tokio::time::Instant::now();
    sidecar.shutdown();
    // Still carried during the grace period.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::text("during")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("during"));
    // Then closed by the sidecar: the stream ends (without a close frame).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the tunnel outlived the grace period");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let task = sidecar.take_task().unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the sidecar stopped")
        .unwrap()
        .unwrap();
}
