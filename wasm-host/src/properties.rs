//! `proxy_get_property`, with Envoy's encoding (what public plugins decode): strings as raw
//! bytes, integers as 8-byte little-endian, booleans as one byte, timestamps and durations as
//! i64 little-endian nanoseconds, maps in the pairs format. Paths are segments joined by NUL.
//! Anything unknown, or not yet known in this phase, is `None` (the guest sees `NotFound`).
//! Values written with `proxy_set_property` are returned for the same path.

use std::time::UNIX_EPOCH;

use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use super::abi::MapType;
use super::memory::Outgoing;
use super::pairs::{self, MapView};
use super::state::{HostState, Stream};

fn int(value: u64) -> Outgoing {
    Outgoing::from_slice(&value.to_le_bytes())
}

/// The declared Content-Length.
fn request_size(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn header(map: &HeaderMap, name: &[u8]) -> Option<Outgoing> {
    // CEL joins repeated headers with ','.
    let name = HeaderName::from_bytes(name).ok()?;
    let mut values = map.get_all(name).iter().map(HeaderValue::as_bytes);
    let first = Outgoing::from_slice(values.next()?);
    Some(values.fold(first, |mut joined, v| {
        joined.push(b',');
        joined.extend_from_slice(v);
        joined
    }))
}

fn map_property(map: &HeaderMap, rest: &[&[u8]]) -> Option<Outgoing> {
    match rest {
        [] => Some(Outgoing::from_vec(pairs::serialize_iter(|| {
            map.iter()
                .map(|(k, v)| (k.as_str().as_bytes(), v.as_bytes()))
        }))),
        [name] => header(map, name),
        _ => None,
    }
}

/// Header bytes as Envoy counts them for `*.total_size` (name, value, ": " and CRLF).
fn headers_size(view: MapView<'_>) -> u64 {
    view.pairs()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>() as u64
}

/// The value at `path` for the hostcall's effective context.
pub(crate) fn get(state: &HostState, path: &[u8]) -> Option<Outgoing> {
    // Paths have two or three segments: kept on the stack.
    let segments: SmallVec<[&[u8]; 4]> = path.split(|b| *b == 0).collect();
    let config = &state.plugin.config;
    match segments.as_slice() {
        [b"plugin_name"] => return Some(Outgoing::from_slice(config.name.as_bytes())),
        [b"plugin_root_id"] => return Some(Outgoing::from_slice(config.root_id().as_bytes())),
        [b"plugin_vm_id"] => return Some(Outgoing::from_slice(config.vm_id().as_bytes())),
        _ => {}
    }
    let stream = state.stream()?;
    if let Some(value) = stream.properties.get(path) {
        return Some(Outgoing::from_slice(value));
    }
    stream_property(stream, state.plugin.upstream.as_deref(), &segments)
}

fn stream_property(
    stream: &Stream,
    upstream: Option<&str>,
    segments: &[&[u8]],
) -> Option<Outgoing> {
    let info = &stream.info;
    let response = &stream.response;
    let request_headers = &*stream.request_headers;
    let text = |s: &str| Some(Outgoing::from_slice(s.as_bytes()));
    let path = info.path();
    match segments {
        [b"request", b"path"] => text(path),
        [b"request", b"url_path"] => text(path.split('?').next().unwrap_or_default()),
        [b"request", b"query"] => path
            .split_once('?')
            .map(|(_, q)| Outgoing::from_slice(q.split('#').next().unwrap_or_default().as_bytes())),
        [b"request", b"host"] => text(info.host(request_headers)),
        [b"request", b"scheme"] => text("http"),
        [b"request", b"method"] => text(info.method.as_str()),
        [b"request", b"protocol"] => text(info.protocol()),
        [b"request", b"id"] => header(request_headers, b"x-request-id"),
        [b"request", b"useragent"] => header(request_headers, b"user-agent"),
        [b"request", b"referer"] => header(request_headers, b"referer"),
        [b"request", b"time"] => Some(int(
            info.time().duration_since(UNIX_EPOCH).ok()?.as_nanos() as u64
        )),
        [b"request", b"duration"] => Some(int(response.duration?.as_nanos() as u64)),
        [b"request", b"size"] => Some(int(request_size(request_headers)?)),
        [b"request", b"total_size"] => {
            let headers = stream.with_map(MapType::RequestHeaders, headers_size)?;
            Some(int(request_size(request_headers).unwrap_or(0) + headers))
        }
        [b"request", b"headers", rest @ ..] => map_property(request_headers, rest),
        [b"response", b"code"] => Some(int(u64::from(response.code?))),
        [b"response", b"code_details"] => text(response.code_details?),
        [b"response", b"flags"] => response.code.map(|_| int(0)),
        [b"response", b"size"] => Some(int(response.size?)),
        [b"response", b"total_size"] => {
            let headers = stream.with_map(MapType::ResponseHeaders, headers_size)?;
            Some(int(response.size? + headers))
        }
        [b"response", b"headers", rest @ ..] => {
            map_property(stream.response_headers.as_ref()?, rest)
        }
        [b"response", b"trailers", rest @ ..] => {
            map_property(stream.response_trailers.as_ref()?, rest)
        }
        [b"source", b"address"] => text(&info.peer?.remote.to_string()),
        [b"source", b"port"] => Some(int(u64::from(info.peer?.remote.port()))),
        [b"destination", b"address"] => text(&info.peer?.local.to_string()),
        [b"destination", b"port"] => Some(int(u64::from(info.peer?.local.port()))),
        [b"connection", b"id"] => Some(int(info.peer?.connection_id)),
        [b"connection", b"mtls"] => Some(Outgoing::from_slice(&[0])),
        [b"upstream", b"address"] => text(upstream?),
        [b"upstream", b"port"] => {
            let port = upstream?.rsplit_once(':')?.1.parse::<u64>().ok()?;
            Some(int(port))
        }
        [b"upstream", b"request_attempt_count"] => response.code.map(|_| int(1)),
        [b"route_name"] | [b"xds", b"route_name"] => text(info.route.as_deref()?),
        _ => None,
    }
}
