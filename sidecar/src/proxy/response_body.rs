//! The upstream's response body as the client receives it: read straight from the upstream
//! connection, which goes back to its pool once the body has been read to the end.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::{
    conn::{BodyPiece, Conn},
    framing::Decoder,
    pool::Pool,
};
use crate::body::BoxError;

/// A response body being read from its connection.
pub struct UpstreamBody {
    /// `None` once the body ended or failed.
    conn: Option<(Conn, Pool)>,
    decoder: Decoder,
}

impl UpstreamBody {
    pub fn new(conn: Conn, pool: Pool, decoder: Decoder) -> Self {
        Self {
            conn: Some((conn, pool)),
            decoder,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some((conn, _)) = this.conn.as_mut() else {
            return Poll::Ready(None);
        };
        let piece = ready!(conn.poll_body(cx, &mut this.decoder));
        match piece {
            Some(Ok(BodyPiece::Data(data))) => {
                if this.decoder.is_done()
                    && let Some((conn, pool)) = this.conn.take()
                {
                    pool.give_back(conn);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Ok(BodyPiece::Trailers(trailers))) => {
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Some(Err(error)) => {
                this.conn = None;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                if let Some((conn, pool)) = this.conn.take() {
                    pool.give_back(conn);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(left) => SizeHint::with_exact(left),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
