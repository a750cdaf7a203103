// The per-request entry points, in place of `@solo-io/proxy-runtime`'s (0.1.8), which leak.
//
// The runtime finds a request's context with `getContext(id)`, i.e. `context_map.get(id) as
// Context`. AssemblyScript 0.14.13 (and 0.16.1 and 0.17.14, tried) compiles that checked
// downcast with a second `__retain` and never releases the value `Map#get` returned, so each
// call leaves one more reference: after `on_request_headers`, `on_response_headers` and `on_log`
// a deleted context still counts three and is never freed (~34 bytes of linear memory a
// request). The root context gains one a request the same way (`ensureContext` calls
// `getRootContext`), and would trap once its 28-bit count overflowed. Here the request contexts
// live in a map of our own typed as `Context`, so no downcast is needed; the root context stays
// the runtime's (created and configured by its entry points).
// (The cycle collector, `__collect`, which nothing calls on its own in 0.14, is not needed:
// with these entry points a deleted context's count reaches zero and it is freed at once.)
import { Context, RootContext, ensureRootContext } from "@solo-io/proxy-runtime/runtime";
import {
  proxy_on_context_create as runtime_on_context_create,
  proxy_on_done as runtime_on_done,
  proxy_on_delete as runtime_on_delete,
} from "@solo-io/proxy-runtime/exports";

const roots = new Map<u32, RootContext>();
const streams = new Map<u32, Context>();

/** Remembers a root context the runtime created (call it from the root context factory). */
export function rememberRoot(root: RootContext): RootContext {
  roots.set(root.context_id, root);
  return root;
}

export function proxy_on_context_create(context_id: u32, root_context_id: u32): void {
  if (root_context_id == 0) {
    runtime_on_context_create(context_id, 0);
    return;
  }
  if (!roots.has(root_context_id)) {
    // A stream before its root (a host that skips the root's create): the runtime makes it.
    ensureRootContext(root_context_id);
  }
  if (!streams.has(context_id)) {
    streams.set(context_id, roots.get(root_context_id).createContext(context_id));
  }
}

export function proxy_on_request_headers(context_id: u32, headers: u32, end_of_stream: u32): i32 {
  return streams.get(context_id).onRequestHeaders(headers, end_of_stream != 0);
}
export function proxy_on_request_body(context_id: u32, size: u32, end_of_stream: u32): i32 {
  return streams.get(context_id).onRequestBody(size, end_of_stream != 0);
}
export function proxy_on_request_trailers(context_id: u32, trailers: u32): i32 {
  return streams.get(context_id).onRequestTrailers(trailers);
}
export function proxy_on_request_metadata(context_id: u32, elements: u32): i32 {
  return streams.get(context_id).onRequestMetadata(elements);
}
export function proxy_on_response_headers(context_id: u32, headers: u32, end_of_stream: u32): i32 {
  return streams.get(context_id).onResponseHeaders(headers, end_of_stream != 0);
}
export function proxy_on_response_body(context_id: u32, size: u32, end_of_stream: u32): i32 {
  return streams.get(context_id).onResponseBody(size, end_of_stream != 0);
}
export function proxy_on_response_trailers(context_id: u32, trailers: u32): i32 {
  return streams.get(context_id).onResponseTrailers(trailers);
}
export function proxy_on_response_metadata(context_id: u32, elements: u32): i32 {
  return streams.get(context_id).onResponseMetadata(elements);
}
export function proxy_on_log(context_id: u32): void {
  streams.get(context_id).onLog();
}

export function proxy_on_done(context_id: u32): u32 {
  if (!streams.has(context_id)) {
    return runtime_on_done(context_id);
  }
  return streams.get(context_id).onDone() ? 1 : 0;
}

export function proxy_on_delete(context_id: u32): void {
  if (!streams.has(context_id)) {
    runtime_on_delete(context_id);
    roots.delete(context_id);
  } else {
    streams.get(context_id).onDelete();
    streams.delete(context_id);
  }
}
