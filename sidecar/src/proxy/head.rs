//! Message heads on the upstream side: the request head the sidecar writes, and the response
//! head it reads, with the framing each implies (RFC 9112 §6.3).

use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version,
    header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING},
    request,
};

use super::framing::{Chunked, Decoder};

/// Most header fields a response head may carry (hyper's default).
const MAX_HEADERS: usize = 100;

/// How the request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RequestFraming {
    /// No body.
    Empty,
    /// `Content-Length`: the bytes as they are, exactly this many.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Writes the request line and header fields of `parts` into `out`, adding the framing header
/// the body needs: the client's `Content-Length` is kept; a body of known size gets one; any
/// other body is sent chunked. Hop-by-hop fields must already be gone.
pub(super) fn encode_request(
    parts: &request::Parts,
    body_is_empty: bool,
    exact_size: Option<u64>,
    out: &mut Vec<u8>,
) -> RequestFraming {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() {
        b"/"
    } else {
        target.as_bytes()
    });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let declared = parts.headers.get(CONTENT_LENGTH).map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let framing = if let Some(declared) = declared {
        match declared {
            Some(0) => RequestFraming::Empty,
            Some(length) => RequestFraming::Length(length),
            // hyper refuses a client's malformed length; one a plugin set is sent as is and
            // the body is not held to it.
            None if body_is_empty => RequestFraming::Empty,
            None => RequestFraming::Length(u64::MAX),
        }
    } else if body_is_empty {
        // Methods that normally carry a body say explicitly that this one is empty.
        if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        RequestFraming::Empty
    } else if let Some(size) = exact_size {
        use std::io::Write as _;
        let _ = write!(out, "content-length: {size}\r\n");
        RequestFraming::Length(size)
    } else {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
        RequestFraming::Chunked
    };
    out.extend_from_slice(b"\r\n");
    framing
}

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// How to read the body.
    pub decoder: Decoder,
    /// Whether the connection can carry another request once this response is read.
    pub keep_alive: bool,
}

/// What parsing the start of a buffer gave.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A final response head of this many bytes.
    Head(ResponseHead, usize),
    /// An interim (1xx) response of this many bytes, to skip.
    Interim(usize),
    /// The head is not complete yet.
    Partial,
}

/// Why a response head is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed upstream response head: {0}")]
pub(crate) struct HeadError(pub &'static str);

/// Parses a response head from the start of `input`, for a request with `method`.
///
/// # Errors
/// A head that isn't HTTP/1.x, has too many or malformed fields, asks for a protocol switch,
/// or has an unusable `Content-Length`.
pub(super) fn parse_response(input: &[u8], method: &Method) -> Result<Parsed, HeadError> {
    parse(input, method, false)
}

/// [`parse_response`] for a request that asked for a protocol switch (`Upgrade`): a 101 is
/// then its final response, after which the connection belongs to the new protocol.
///
/// # Errors
/// As [`parse_response`], but a 101 is no error.
pub(super) fn parse_upgrade_response(input: &[u8], method: &Method) -> Result<Parsed, HeadError> {
    parse(input, method, true)
}

fn parse(input: &[u8], method: &Method, upgrading: bool) -> Result<Parsed, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError("too many header fields")),
        Err(_) => return Err(HeadError("not an HTTP/1.x response")),
    };
    let code = response.code.unwrap_or_default();
    if code == 101 && !upgrading {
        return Err(HeadError("a protocol switch the request did not ask for"));
    }
    if (100..200).contains(&code) && code != 101 {
        return Ok(Parsed::Interim(len));
    }
    // RFC 9110 §15: status codes are 100 to 599; `http` takes any three digits, but a 600 or
    // a 999 means nothing to a client, so it is the upstream's protocol error (502).
    if code > 599 {
        return Err(HeadError("status code above 599"));
    }
    let status = StatusCode::from_u16(code).map_err(|_| HeadError("bad status code"))?;
    let version = if response.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // One copy of the head; every value is a slice of it.
    let head = Bytes::copy_from_slice(&input[..len]);
    let base = input.as_ptr() as usize;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for field in response.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError("bad header name"))?;
        let start = field.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + field.value.len()))
            .map_err(|_| HeadError("bad header value"))?;
        headers.append(name, value);
    }
    let mut keep_alive = match version {
        Version::HTTP_10 => has_token(&headers, CONNECTION, "keep-alive"),
        _ => !has_token(&headers, CONNECTION, "close"),
    };
    if code == 101 {
        // The bytes after the head are the new protocol's, not a body.
        keep_alive = false;
    }
    let decoder = if *method == Method::HEAD || code == 101 || code == 204 || code == 304 {
        Decoder::Done
    } else if headers.contains_key(TRANSFER_ENCODING) {
        // HTTP/1.0 has no transfer codings: its framing is faulty (RFC 9112 §6.1).
        if version == Version::HTTP_10 {
            return Err(HeadError("Transfer-Encoding in an HTTP/1.0 response"));
        }
        // Codings are ASCII tokens; with other bytes, readers disagree on whether the last one
        // is `chunked` (hyper reads to the close), so the framing is unknowable.
        if headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .any(|v| v.to_str().is_err())
        {
            return Err(HeadError("bad Transfer-Encoding"));
        }
        // A message with both: the length is ignored and the connection not reused (§6.3).
        if headers.remove(CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        if last_token_is(&headers, TRANSFER_ENCODING, "chunked") {
            Decoder::Chunked(Chunked::Size(Vec::new()))
        } else {
            keep_alive = false;
            Decoder::Eof
        }
    } else if headers.contains_key(CONTENT_LENGTH) {
        match content_length(&headers)? {
            0 => Decoder::Done,
            n => Decoder::Length(n),
        }
    } else {
        keep_alive = false;
        Decoder::Eof
    };
    Ok(Parsed::Head(
        ResponseHead {
            status,
            version,
            headers,
            decoder,
            keep_alive,
        },
        len,
    ))
}

/// The one `Content-Length` (repeated identical values are allowed, §8.6).
fn content_length(headers: &HeaderMap) -> Result<u64, HeadError> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(HeadError("bad Content-Length"));
            }
            let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return Err(HeadError("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    length.ok_or(HeadError("bad Content-Length"))
}

fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn last_token_is(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name)
        .last()
        .is_some_and(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
pub(super) mod differential;
#[cfg(test)]
mod tests;
