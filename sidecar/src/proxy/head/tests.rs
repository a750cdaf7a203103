//! Request heads as written, response heads as read, and the framing each gives.

#![allow(clippy::unwrap_used)]

use super::*;

fn head(input: &[u8], method: &Method) -> ResponseHead {
    match parse_response(input, method).unwrap() {
        Parsed::Head(head, len) => {
            assert_eq!(len, input.len());
            head
        }
        other => panic!("not a final head: {other:?}"),
    }
}

#[test]
fn request_head_keeps_fields_and_adds_framing() {
    let (mut parts, ()) = http::Request::post("/items?x=1")
        .body(())
        .unwrap()
        .into_parts();
    parts.headers.insert("host", "api".parse().unwrap());
    let mut out = Vec::new();
    assert_eq!(
        encode_request(&parts, false, None, &mut out),
        RequestFraming::Chunked
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "POST /items?x=1 HTTP/1.1\r\nhost: api\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut out = Vec::new();
    assert_eq!(
        encode_request(&parts, false, Some(3), &mut out),
        RequestFraming::Length(3)
    );
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("content-length: 3\r\n\r\n")
    );
    let mut out = Vec::new();
    assert_eq!(
        encode_request(&parts, true, None, &mut out),
        RequestFraming::Empty
    );
    assert!(
        String::from_utf8(out)
            .unwrap()
            .ends_with("content-length: 0\r\n\r\n")
    );
}

#[test]
fn get_without_body_gets_no_framing_field() {
    let (parts, ()) = http::Request::get("/hello").body(()).unwrap().into_parts();
    let mut out = Vec::new();
    assert_eq!(
        encode_request(&parts, true, Some(0), &mut out),
        RequestFraming::Empty
    );
    assert_eq!(out, b"GET /hello HTTP/1.1\r\n\r\n");
}

#[test]
fn response_framing_follows_rfc_9112() {
    let get = Method::GET;
    let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", &get);
    assert!(matches!(h.decoder, Decoder::Length(5)) && h.keep_alive);
    let h = head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
        &get,
    );
    assert!(matches!(h.decoder, Decoder::Chunked(_)) && h.keep_alive);
    let h = head(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n",
        &get,
    );
    assert!(matches!(h.decoder, Decoder::Chunked(_)) && !h.keep_alive);
    assert!(!h.headers.contains_key(CONTENT_LENGTH));
    let h = head(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n",
        &get,
    );
    assert!(!h.keep_alive);
    let h = head(b"HTTP/1.1 200 OK\r\n\r\n", &get);
    assert!(matches!(h.decoder, Decoder::Eof) && !h.keep_alive);
    let h = head(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n", &get);
    assert!(!h.keep_alive && h.version == Version::HTTP_10);
    let h = head(b"HTTP/1.1 204 No Content\r\n\r\n", &get);
    assert!(h.decoder.is_done());
    let h = head(
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
        &Method::HEAD,
    );
    assert!(h.decoder.is_done());
    assert_eq!(h.headers[CONTENT_LENGTH], "10");
    let h = head(b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\n", &get);
    assert!(matches!(h.decoder, Decoder::Length(3)));
}

#[test]
fn interim_partial_and_bad_heads() {
    let get = Method::GET;
    assert!(matches!(
        parse_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", &get).unwrap(),
        Parsed::Interim(25)
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 200 OK\r\nx-a:", &get).unwrap(),
        Parsed::Partial
    ));
    assert!(matches!(
        parse_response(b"HTTP/1.1 599 Last\r\ncontent-length: 0\r\n\r\n", &get).unwrap(),
        Parsed::Head(..)
    ));
    for bad in [
        &b"garbage\r\n\r\n"[..],
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
        b"HTTP/1.1 600 Beyond\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 999 Nine\r\ncontent-length: 0\r\n\r\n",
    ] {
        assert!(
            parse_response(bad, &get).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}
