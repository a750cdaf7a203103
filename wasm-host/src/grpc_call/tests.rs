//! A call's request and how each answer ends it.

use http::{HeaderMap, HeaderName};
use http_body_util::BodyExt;

use super::*;

fn exchange(
    status: u16,
    headers: &[(&str, &str)],
    trailers: &[(&str, &str)],
    body: &[u8],
) -> Exchange {
    let mut response = http::Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(*k, *v);
    }
    let (parts, ()) = response.body(()).unwrap().into_parts();
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    Exchange {
        parts,
        trailers: map,
        body: Bytes::copy_from_slice(body),
    }
}

#[tokio::test]
async fn the_request_is_a_framed_post_with_the_grpc_headers_and_the_metadata() {
    let metadata = vec![
        (b"x-tenant".to_vec(), b"blue".to_vec()),
        (b"content-type".to_vec(), b"text/plain".to_vec()),
        (b":authority".to_vec(), b"ignored".to_vec()),
    ];
    let request = request(
        "127.0.0.1:9",
        "grpc.health.v1.Health",
        "Check",
        &metadata,
        b"\x0a\x01a",
        Duration::from_millis(250),
    )
    .unwrap();
    assert_eq!(
        request.uri(),
        "http://127.0.0.1:9/grpc.health.v1.Health/Check"
    );
    assert_eq!(request.method(), http::Method::POST);
    let headers = request.headers();
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["te"], "trailers");
    assert_eq!(headers["grpc-timeout"], "250m");
    assert_eq!(headers["x-tenant"], "blue");
    assert_eq!(headers.get_all("content-type").iter().count(), 1);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"\x00\x00\x00\x00\x03\x0a\x01a");
}

#[test]
fn names_with_path_characters_or_bad_metadata_are_refused() {
    let t = Duration::from_secs(1);
    assert!(request("a:1", "svc/x", "M", &[], b"", t).is_none());
    assert!(request("a:1", "svc", "", &[], b"", t).is_none());
    let bad = vec![(b"x-bad".to_vec(), b"line\nbreak".to_vec())];
    assert!(request("a:1", "svc", "M", &bad, b"", t).is_none());
}

#[test]
fn an_ok_answer_is_its_message_and_everything_else_a_close_with_a_status() {
    let ok = exchange(
        200,
        &[],
        &[("grpc-status", "0")],
        b"\x00\x00\x00\x00\x02\x08\x01",
    );
    assert_eq!(
        end(Ok(ok)),
        GrpcEnd::Message(Bytes::from_static(b"\x08\x01"))
    );

    let not_found = exchange(
        200,
        &[("grpc-status", "5"), ("grpc-message", "unknown%20service")],
        &[],
        b"",
    );
    assert_eq!(end(Ok(not_found)), GrpcEnd::close(5, "unknown service"));

    let empty = exchange(200, &[], &[("grpc-status", "0")], b"");
    assert!(matches!(
        end(Ok(empty)),
        GrpcEnd::Close {
            status: code::INTERNAL,
            ..
        }
    ));
    let compressed = exchange(200, &[], &[("grpc-status", "0")], b"\x01\x00\x00\x00\x00");
    assert!(matches!(
        end(Ok(compressed)),
        GrpcEnd::Close {
            status: code::INTERNAL,
            ..
        }
    ));
    let no_status = exchange(200, &[], &[], b"\x00\x00\x00\x00\x00");
    assert!(matches!(
        end(Ok(no_status)),
        GrpcEnd::Close {
            status: code::UNKNOWN,
            ..
        }
    ));
    let http_503 = exchange(503, &[], &[], b"");
    assert!(matches!(
        end(Ok(http_503)),
        GrpcEnd::Close {
            status: code::UNAVAILABLE,
            ..
        }
    ));

    let status = |e| match e {
        GrpcEnd::Close { status, .. } => status,
        GrpcEnd::Message(_) => code::OK,
    };
    assert_eq!(
        status(end(Err(CallResult::Timeout))),
        code::DEADLINE_EXCEEDED
    );
    assert_eq!(status(end(Err(CallResult::Refused))), code::UNAVAILABLE);
    assert_eq!(status(end(Err(CallResult::Overflow))), code::UNAVAILABLE);
    assert_eq!(status(end(Err(CallResult::Error))), code::INTERNAL);
}
