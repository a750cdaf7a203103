//! Generators for the differential tests: valid HTTP/1.1 responses (status, reason, fields,
//! framing by length, chunked with extensions and trailers, or the close) and the mutations
//! that make them hostile.

use http::Method;
use proptest::prelude::*;

/// Field names (tokens, RFC 9110 §5.6.2) other than the framing ones, which are chosen apart.
fn field_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_filter("framing field", |n| {
        !["content-length", "transfer-encoding"].contains(&n.to_ascii_lowercase().as_str())
    })
}

/// Field values: VCHAR, obs-text, inner SP and HTAB (RFC 9110 §5.5).
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21u8..=0x7e,
        1 => Just(b' '),
        1 => Just(b'\t'),
        1 => 0x80u8..=0xff,
    ];
    prop::collection::vec(byte, 0..24).prop_map(|v| v.trim_ascii().to_vec())
}

fn fields() -> impl Strategy<Value = Vec<u8>> {
    let connection = prop_oneof![Just(""), Just("close"), Just("keep-alive")];
    (
        prop::collection::vec((field_name(), field_value()), 0..8),
        connection,
    )
        .prop_map(|(fields, connection)| {
            let mut out = Vec::new();
            for (name, value) in fields {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            }
            if !connection.is_empty() {
                out.extend_from_slice(format!("Connection: {connection}\r\n").as_bytes());
            }
            out
        })
}

/// A status line's reason phrase: HTAB, SP, VCHAR, obs-text (RFC 9112 §4).
fn reason() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![8 => 0x21u8..=0x7e, 1 => Just(b' '), 1 => 0x80u8..=0xff];
    prop::collection::vec(byte, 0..16)
}

/// A chunked body: chunks with optional extensions and LWS, in either hex case with leading
/// zeros, then trailers.
pub(in crate::proxy) fn chunked(body: &[u8]) -> impl Strategy<Value = Vec<u8>> + use<> {
    let body = body.to_vec();
    let len = body.len();
    (
        prop::collection::vec(1usize..64, 0..8),
        prop::collection::vec(
            (
                any::<bool>(),
                0usize..3,
                prop_oneof![
                    Just(String::new()),
                    Just(";a=b".to_owned()),
                    Just(" ;name=\"q;v\"".to_owned()),
                    Just(";x;y=1".to_owned())
                ],
            ),
            9,
        ),
        prop::collection::vec((field_name(), field_value()), 0..3),
    )
        .prop_map(move |(sizes, shapes, trailers)| {
            let mut out = Vec::new();
            let mut at = 0;
            let mut chunk = |data: &[u8], (upper, zeros, ext): &(bool, usize, String)| {
                let hex = if *upper {
                    format!("{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                out.extend_from_slice("0".repeat(*zeros).as_bytes());
                out.extend_from_slice(hex.as_bytes());
                out.extend_from_slice(ext.as_bytes());
                out.extend_from_slice(b"\r\n");
                if !data.is_empty() {
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
            };
            for (size, shape) in sizes.iter().zip(&shapes) {
                if at < len {
                    let end = (at + size).min(len);
                    chunk(&body[at..end], shape);
                    at = end;
                }
            }
            if at < len {
                chunk(&body[at..], &shapes[8]);
            }
            chunk(&[], &shapes[0]);
            for (name, value) in trailers {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out
        })
}

/// How a generated body is framed.
#[derive(Clone, Copy, Debug)]
enum Framing {
    Length,
    RepeatedLength,
    Chunked,
    GzipChunked,
    Close,
}

/// A whole valid response (1xx heads first, sometimes) for GET or HEAD.
pub(in crate::proxy) fn response() -> impl Strategy<Value = (Method, Vec<u8>)> {
    let framing = prop_oneof![
        Just(Framing::Length),
        Just(Framing::RepeatedLength),
        Just(Framing::Chunked),
        Just(Framing::GzipChunked),
        Just(Framing::Close),
    ];
    let status = prop_oneof![
        6 => 200u16..=599,
        1 => Just(204u16),
        1 => Just(304u16),
    ];
    let method = prop_oneof![4 => Just(Method::GET), 1 => Just(Method::HEAD)];
    (
        method,
        prop::collection::vec(prop_oneof![Just(100u16), Just(102), Just(103)], 0..2),
        any::<bool>(),
        status,
        reason(),
        fields(),
        framing,
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_flat_map(
            |(method, interims, http10, status, reason, fields, framing, body)| {
                let chunked = chunked(&body);
                (
                    Just((
                        method, interims, http10, status, reason, fields, framing, body,
                    )),
                    chunked,
                )
            },
        )
        .prop_map(
            |((method, interims, http10, status, reason, fields, framing, body), chunked)| {
                let mut out = Vec::new();
                for code in interims {
                    out.extend_from_slice(format!("HTTP/1.1 {code} Wait\r\n\r\n").as_bytes());
                }
                let version = if http10 { "1.0" } else { "1.1" };
                out.extend_from_slice(format!("HTTP/{version} {status} ").as_bytes());
                out.extend_from_slice(&reason);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&fields);
                let len = body.len();
                let payload = match framing {
                    Framing::Length => {
                        out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
                        body
                    }
                    Framing::RepeatedLength => {
                        let field = format!("content-length: {len} , {len}\r\n");
                        out.extend_from_slice(field.as_bytes());
                        out.extend_from_slice(format!("Content-Length: {len}\r\n").as_bytes());
                        body
                    }
                    Framing::Chunked | Framing::GzipChunked => {
                        let coding = match framing {
                            Framing::Chunked => "chunked",
                            _ => "gzip, Chunked",
                        };
                        out.extend_from_slice(
                            format!("Transfer-Encoding: {coding}\r\n").as_bytes(),
                        );
                        chunked
                    }
                    Framing::Close => body,
                };
                out.extend_from_slice(b"\r\n");
                if method != Method::HEAD && status != 204 && status != 304 {
                    out.extend_from_slice(&payload);
                }
                (method, out)
            },
        )
}

/// One mutation: a byte replaced, a byte removed, or a snippet put in (the smuggling classes:
/// bare CR and LF, obs-fold, conflicting and duplicate lengths, bad and overflowing sizes).
#[derive(Clone, Debug)]
pub(in crate::proxy) enum Mutation {
    Replace(usize, u8),
    Remove(usize),
    Insert(usize, &'static [u8]),
}

const SNIPPETS: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n ",
    b"\n\t",
    b" ",
    b"\t",
    b";",
    b",",
    b"0",
    b"f",
    b"\x0c",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"Content-Length: 3\r\n",
    b"Content-Length: 1, 2\r\n",
    b"content-length: 00000000000000000000007\r\n",
    b"Content-Length: +5\r\n",
    b"Content-Length: 18446744073709551616\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: chunked, identity\r\n",
    b"Transfer-Encoding: \r\n",
    b"x-folded: a\r\n b\r\n",
    b"ffffffffffffffffff\r\n",
    b"00000000000000000001\r\n",
    b"-1\r\n",
    b"0x10\r\n",
    b"1\r\nA\r\n",
    b"0\r\n\r\n",
    b"HTTP/1.1 101 Switching\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
];

pub(in crate::proxy) fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), prop::sample::select(SNIPPETS))
            .prop_map(|(at, s)| Mutation::Insert(at, s)),
    ];
    prop::collection::vec(one, 1..4)
}

pub(in crate::proxy) fn mutate(mut input: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        match *mutation {
            Mutation::Replace(at, b) if !input.is_empty() => {
                let at = at % input.len();
                input[at] = b;
            }
            Mutation::Remove(at) if !input.is_empty() => {
                input.remove(at % input.len());
            }
            Mutation::Insert(at, snippet) => {
                let at = at % (input.len() + 1);
                input.splice(at..at, snippet.iter().copied());
            }
            _ => {}
        }
    }
    input
}
