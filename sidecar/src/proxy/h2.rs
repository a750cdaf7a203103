//! The upstream leg over HTTP/2 cleartext (prior knowledge): each worker keeps one connection
//! to the upstream and multiplexes its requests on it as streams, the way gRPC clients do.
//! hyper's client runs the connection (flow control, resets, trailers, `GOAWAY`); a closed
//! connection is replaced by the next request that needs one.
//!
//! Unlike the HTTP/1.1 leg ([`super::conn`]) this one runs a task per connection: HTTP/2
//! multiplexes, so a connection can't be driven by any one request's future.

use std::{
    pin::{Pin, pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri, Version, header::HOST, uri::Authority};
use http_body::{Body as _, Frame, SizeHint};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serve::{Deadline, Deadlines};
use tokio::sync::{Mutex, watch};
use tracing::debug;

use super::{BodyIdleTimeout, Pool, pool::SendError};
use crate::body::{Body, BoxError};

/// One worker's HTTP/2 connection to the upstream. Clones share it.
#[derive(Clone, Debug)]
pub(super) struct H2Leg {
    /// Opens connections (address, connect timeout, socket options).
    pool: Pool,
    /// The authority for requests that carry none (HTTP/1.0 clients).
    authority: Authority,
    sender: Arc<Mutex<Option<Live>>>,
}

/// The live connection: how to send on it, and whether the upstream's SETTINGS allow
/// extended CONNECT (`None` until the connection's task knows, see [`EXTENDED_CONNECT_WAIT`]).
#[derive(Clone, Debug)]
struct Live {
    sender: http2::SendRequest<Body>,
    extended_connect: watch::Receiver<Option<bool>>,
}

/// How long a new connection's task looks for the upstream's SETTINGS to allow extended
/// CONNECT before deciding they don't. hyper reads SETTINGS on a task of its own and says
/// neither when they came nor what they held, only whether the setting is on now.
const EXTENDED_CONNECT_WAIT: Duration = Duration::from_secs(1);

impl H2Leg {
    pub(super) fn new(pool: Pool, authority: Authority) -> Self {
        Self {
            pool,
            authority,
            sender: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends `request` (already rewritten for HTTP/1, see [`super::Proxy`]) as an HTTP/2
    /// stream. A streamed response body fails after `idle`'s timeout without a frame.
    pub(super) async fn send(
        &self,
        request: Request<Body>,
        idle: (&Deadlines, Duration),
    ) -> Result<Response<Body>, SendError> {
        let request = self.to_http2(request);
        let Live {
            mut sender,
            mut extended_connect,
        } = self.live().await?;
        // RFC 8441 §3: no `:protocol` before the upstream's SETTINGS allow it.
        if request.extensions().get::<hyper::ext::Protocol>().is_some() {
            let known = extended_connect.wait_for(Option::is_some).await;
            if !known.is_ok_and(|allowed| *allowed == Some(true)) {
                return Err(SendError::NoExtendedConnect);
            }
        }
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| SendError::Http2(Box::new(error)))?;
        Ok(response.map(|body| {
            if body.is_end_stream() {
                crate::body::empty()
            } else {
                Body::new(IdleBody::new(body, idle.0.lease(), idle.1))
            }
        }))
    }

    /// The request as an HTTP/2 client sends it: `:authority` from `Host`, no `Host` field,
    /// an absolute URI (hyper takes `:scheme` and `:authority` from it).
    fn to_http2(&self, request: Request<Body>) -> Request<Body> {
        let (mut parts, body) = request.into_parts();
        let authority = (parts.headers.remove(HOST))
            .and_then(|host| Authority::try_from(host.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()
            .unwrap_or_else(|_| parts.uri.clone());
        parts.version = Version::HTTP_2;
        Request::from_parts(parts, body)
    }

    /// The live connection, or a new one. Requests wait for one connect rather than each
    /// opening its own.
    async fn live(&self) -> Result<Live, SendError> {
        let mut slot = self.sender.lock().await;
        if let Some(live) = slot.as_ref()
            && !live.sender.is_closed()
        {
            return Ok(live.clone());
        }
        let stream = self.pool.connect_stream().await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            // A dead peer behind an idle connection is found before a request is lost on it.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| SendError::Http2(Box::new(error)))?;
        let (publish, extended_connect) = watch::channel(None);
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            // While it drives the connection, this task looks every millisecond whether the
            // upstream's SETTINGS allowed extended CONNECT, until they did or the wait is over.
            let looks = EXTENDED_CONNECT_WAIT.as_millis();
            let mut looked = 0;
            let closed = loop {
                tokio::select! {
                    closed = connection.as_mut() => break closed,
                    () = tokio::time::sleep(Duration::from_millis(1)), if looked < looks => {
                        looked += 1;
                        let allowed = connection.is_extended_connect_protocol_enabled();
                        if allowed || looked == looks {
                            publish.send_replace(Some(allowed));
                            looked = looks;
                        }
                    }
                }
            };
            if let Err(error) = closed {
                debug!(%error, "HTTP/2 upstream connection closed with an error");
            }
        });
        let live = Live {
            sender,
            extended_connect,
        };
        *slot = Some(live.clone());
        Ok(live)
    }
}

/// An upstream HTTP/2 response body that fails when no frame arrives for the idle timeout.
struct IdleBody {
    inner: Incoming,
    deadline: Deadline,
    timeout: Duration,
}

impl IdleBody {
    fn new(inner: Incoming, deadline: Deadline, timeout: Duration) -> Self {
        deadline.arm_after(timeout);
        Self {
            inner,
            deadline,
            timeout,
        }
    }
}

impl http_body::Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                self.deadline.arm_after(self.timeout);
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending if self.deadline.poll_due(cx).is_ready() => {
                self.deadline.disarm();
                Poll::Ready(Some(Err(Box::new(BodyIdleTimeout(self.timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for IdleBody {
    fn drop(&mut self) {
        self.deadline.disarm();
    }
}
