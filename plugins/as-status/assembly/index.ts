// An AssemblyScript Proxy-Wasm filter built with @solo-io/proxy-runtime: counts responses by
// status class (`as_responses_total{class="2xx"}`); with the configuration `tag=<value>` it also
// adds `x-as-status: <value>` to each response. See README.md.
// The runtime's entry points, except the per-request ones, which leak (see streams.ts).
export { malloc, free } from "@solo-io/proxy-runtime/malloc";
export {
  proxy_abi_version_0_2_0,
  proxy_on_vm_start,
  proxy_validate_configuration,
  proxy_on_configure,
  proxy_on_tick,
  proxy_on_foreign_function,
  proxy_on_queue_ready,
  proxy_on_http_call_response,
  proxy_on_grpc_receive_initial_metadata,
  proxy_on_grpc_trailing_metadata,
  proxy_on_grpc_receive,
  proxy_on_grpc_close,
} from "@solo-io/proxy-runtime/exports";
export {
  proxy_on_context_create,
  proxy_on_request_headers,
  proxy_on_request_body,
  proxy_on_request_trailers,
  proxy_on_request_metadata,
  proxy_on_response_headers,
  proxy_on_response_body,
  proxy_on_response_trailers,
  proxy_on_response_metadata,
  proxy_on_log,
  proxy_on_done,
  proxy_on_delete,
} from "./streams";
import { rememberRoot } from "./streams";
import {
  RootContext,
  Context,
  registerRootContext,
  FilterHeadersStatusValues,
  stream_context,
  Counter,
} from "@solo-io/proxy-runtime";

class StatusRoot extends RootContext {
  classes: Array<Counter> = [];
  tag: string = "";

  onConfigure(configuration_size: u32): bool {
    // The runtime reads the configuration here; it traps on an empty one (0.1.8): the
    // sidecar's entry must give a non-empty `configuration`.
    if (!super.onConfigure(configuration_size)) {
      return false;
    }
    const configuration = this.getConfiguration();
    if (configuration.startsWith("tag=")) {
      this.tag = configuration.substring(4);
    }
    for (let i = 1; i <= 5; i++) {
      this.classes.push(new Counter('as_responses_total{class="' + i.toString() + 'xx"}'));
    }
    return true;
  }

  createContext(context_id: u32): Context {
    return new StatusContext(context_id, this);
  }
}

class StatusContext extends Context {
  status_root: StatusRoot;

  constructor(context_id: u32, root_context: StatusRoot) {
    super(context_id, root_context);
    this.status_root = root_context;
  }

  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const status = stream_context.headers.response.get(":status");
    const digit = status.length == 3 ? status.charCodeAt(0) - 48 : 0;
    if (digit >= 1 && digit <= 5) {
      this.status_root.classes[digit - 1].increment(1);
    }
    if (this.status_root.tag.length > 0) {
      stream_context.headers.response.add("x-as-status", this.status_root.tag);
    }
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => {
  return rememberRoot(new StatusRoot(context_id));
}, "as-status");
