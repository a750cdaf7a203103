//! `proxy_http_call`: an HTTP callout to a `[[clusters]]` entry. The hostcall only checks the
//! request and records it ([`crate::callout::PendingCall`]); the plugin starts it once the
//! callback returns and delivers the answer as `proxy_on_http_call_response` (see
//! [`crate::callout`]). An unknown cluster or a request without `:method` or `:path` is
//! `BadArgument`, as in Envoy (the Rust SDK returns it as an `Err`).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use wasmtime::Linker;

use super::{C, code, ok};
use crate::abi::Status;
use crate::callout::{CallKind, PendingCall};
use crate::memory::{self, read};
use crate::pairs;
use crate::state::HostState;

/// The request a guest's pairs describe, sent to `address`.
fn request(
    address: &str,
    pairs: &[(Vec<u8>, Vec<u8>)],
    body: Vec<u8>,
) -> Option<Request<Full<Bytes>>> {
    let find = |name: &[u8]| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    };
    let method = http::Method::from_bytes(find(b":method")?).ok()?;
    let path = std::str::from_utf8(find(b":path")?).ok()?;
    if !path.starts_with('/') {
        return None;
    }
    let authority = find(b":authority").unwrap_or(address.as_bytes());
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header(http::header::HOST, HeaderValue::from_bytes(authority).ok()?)
        // The answer's trailers reach the plugin; an HTTP/1 server sends them only if asked.
        .header(http::header::TE, "trailers");
    for (name, value) in pairs.iter().filter(|(k, _)| !k.starts_with(b":")) {
        match (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            (Ok(name), Ok(value)) if name != http::header::HOST && name != http::header::TE => {
                builder = builder.header(name, value);
            }
            _ => {}
        }
    }
    builder.body(Full::new(Bytes::from(body))).ok()
}

/// Registers `proxy_http_call`.
pub(super) fn add(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         _tptr: i32,
         _tlen: i32,
         timeout_ms: i32,
         ret_token: i32|
         -> i32 {
            let read_all = |c: &mut C<'_>| -> Result<_, Status> {
                Ok((read(c, uptr, ulen)?, read(c, hptr, hlen)?, read(c, bptr, blen)?))
            };
            let (upstream, headers, body) = match read_all(&mut c) {
                Ok(parts) => parts,
                Err(s) => return code(s),
            };
            let state = c.data();
            let cluster = std::str::from_utf8(&upstream)
                .ok()
                .and_then(|name| state.plugin.clusters.load().get(name).cloned());
            let Some(cluster) = cluster else {
                tracing::debug!(plugin = %state.plugin.config.name, cluster = %String::from_utf8_lossy(&upstream), "callout to an unknown cluster");
                return code(Status::BadArgument);
            };
            let Some(request) = pairs::parse(&headers)
                .and_then(|pairs| request(&cluster.config.address, &pairs, body))
            else {
                return code(Status::BadArgument);
            };
            let token = state.next_token;
            if let Err(s) = memory::write_u32(&mut c, ret_token, token) {
                return code(s);
            }
            let state = c.data_mut();
            state.next_token = state.next_token.wrapping_add(1).max(1);
            let ctx = state.effective;
            state.pending_calls.push(PendingCall {
                token,
                ctx,
                cluster,
                request,
                timeout_ms: timeout_ms as u32,
                kind: CallKind::Http,
            });
            ok()
        },
    )?;
    Ok(())
}
