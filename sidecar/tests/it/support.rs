//! Test support: the sidecar in-process on port 0, a client for any body (streaming ones
//! included), scrape polling. The upstreams the sidecar talks to are in `stub.rs`.

use std::{
    convert::Infallible,
    ops::{Deref, DerefMut},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::{Request, body::Frame};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use sidecar::test_support::InProcess;
use testkit::Scrape;
use tokio::sync::mpsc;

pub type TestBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body fed through a channel, so a test controls when each chunk is sent.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn empty() -> TestBody {
    Empty::new().boxed_unsync()
}

/// A sidecar running in-process ([`InProcess`]: its addresses, `url`, `admin_url`, shutdown),
/// its TOML file in a temporary directory.
pub struct Sidecar {
    running: InProcess,
    _dir: tempfile::TempDir,
}

impl Deref for Sidecar {
    type Target = InProcess;
    fn deref(&self) -> &InProcess {
        &self.running
    }
}

impl DerefMut for Sidecar {
    fn deref_mut(&mut self) -> &mut InProcess {
        &mut self.running
    }
}

impl Sidecar {
    /// Starts a sidecar in front of `upstream` with the TOML `file` (written to a temp file, so
    /// reload can re-read it).
    pub async fn start(upstream: &str, file: &str) -> Sidecar {
        Self::try_start(upstream, file).await.unwrap()
    }

    pub async fn try_start(upstream: &str, file: &str) -> anyhow::Result<Sidecar> {
        Self::try_start_traced(upstream, file, traces::Settings::default()).await
    }

    /// [`Sidecar::start`] with these tracing settings instead of the defaults.
    pub async fn start_traced(upstream: &str, file: &str, tracing: traces::Settings) -> Sidecar {
        Self::try_start_traced(upstream, file, tracing)
            .await
            .unwrap()
    }

    async fn try_start_traced(
        upstream: &str,
        file: &str,
        tracing: traces::Settings,
    ) -> anyhow::Result<Sidecar> {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("sidecar.toml");
        let running = InProcess::start(upstream, config_path, file, tracing).await?;
        Ok(Sidecar { running, _dir: dir })
    }

    pub async fn scrape(&self) -> Scrape {
        let response = testkit::http::scrape(&self.admin_url("/metrics"))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        Scrape::parse(&response.text()).unwrap()
    }

    /// Scrapes until `done` holds (recording ends with the response body, which can land a
    /// moment after the client has read it), failing after 5 s with the last scrape.
    pub async fn scrape_until(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let scrape = self.scrape().await;
            if done(&scrape) {
                return scrape;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; last scrape:\n{:#?}",
                    scrape.samples
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Shuts down and waits for `run` to return ([`InProcess::stop`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await
    }
}

/// A keep-alive client for any body type.
pub fn client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `req` and reads the whole response.
pub async fn send(req: Request<TestBody>) -> testkit::http::Response {
    let response = client::<TestBody>().request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    testkit::http::Response {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// The JSON the stub's echo sent back.
pub fn echoed(response: &testkit::http::Response) -> serde_json::Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not an echo ({e}): {}", response.text()))
}

/// The sum of a counter over all its series (0 when absent).
pub fn total(scrape: &Scrape, name: &str) -> f64 {
    scrape.sum(name, &[])
}
