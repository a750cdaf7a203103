//! HTTP/1.1 message framing on the upstream side (RFC 9112 §6 and §7): how long a response body
//! is, decoding it (`Content-Length`, `chunked`, or until the connection closes), and chunk
//! encoding for request bodies of unknown length.
//!
//! The decoder works on whatever bytes have arrived and says how many it took, so a body can
//! be split anywhere across reads.

use std::ops::Range;

use http::HeaderMap;

/// Why a response body can't be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed upstream response body: {0}")]
pub(super) struct FramingError(pub &'static str);

/// What [`Decoder::decode`] found in its input.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// Body bytes: this range of the input.
    Data(Range<usize>),
    /// The trailer section of a chunked body (only when it has fields).
    Trailers(HeaderMap),
}

/// Longest chunk-size line (with extensions) and trailer section accepted.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 64 * 1024;

/// Decodes one response body.
#[derive(Debug)]
pub(super) enum Decoder {
    /// `Content-Length`: this many bytes left.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// Delimited by the end of the connection.
    Eof,
    /// Nothing more to read.
    Done,
}

/// Where a chunked decoder is.
#[derive(Debug)]
pub(super) enum Chunked {
    /// Reading a chunk-size line (kept until its LF).
    Size(Vec<u8>),
    /// Inside a chunk: this many data bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd(Vec<u8>),
    /// After the last chunk: the trailer section, up to its empty line.
    Trailers(Vec<u8>),
}

impl Decoder {
    /// Whether the body is complete.
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Self::Done)
    }

    /// Takes what it can from `input`: returns how many bytes it consumed and, when it has one,
    /// a piece to hand on. Call again with the rest; `(0, None)` means it needs more input.
    ///
    /// # Errors
    /// Framing the body can't be read with (a bad chunk size, a missing CRLF, oversized lines).
    pub(super) fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Piece>), FramingError> {
        match self {
            Self::Done => Ok((0, None)),
            Self::Eof => Ok((
                input.len(),
                (!input.is_empty()).then(|| Piece::Data(0..input.len())),
            )),
            Self::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= take as u64;
                if *left == 0 {
                    *self = Self::Done;
                }
                Ok((take, (take > 0).then_some(Piece::Data(0..take))))
            }
            Self::Chunked(state) => {
                let mut used = 0;
                loop {
                    let rest = &input[used..];
                    if rest.is_empty() {
                        return Ok((used, None));
                    }
                    match state {
                        Chunked::Size(line) => {
                            let Some(lf) =
                                take_line(line, rest, MAX_LINE, "chunk size line too long")?
                            else {
                                return Ok((input.len(), None));
                            };
                            used += lf;
                            let size = chunk_size(line)?;
                            *state = if size == 0 {
                                Chunked::Trailers(Vec::new())
                            } else {
                                Chunked::Data(size)
                            };
                        }
                        Chunked::Data(left) => {
                            let take = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                            *left -= take as u64;
                            if *left == 0 {
                                *state = Chunked::DataEnd(Vec::new());
                            }
                            return Ok((used + take, Some(Piece::Data(used..used + take))));
                        }
                        Chunked::DataEnd(line) => {
                            let Some(lf) =
                                take_line(line, rest, 2, "missing CRLF after chunk data")?
                            else {
                                return Ok((input.len(), None));
                            };
                            used += lf;
                            if line.as_slice() != b"\r\n" {
                                return Err(FramingError("missing CRLF after chunk data"));
                            }
                            *state = Chunked::Size(Vec::new());
                        }
                        Chunked::Trailers(section) => {
                            let Some(end) = trailers_end(section, rest)? else {
                                return Ok((input.len(), None));
                            };
                            used += end;
                            let trailers = parse_trailers(section)?;
                            *self = Self::Done;
                            return Ok((used, trailers.map(Piece::Trailers)));
                        }
                    }
                }
            }
        }
    }
}

/// Appends `input` to `line` up to and including the first LF; `Some(bytes taken)` once the LF
/// is in.
fn take_line(
    line: &mut Vec<u8>,
    input: &[u8],
    max: usize,
    too_long: &'static str,
) -> Result<Option<usize>, FramingError> {
    let (taken, complete) = match input.iter().position(|&b| b == b'\n') {
        Some(lf) => (lf + 1, true),
        None => (input.len(), false),
    };
    if line.len() + taken > max {
        return Err(FramingError(too_long));
    }
    line.extend_from_slice(&input[..taken]);
    Ok(complete.then_some(taken))
}

/// The size of a chunk-size line: hex digits, optional `;extensions`, CRLF. CRLF only, with no
/// CR elsewhere: where a line ends must not depend on the reader (RFC 9112 §7.1, §2.2).
fn chunk_size(line: &[u8]) -> Result<u64, FramingError> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or(FramingError("chunk size line without CRLF"))?;
    if line.contains(&b'\r') {
        return Err(FramingError("bare CR in a chunk size line"));
    }
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    // Only SP and HTAB may follow the size (BWS before `;`, RFC 9112 §7.1.1).
    let end = digits
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |last| last + 1);
    let digits = &digits[..end];
    if digits.is_empty() || digits.len() > 16 {
        return Err(FramingError("bad chunk size"));
    }
    digits.iter().try_fold(0u64, |size, &b| {
        let digit = (b as char)
            .to_digit(16)
            .ok_or(FramingError("bad chunk size"))?;
        Ok(size << 4 | u64::from(digit))
    })
}

/// Accumulates the trailer section; `Some(bytes taken)` once its empty line is in. Lines end
/// with CRLF only, as in chunk lines: with a bare LF, readers disagree on where the body ends.
fn trailers_end(section: &mut Vec<u8>, input: &[u8]) -> Result<Option<usize>, FramingError> {
    for (i, &b) in input.iter().enumerate() {
        let after_cr = section.last() == Some(&b'\r');
        section.push(b);
        if section.len() > MAX_TRAILERS {
            return Err(FramingError("trailer section too large"));
        }
        match (after_cr, b) {
            (false, b'\n') => return Err(FramingError("bare LF in the trailer section")),
            (true, b) if b != b'\n' => return Err(FramingError("bare CR in the trailer section")),
            _ => {}
        }
        if b == b'\n' && (section.ends_with(b"\r\n\r\n") || section.as_slice() == b"\r\n") {
            return Ok(Some(i + 1));
        }
    }
    Ok(None)
}

/// The trailer fields, or `None` when the section is empty.
fn parse_trailers(section: &[u8]) -> Result<Option<HeaderMap>, FramingError> {
    if section == b"\r\n" {
        return Ok(None);
    }
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let httparse::Status::Complete((_, fields)) = httparse::parse_headers(section, &mut fields)
        .map_err(|_| FramingError("malformed trailer section"))?
    else {
        return Err(FramingError("malformed trailer section"));
    };
    let mut trailers = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = http::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| FramingError("malformed trailer name"))?;
        let value = http::HeaderValue::from_bytes(field.value)
            .map_err(|_| FramingError("malformed trailer value"))?;
        trailers.append(name, value);
    }
    Ok(Some(trailers))
}

/// Writes one chunk's framing around `len` bytes of data: the size line before, CRLF after.
pub(super) fn chunk_header(len: usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(out, "{len:x}\r\n");
}

/// The last chunk and the trailer section.
pub(super) fn last_chunk(trailers: Option<&HeaderMap>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers.into_iter().flatten() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
