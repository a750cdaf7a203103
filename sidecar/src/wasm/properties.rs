//! `proxy_get_property`, with Envoy's encoding (what public plugins decode): strings as raw
//! bytes, integers as 8-byte little-endian, booleans as one byte, timestamps and durations as
//! i64 little-endian nanoseconds, maps in the pairs format. Paths are segments joined by NUL.
//! Anything unknown, or not yet known in this phase, is `None` (the guest sees `NotFound`).
//! Values written with `proxy_set_property` are returned for the same path.

use std::time::UNIX_EPOCH;

use super::pairs;
use super::state::{HostState, Pairs, Stream};

fn int(value: u64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

fn header(map: &Pairs, name: &[u8]) -> Option<Vec<u8>> {
    // CEL joins repeated headers with ','.
    let values: Vec<&[u8]> = map
        .iter()
        .filter(|(k, _)| k.as_bytes().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
        .collect();
    (!values.is_empty()).then(|| values.join(&b","[..]))
}

fn map_property(map: &Pairs, rest: &[&[u8]]) -> Option<Vec<u8>> {
    match rest {
        [] => Some(pairs::serialize(
            &map.iter()
                .filter(|(k, _)| !k.starts_with(':'))
                .cloned()
                .collect::<Vec<_>>(),
        )),
        [name] => header(map, name),
        _ => None,
    }
}

/// The value at `path` for the hostcall's effective context.
pub fn get(state: &HostState, path: &[u8]) -> Option<Vec<u8>> {
    let segments: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let config = &state.plugin.config;
    match segments.as_slice() {
        [b"plugin_name"] => return Some(config.name.clone().into_bytes()),
        [b"plugin_root_id"] => return Some(config.root_id().as_bytes().to_vec()),
        [b"plugin_vm_id"] => return Some(config.vm_id().as_bytes().to_vec()),
        _ => {}
    }
    let stream = state.stream()?;
    if let Some(value) = stream.properties.get(path) {
        return Some(value.clone());
    }
    stream_property(stream, &segments)
}

fn stream_property(stream: &Stream, segments: &[&[u8]]) -> Option<Vec<u8>> {
    let info = &stream.info;
    let response = &stream.response;
    let text = |s: &str| Some(s.as_bytes().to_vec());
    match segments {
        [b"request", b"path"] => text(&info.path),
        [b"request", b"url_path"] => text(info.path.split('?').next().unwrap_or_default()),
        [b"request", b"query"] => info
            .path
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or_default().as_bytes().to_vec()),
        [b"request", b"host"] => text(&info.host),
        [b"request", b"scheme"] => text(info.scheme),
        [b"request", b"method"] => text(&info.method),
        [b"request", b"protocol"] => text(info.protocol),
        [b"request", b"id"] => header(&stream.request_headers, b"x-request-id"),
        [b"request", b"useragent"] => header(&stream.request_headers, b"user-agent"),
        [b"request", b"referer"] => header(&stream.request_headers, b"referer"),
        [b"request", b"time"] => Some(int(
            info.time.duration_since(UNIX_EPOCH).ok()?.as_nanos() as u64
        )),
        [b"request", b"duration"] => Some(int(response.duration?.as_nanos() as u64)),
        [b"request", b"size"] => Some(int(info.size?)),
        [b"request", b"total_size"] => {
            let headers: usize = stream
                .request_headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum();
            Some(int(info.size.unwrap_or(0) + headers as u64))
        }
        [b"request", b"headers", rest @ ..] => map_property(&stream.request_headers, rest),
        [b"response", b"code"] => Some(int(u64::from(response.code?))),
        [b"response", b"code_details"] => text(response.code_details?),
        [b"response", b"flags"] => response.code.map(|_| int(0)),
        [b"response", b"size"] => Some(int(response.size?)),
        [b"response", b"total_size"] => {
            let headers: usize = stream
                .response_headers
                .as_ref()?
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum();
            Some(int(response.size? + headers as u64))
        }
        [b"response", b"headers", rest @ ..] => {
            map_property(stream.response_headers.as_ref()?, rest)
        }
        [b"response", b"trailers", rest @ ..] => {
            map_property(stream.response_trailers.as_ref()?, rest)
        }
        [b"source", b"address"] => text(&info.source?.to_string()),
        [b"source", b"port"] => Some(int(u64::from(info.source?.port()))),
        [b"destination", b"address"] => text(&info.destination?.to_string()),
        [b"destination", b"port"] => Some(int(u64::from(info.destination?.port()))),
        [b"connection", b"id"] => Some(int(info.connection_id?)),
        [b"connection", b"mtls"] => Some(vec![0]),
        [b"upstream", b"address"] => text(info.upstream.as_deref()?),
        [b"upstream", b"port"] => {
            let port = info
                .upstream
                .as_deref()?
                .rsplit_once(':')?
                .1
                .parse::<u64>()
                .ok()?;
            Some(int(port))
        }
        [b"upstream", b"request_attempt_count"] => response.code.map(|_| int(1)),
        [b"route_name"] | [b"xds", b"route_name"] => text(info.route.as_deref()?),
        _ => None,
    }
}
