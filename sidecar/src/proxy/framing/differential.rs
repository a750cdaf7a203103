//! Differential tests of chunked body decoding against hyper's client on the same bytes and
//! reads (the harness and its list of where we are stricter: `head/differential.rs`; the
//! generators: `head/differential/generate.rs`): generated
//! chunked bodies, whole and then mutated inside the body only, so every case reaches the
//! decoder (chunk sizes, extensions, line ends, trailers).

#![allow(clippy::unwrap_used)]

use http::Method;
use proptest::prelude::*;

use crate::proxy::head::differential::agree;
use crate::proxy::head::differential::generate::{chunked, mutate, mutations};

const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300).prop_flat_map(|b| chunked(&b))
}

fn response(body: &[u8]) -> Vec<u8> {
    [HEAD, body].concat()
}

proptest! {
    // 1,024 cases: 0.24 to 0.26 s in a debug build on 2 shared cores, hyper in the loop.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn chunked_bodies_decode_as_hyper_decodes_them(
        body in body(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let accepted = agree(&Method::GET, &response(&body), &cuts)
            .map_err(TestCaseError::fail)?;
        prop_assert!(accepted);
    }
}

proptest! {
    // 4,096 cases: 0.84 to 0.90 s in a debug build.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn mutated_chunked_bodies_are_never_read_differently_from_hyper(
        body in body(),
        mutations in mutations(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let body = mutate(body, &mutations);
        agree(&Method::GET, &response(&body), &cuts).map_err(TestCaseError::fail)?;
    }
}

/// The classes the brief names, each once, read the same way by both (or refused by us for a
/// listed reason): bare LF and CR in every framing line, bad and overflowing sizes.
#[test]
fn smuggling_classes_in_chunked_framing() {
    for body in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\n\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"5\r\r\nhello\r\n0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        b"5\x0c\r\nhello\r\n0\r\n\r\n",
        b"5 \t;x\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nx: a\nb: c\r\n\r\n",
        b"5\r\nhello\r\n0\r\nx: a\n\r\n\r\n",
        b"5\r\nhello\r\n0\r\nx: a\rb\r\n\r\n",
        b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"10000000000000000\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
    ] {
        let input = response(body);
        for cut in 0..=input.len() {
            agree(&Method::GET, &input, &[cut]).unwrap();
        }
    }
}

/// Regressions found by the properties above: bare LF as a chunk line end (size line, after the
/// data, in the trailers), a bare CR inside a size line or an extension, and a form feed after
/// the size were all taken, where hyper refuses them (only CRLF ends a chunk line, RFC 9112 §7.1).
#[test]
fn bare_line_ends_and_stray_bytes_in_chunk_lines_are_refused() {
    for body in [
        &b"5\nhello\r\n0\r\n\r\n"[..],
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\n\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"5\r\r\nhello\r\n0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        b"5\x0c\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nx: a\n\r\n\r\n",
    ] {
        let input = response(body);
        assert!(
            crate::proxy::head::differential::ours(&Method::GET, &[&input]).is_err(),
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
}
