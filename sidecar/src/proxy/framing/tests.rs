//! The decoder on whole inputs and on the same inputs cut at every position.

#![allow(clippy::unwrap_used)]

use super::*;

/// Feeds `input` in pieces cut at `cuts`, as reads would deliver it: returns the body bytes, the
/// trailers, and how many input bytes were left over after the body.
fn run(
    mut decoder: Decoder,
    input: &[u8],
    cuts: &[usize],
) -> Result<(Vec<u8>, Option<HeaderMap>, usize), FramingError> {
    let mut body = Vec::new();
    let mut trailers = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut bounds = cuts.to_vec();
    bounds.push(input.len());
    let mut start = 0;
    for end in bounds {
        pending.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            let (used, piece) = decoder.decode(&pending)?;
            match piece {
                Some(Piece::Data(range)) => body.extend_from_slice(&pending[range]),
                Some(Piece::Trailers(map)) => trailers = Some(map),
                None => {}
            }
            pending.drain(..used);
            if used == 0 || decoder.is_done() {
                break;
            }
        }
        if decoder.is_done() {
            return Ok((body, trailers, pending.len() + (input.len() - start)));
        }
    }
    Err(FramingError("input ended before the body"))
}

const CHUNKED: &[u8] =
    b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nx-checksum: abc\r\nx-more: 1\r\n\r\nNEXT";

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let (body, trailers, left) =
        run(Decoder::Chunked(Chunked::Size(Vec::new())), CHUNKED, &[]).unwrap();
    assert_eq!(body, b"hello, world");
    let trailers = trailers.unwrap();
    assert_eq!(trailers["x-checksum"], "abc");
    assert_eq!(trailers["x-more"], "1");
    assert_eq!(left, 4, "bytes after the body are not the body's");
}

#[test]
fn chunked_body_cut_anywhere_decodes_the_same() {
    for cut in 1..CHUNKED.len() {
        for second in cut..CHUNKED.len() {
            let (body, trailers, _) = run(
                Decoder::Chunked(Chunked::Size(Vec::new())),
                CHUNKED,
                &[cut, second],
            )
            .unwrap();
            assert_eq!(body, b"hello, world", "cut at {cut} and {second}");
            assert_eq!(trailers.unwrap().len(), 2);
        }
    }
}

#[test]
fn chunked_body_without_trailers_and_with_upper_case_hex() {
    let input = b"A\r\n0123456789\r\n0\r\n\r\n";
    let (body, trailers, left) =
        run(Decoder::Chunked(Chunked::Size(Vec::new())), input, &[]).unwrap();
    assert_eq!(body, b"0123456789");
    assert!(trailers.is_none());
    assert_eq!(left, 0);
}

#[test]
fn malformed_chunked_bodies_are_errors() {
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"\r\nhello\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"11111111111111111\r\n",
    ] {
        assert!(
            run(Decoder::Chunked(Chunked::Size(Vec::new())), bad, &[]).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn an_endless_chunk_size_line_is_refused() {
    let line = vec![b'1'; MAX_LINE + 1];
    assert!(run(Decoder::Chunked(Chunked::Size(Vec::new())), &line, &[]).is_err());
}

#[test]
fn content_length_body_stops_at_its_length() {
    let (body, _, left) = run(Decoder::Length(5), b"helloEXTRA", &[2]).unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(left, 5);
}

#[test]
fn eof_delimited_body_takes_everything() {
    let mut decoder = Decoder::Eof;
    assert_eq!(
        decoder.decode(b"abc").unwrap(),
        (3, Some(Piece::Data(0..3)))
    );
    assert!(!decoder.is_done());
}

#[test]
fn chunk_encoding_round_trips_through_the_decoder() {
    let mut encoded = Vec::new();
    for data in [&b"hello"[..], b", ", b"world"] {
        chunk_header(data.len(), &mut encoded);
        encoded.extend_from_slice(data);
        encoded.extend_from_slice(b"\r\n");
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "42".parse().unwrap());
    last_chunk(Some(&trailers), &mut encoded);
    let (body, decoded, left) =
        run(Decoder::Chunked(Chunked::Size(Vec::new())), &encoded, &[]).unwrap();
    assert_eq!(body, b"hello, world");
    assert_eq!(decoded.unwrap()["x-sum"], "42");
    assert_eq!(left, 0);
}
