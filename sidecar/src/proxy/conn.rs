//! One HTTP/1.1 connection to the upstream, driven by the request that uses it.
//!
//! Why not hyper's client connection: it runs each connection as a task of its own and hands
//! requests, responses and body chunks to it over channels, so every proxied request costs two
//! extra task wake-ups and their bookkeeping. Measured on the 2-core bench machine, hyper's
//! client side took about as much CPU as the whole of nginx's upstream side. Here the request's
//! own future writes the request and reads the response head, and the response body reads the
//! socket itself: no task, no channel. hyper still serves the client side.
//!
//! An exchange writes the request (head, then the body as it streams in) while watching for the
//! response: an upstream may answer before it has read the whole body (a 413, say), and then the
//! rest of the body is not sent and the connection is not reused. An upstream that answers and
//! closes with the body unread makes its kernel reset the connection, and our next write fails;
//! the answer it sent first is still in our receive queue, so a failed write stops the sending
//! and the exchange reads on: a response that arrived wins over the broken write.

use std::{
    future::poll_fn,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Method, request};
use http_body::Body as _;
use serve::Socket;
use tokio::net::TcpStream;

use super::{
    framing::{self, Piece},
    head::{self, HeadError, Parsed, RequestFraming, ResponseHead},
};
use crate::body::{Body, BoxError};

/// Read buffer size; it grows for a larger response head, up to [`MAX_HEAD`].
const READ_CHUNK: usize = 16 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Request body bytes gathered before a write.
const WRITE_BATCH: usize = 64 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExchangeError {
    /// The upstream closed or reset the connection before any byte of a response.
    #[error("the upstream closed the connection before answering")]
    Closed(#[source] Option<io::Error>),
    /// Reading or writing failed after the response had started.
    #[error("upstream connection failed: {0}")]
    Io(#[source] io::Error),
    /// The response head can't be used.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The request body failed (usually the client's side).
    #[error("the request body failed")]
    RequestBody(#[source] BoxError),
    /// The response body broke before any of the response was sent to the client.
    #[error("the response body broke off at once")]
    Body(#[source] BoxError),
}

/// An open connection.
#[derive(Debug)]
pub(super) struct Conn {
    io: Socket,
    /// Bytes `start..end` of `buf` are read and not yet used.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Cleared by anything that leaves the connection in an unknown state.
    reusable: bool,
    /// Reused for request heads and batched body bytes.
    out: Vec<u8>,
    /// The request in flight asked for a protocol switch: a 101 is its final response.
    upgrading: bool,
}

impl Conn {
    pub(super) fn new(io: TcpStream) -> Self {
        Self {
            io: Socket::new(io),
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            reusable: true,
            out: Vec::with_capacity(1024),
            upgrading: false,
        }
    }

    /// Whether an idle connection can carry a request: nothing may have arrived while it sat
    /// in the pool (the upstream's FIN, or stray bytes). Costs no system call unless the socket
    /// became readable.
    pub(super) fn is_usable(&mut self) -> bool {
        if !self.reusable || self.start != self.end {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.stream().poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.io.stream().try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// The connection after a 101: its socket, and what the upstream already sent in the new
    /// protocol (read along with the head).
    pub(super) fn into_tunnel(self) -> (Socket, Bytes) {
        let early = Bytes::copy_from_slice(&self.buf[self.start..self.end]);
        (self.io, early)
    }

    /// Whether the connection can go back to the pool.
    pub(super) fn is_reusable(&self) -> bool {
        self.reusable && self.start == self.end
    }

    /// Sends the request (`parts`, then `body` as it arrives) and returns the response head. If
    /// the response comes before the whole body is sent, what is left of the body is dropped.
    pub(super) async fn exchange(
        &mut self,
        parts: &request::Parts,
        body: Body,
    ) -> Result<ResponseHead, ExchangeError> {
        self.out.clear();
        self.upgrading = parts.headers.contains_key(http::header::UPGRADE);
        let framing = head::encode_request(
            parts,
            body.is_end_stream(),
            body.size_hint().exact(),
            &mut self.out,
        );
        let mut sending = Sending {
            written: 0,
            body: (framing != RequestFraming::Empty).then_some(body),
            chunked: framing == RequestFraming::Chunked,
            left: match framing {
                RequestFraming::Length(length) => length,
                _ => u64::MAX,
            },
            hold_head: matches!(framing, RequestFraming::Length(length) if length <= HOLD_HEAD_FOR),
            head_len: self.out.len(),
            send_failed: None,
        };
        let method = &parts.method;
        let head = poll_fn(|cx| self.poll_exchange(cx, &mut sending, method)).await?;
        if sending.body.is_some() || sending.written < self.out.len() {
            self.reusable = false;
        }
        if !head.keep_alive {
            self.reusable = false;
        }
        Ok(head)
    }

    fn poll_exchange(
        &mut self,
        cx: &mut Context<'_>,
        sending: &mut Sending,
        method: &Method,
    ) -> Poll<Result<ResponseHead, ExchangeError>> {
        loop {
            match self.poll_head(cx, method) {
                Poll::Ready(Ok(head)) => return Poll::Ready(Ok(head)),
                // Nothing usable came after a failed write: report the write's failure.
                Poll::Ready(Err(ExchangeError::Closed(None))) if sending.send_failed.is_some() => {
                    return Poll::Ready(Err(ExchangeError::Closed(sending.send_failed.take())));
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                // The upstream stopped reading: only its answer (or the end) can come now.
                Poll::Pending if sending.send_failed.is_some() => return Poll::Pending,
                Poll::Pending => {}
            }
            // Gather what the body has ready, then write it in one go.
            while let Some(body) = sending.body.as_mut()
                && self.out.len() - sending.written < WRITE_BATCH
            {
                match Pin::new(body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => {
                            if let Err(error) = sending.push(&data, &mut self.out) {
                                self.reusable = false;
                                return Poll::Ready(Err(error));
                            }
                        }
                        Err(frame) => {
                            if sending.chunked {
                                framing::last_chunk(frame.trailers_ref(), &mut self.out);
                                sending.body = None;
                            }
                        }
                    },
                    Poll::Ready(Some(Err(error))) => {
                        self.reusable = false;
                        return Poll::Ready(Err(ExchangeError::RequestBody(error)));
                    }
                    Poll::Ready(None) => {
                        if sending.chunked {
                            framing::last_chunk(None, &mut self.out);
                        } else if sending.left != 0 && sending.left != u64::MAX {
                            self.reusable = false;
                            return Poll::Ready(Err(ExchangeError::RequestBody(
                                "the request body ended before its Content-Length".into(),
                            )));
                        }
                        sending.body = None;
                    }
                    Poll::Pending => break,
                }
            }
            // A small body that hyper hands over a moment after the head (it decodes the body
            // only once the service has been called) goes out with the head in one write: one
            // send, one wake-up of the upstream, instead of two of each.
            if sending.hold_head && sending.body.is_some() && self.out.len() == sending.head_len {
                return Poll::Pending;
            }
            sending.hold_head = false;
            if sending.written < self.out.len() {
                match self.io.poll_send(cx, &self.out[sending.written..]) {
                    Poll::Ready(Ok(0)) => {
                        self.stop_sending(sending, io::ErrorKind::WriteZero.into());
                        continue;
                    }
                    Poll::Ready(Ok(n)) => {
                        sending.written += n;
                        if sending.written == self.out.len() {
                            self.out.clear();
                            sending.written = 0;
                        }
                        continue;
                    }
                    Poll::Ready(Err(error)) => {
                        self.stop_sending(sending, error);
                        continue;
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Everything ready is written: wait for the body or the response.
            return Poll::Pending;
        }
    }

    /// A write failed: the upstream stopped reading. Nothing more is sent; the exchange waits
    /// for what the upstream may have answered before it stopped.
    fn stop_sending(&mut self, sending: &mut Sending, error: io::Error) {
        self.reusable = false;
        self.out.clear();
        sending.written = 0;
        sending.body = None;
        sending.hold_head = false;
        sending.send_failed = Some(error);
    }

    /// Reads until a final response head is in, skipping interim (1xx) responses.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
    ) -> Poll<Result<ResponseHead, ExchangeError>> {
        let mut fresh = self.start != self.end;
        loop {
            if fresh {
                let parse = if self.upgrading {
                    head::parse_upgrade_response
                } else {
                    head::parse_response
                };
                match parse(&self.buf[self.start..self.end], method) {
                    Ok(Parsed::Head(head, len)) => {
                        self.start += len;
                        return Poll::Ready(Ok(head));
                    }
                    Ok(Parsed::Interim(len)) => {
                        self.start += len;
                        continue;
                    }
                    Ok(Parsed::Partial) if self.end - self.start >= MAX_HEAD => {
                        self.reusable = false;
                        return Poll::Ready(Err(HeadError("response head too large").into()));
                    }
                    Ok(Parsed::Partial) => {}
                    Err(error) => {
                        self.reusable = false;
                        return Poll::Ready(Err(error.into()));
                    }
                }
            }
            let had = self.end - self.start;
            match self.poll_fill(cx, MAX_HEAD) {
                Poll::Ready(Ok(0)) => {
                    self.reusable = false;
                    return Poll::Ready(Err(if had == 0 {
                        ExchangeError::Closed(None)
                    } else {
                        HeadError("connection closed inside the response head").into()
                    }));
                }
                Poll::Ready(Ok(_)) => fresh = true,
                Poll::Ready(Err(error)) => {
                    self.reusable = false;
                    return Poll::Ready(Err(if had == 0 {
                        ExchangeError::Closed(Some(error))
                    } else {
                        ExchangeError::Io(error)
                    }));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads more bytes after `end`, making room first; `Ok(0)` is the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<io::Result<usize>> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            } else if self.buf.len() < max {
                self.buf.resize((self.buf.len() * 2).min(max), 0);
            }
        }
        match self.io.poll_recv(cx, &mut self.buf[self.end..]) {
            Poll::Ready(Ok(n)) => {
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The whole body, when it has a length and has already arrived with the head.
    pub(super) fn take_whole_body(&mut self, decoder: &mut framing::Decoder) -> Option<Bytes> {
        let framing::Decoder::Length(length) = *decoder else {
            return None;
        };
        let length = usize::try_from(length).ok()?;
        if self.end - self.start < length {
            return None;
        }
        let body = Bytes::copy_from_slice(&self.buf[self.start..self.start + length]);
        self.start += length;
        *decoder = framing::Decoder::Done;
        Some(body)
    }

    /// The next piece of the response body decoded by `decoder`; `None` at its end.
    pub(super) fn poll_body(
        &mut self,
        cx: &mut Context<'_>,
        decoder: &mut framing::Decoder,
    ) -> Poll<Option<Result<BodyPiece, BoxError>>> {
        loop {
            if decoder.is_done() {
                return Poll::Ready(None);
            }
            if self.start != self.end {
                let input = &self.buf[self.start..self.end];
                match decoder.decode(input) {
                    Ok((used, piece)) => {
                        let piece = piece.map(|piece| match piece {
                            Piece::Data(range) => {
                                BodyPiece::Data(Bytes::copy_from_slice(&input[range]))
                            }
                            Piece::Trailers(trailers) => BodyPiece::Trailers(trailers),
                        });
                        self.start += used;
                        if let Some(piece) = piece {
                            return Poll::Ready(Some(Ok(piece)));
                        }
                        if used > 0 {
                            continue;
                        }
                    }
                    Err(error) => return Poll::Ready(Some(Err(self.broken(error)))),
                }
            }
            match std::task::ready!(self.poll_fill(cx, READ_CHUNK)) {
                Ok(0) if matches!(decoder, framing::Decoder::Eof) => {
                    self.reusable = false;
                    *decoder = framing::Decoder::Done;
                }
                Ok(0) => {
                    let closed = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside the response body",
                    );
                    return Poll::Ready(Some(Err(self.broken(closed))));
                }
                Ok(_) => {}
                Err(error) => return Poll::Ready(Some(Err(self.broken(error)))),
            }
        }
    }

    fn broken(&mut self, error: impl Into<BoxError>) -> BoxError {
        self.reusable = false;
        error.into()
    }
}

/// What a response body read gave.
#[derive(Debug)]
pub(super) enum BodyPiece {
    Data(Bytes),
    Trailers(HeaderMap),
}

/// The request body being sent.
struct Sending {
    /// How much of `Conn::out` is written.
    written: usize,
    /// `None` once the body (and its framing) is all in `Conn::out`.
    body: Option<Body>,
    chunked: bool,
    /// Bytes the `Content-Length` still allows (`u64::MAX`: not held to one).
    left: u64,
    /// The head waits for the body's first bytes (a body of known, small length).
    hold_head: bool,
    /// The length of the encoded head at the start of `Conn::out`.
    head_len: usize,
    /// Why the last write failed; nothing more is sent once it did.
    send_failed: Option<io::Error>,
}

/// Bodies up to this long, of known length, are sent with their head.
const HOLD_HEAD_FOR: u64 = 64 * 1024;

impl Sending {
    /// Frames `data` into `out`. A body longer than its `Content-Length` is refused: sending
    /// the extra bytes would make the upstream read them as the next request.
    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ExchangeError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            framing::chunk_header(data.len(), out);
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            if self.left != u64::MAX {
                self.left = (self.left.checked_sub(data.len() as u64)).ok_or_else(|| {
                    ExchangeError::RequestBody(
                        "the request body is longer than its Content-Length".into(),
                    )
                })?;
            }
            out.extend_from_slice(data);
        }
        Ok(())
    }
}
