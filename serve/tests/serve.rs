//! The accept loop against real sockets: draining on shutdown, the grace period, slow clients.

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming};
use tokio::{io::AsyncWriteExt, net::TcpListener, sync::oneshot};

/// Answers after the delay given in the path (`/sleep/300` waits 300 ms), with the peer's
/// connection id in the body.
async fn slow(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ms: u64 = req
        .uri()
        .path()
        .trim_start_matches("/sleep/")
        .parse()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let peer = req
        .extensions()
        .get::<serve::Peer>()
        .map_or(0, |p| p.connection_id);
    Ok(Response::new(Full::new(Bytes::from(peer.to_string()))))
}

async fn start(grace: Duration) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    start_with(grace, Duration::from_millis(300)).await
}

async fn start_with(
    grace: Duration,
    header_read_timeout: Duration,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (listener, addr) = bind().await;
    let base = format!("http://{addr}");
    let (tx, rx) = oneshot::channel::<()>();
    let limits = serve::Limits {
        header_read_timeout,
        ..Default::default()
    };
    let server = tokio::spawn(serve::serve(
        listener,
        tower::service_fn(slow),
        limits,
        async move {
            let _ = rx.await;
        },
        grace,
    ));
    (base, tx, server)
}

/// A listening socket on a free loopback port.
async fn bind() -> (TcpListener, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding loopback");
    let addr = listener.local_addr().expect("bound address");
    (listener, addr)
}

/// Sends `GET /` on `sock` and checks the answer is a 200.
async fn get_on(sock: &mut tokio::net::TcpStream) {
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request sent");
    let mut answer = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(sock, &mut answer)
        .await
        .expect("answer read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "answered");
}

/// What the server still sends before it closes `sock`; fails if it keeps it open 10 s.
async fn read_until_closed(sock: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut rest = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(sock, &mut rest);
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closed the connection")
        .expect("connection read to its end");
    rest
}

#[tokio::test]
async fn in_flight_request_completes_after_shutdown_starts() {
    let (base, stop, server) = start(Duration::from_secs(5)).await;
    let request = tokio::spawn(testkit::http::get_owned(format!("{base}/sleep/400")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let resp = request.await.unwrap().unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "1", "the first connection has id 1");
    server.await.unwrap();
    assert!(
        testkit::http::get(&format!("{base}/")).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn grace_period_bounds_the_drain() {
    let (base, stop, server) = start(Duration::from_millis(200)).await;
    let request = tokio::spawn(testkit::http::get_owned(format!("{base}/sleep/30000")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned after the grace period")
        .unwrap();
    request.abort();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_at_shutdown_not_waited_for() {
    // The header-read timeout would close an idle connection too: far off here.
    let (base, stop, server) = start_with(Duration::from_secs(60), Duration::from_secs(60)).await;
    let mut sock = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    get_on(&mut sock).await;
    // The connection is now idle, kept alive. Shutdown must close it, not wait 60 s for it.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returned without waiting out the grace period")
        .unwrap();
    read_until_closed(&mut sock).await;
}

#[tokio::test]
async fn client_that_never_finishes_its_headers_is_cut_off() {
    let (base, _stop, _server) = start(Duration::from_secs(1)).await;
    let mut sock = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    sock.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let buf = read_until_closed(&mut sock).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "got {text:?}"
    );
}

#[tokio::test]
async fn spreader_deals_connections_in_turn_and_closes_the_socket_when_stopped() {
    let (listener, addr) = bind().await;
    let base = format!("http://{addr}");
    let (spreader, handoffs) = serve::Spreader::new(listener, 2);
    let (stop, stopped) = oneshot::channel::<()>();
    let acceptor = tokio::spawn(spreader.run(async move {
        let _ = stopped.await;
    }));
    for (index, handoff) in handoffs.into_iter().enumerate() {
        let service = tower::service_fn(move |_: Request<Incoming>| async move {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(index.to_string()))))
        });
        tokio::spawn(serve::serve(
            handoff,
            service,
            serve::Limits::default(),
            std::future::pending(),
            Duration::from_secs(1),
        ));
    }
    let mut served_by = Vec::new();
    for _ in 0..4 {
        let response = testkit::http::get(&format!("{base}/"))
            .await
            .expect("answered");
        served_by.push(response.text());
    }
    assert_eq!(
        served_by,
        ["0", "1", "0", "1"],
        "one connection each, in turn"
    );
    stop.send(()).expect("acceptor running");
    acceptor.await.expect("acceptor stopped");
    assert!(
        testkit::http::get(&format!("{base}/")).await.is_err(),
        "the listening socket closes with the acceptor"
    );
}

/// Not ready the first `pending` times any clone is asked; `call` checks that this very clone
/// said it was ready, as tower's contract asks.
#[derive(Clone)]
struct ReadyLater {
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ready: bool,
}

impl tower::Service<Request<Incoming>> for ReadyLater {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        use std::sync::atomic::Ordering;
        let left = self.pending.load(Ordering::SeqCst);
        if left > 0 {
            self.pending.store(left - 1, Ordering::SeqCst);
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Incoming>) -> Self::Future {
        let body = if std::mem::take(&mut self.ready) {
            "called when ready"
        } else {
            "called before ready"
        };
        std::future::ready(Ok(Response::new(Full::new(Bytes::from(body)))))
    }
}

#[tokio::test]
async fn a_service_that_is_not_ready_yet_is_waited_for() {
    let (listener, addr) = bind().await;
    let base = format!("http://{addr}");
    let service = ReadyLater {
        pending: std::sync::Arc::new(3.into()),
        ready: false,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve(
        listener,
        service,
        serve::Limits::default(),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    for _ in 0..3 {
        let response = testkit::http::get(&format!("{base}/"))
            .await
            .expect("answered");
        assert_eq!(response.text(), "called when ready");
    }
    stop.send(()).expect("server running");
    server.await.expect("server stopped");
}

/// A server whose service reads the whole request body, then answers with its length.
async fn start_reading_bodies(header_read_timeout: Duration) -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    let (listener, addr) = bind().await;
    let service = tower::service_fn(|req: Request<Incoming>| async move {
        let length = req
            .into_body()
            .collect()
            .await
            .map_or(0, |body| body.to_bytes().len());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(length.to_string()))))
    });
    tokio::spawn(serve::serve(
        listener,
        service,
        serve::Limits {
            header_read_timeout,
            ..Default::default()
        },
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

#[tokio::test]
async fn a_slow_request_body_is_not_cut_off_by_the_header_timeout() {
    let addr = start_reading_bodies(Duration::from_millis(300)).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        .await
        .unwrap();
    // The head is in; the body takes more than twice the header timeout to finish.
    tokio::time::sleep(Duration::from_millis(700)).await;
    sock.write_all(b"world").await.unwrap();
    let mut answer = [0u8; 512];
    let n = tokio::io::AsyncReadExt::read(&mut sock, &mut answer)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    assert!(text.ends_with("\r\n\r\n10"), "{text:?}");
}

#[tokio::test]
async fn the_header_timeout_starts_again_after_each_response() {
    let addr = start_reading_bodies(Duration::from_secs(1)).await;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Each head comes half the timeout after the previous response: past the timeout counted
    // from the connection's start by the second, within it counted from each response.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        get_on(&mut sock).await;
    }
    // Then half a head and silence: the connection is closed.
    sock.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let rest = read_until_closed(&mut sock).await;
    assert!(rest.is_empty(), "no answer to a stalled head: {rest:?}");
}

#[tokio::test]
async fn a_client_that_writes_its_whole_body_first_reads_an_answer_sent_before_the_body() {
    // `slow` answers without reading the body; the connection then closes with the body
    // unread. A plain close would reset it and the client would never see the answer.
    let (base, _stop, _server) = start(Duration::from_secs(1)).await;
    let addr = base.trim_start_matches("http://").parse().unwrap();
    for attempt in 0..5 {
        let answer = testkit::http::post_whole_then_read(addr, "/sleep/0", 4 << 20)
            .await
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error:#}"));
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "attempt {attempt}: {answer:?}"
        );
    }
}
