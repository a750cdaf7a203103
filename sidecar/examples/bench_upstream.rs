//! A deliberately tiny upstream for `bench/sidecar.sh`: `GET` answers `hello`, `POST` reads the
//! body and answers its length. It costs next to nothing, so the proxy's own cost shows.
//!
//! Run with `cargo run --release -p sidecar --example bench_upstream -- 127.0.0.1:18000`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if req.method() == Method::POST {
        let len = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .unwrap_or(0);
        Bytes::from(format!("{{\"received\":{len}}}"))
    } else {
        Bytes::from_static(b"hello")
    };
    Ok(Response::new(Full::new(body)))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("bench upstream on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
