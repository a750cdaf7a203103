"""Checks one `helm template` rendering of the redside chart (deploy/check runs it per variant).

- Every Kubernetes object validates against the Kubernetes OpenAPI schemas of each version
  given, in their strict form (unknown fields rejected), offline (kubernetes-validate).
- The manifests agree with the binaries: every flag and environment variable is one that
  `api --help` / `sidecar --help` lists (the trace flags included; both containers export to
  one collector or neither does), ports line up (the sidecar's upstream is the API's
  loopback listener, containerPorts are the listeners, the Service targets the proxy port
  only), every sidecar probe and scrape path is an admin endpoint `sidecar --help` names;
  the API's paths (its --help does not list them all, and it has no dry run) are written out
  for deploy/check-endpoints, which asks a running API.
- Shutdown: terminationGracePeriodSeconds covers the API's preStop and drain, then the
  sidecar's grace_period and final_scrape_wait (from the rendered TOML) and its admin grace;
  a plain-container sidecar sleeps in preStop until the API has drained.
- Hardening of every container, selectors that select the pods; then validate_sources.py:
  the HPA's metric is the prometheus-adapter rule's, the PrometheusRule is prometheus/rules/
  plus the chart's own group, the dashboard ConfigMaps are grafana/dashboards/.

It writes what other tools check into OUT: config/sidecar.toml and plugins/*.wasm (the layout
the pod mounts, for `sidecar --check-config`), rules.yml (for promtool), adapter-queries.yml
(for promtool), crs.json (for validate_crs.mjs), api-paths and sidecar-paths (for
deploy/check-endpoints).

    validate.py RENDERED.yaml OUT API_HELP SIDECAR_HELP K8S_VERSION...
"""

import base64
import json
import re
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml
from validate_sources import check_sources

CRD_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}
ADMIN_GRACE_SECONDS = 2  # sidecar/src/lib.rs ADMIN_GRACE
MIB = 1 << 20

errors = []


def fail(message):
    errors.append(message)


def help_flags(text):
    flags = set(re.findall(r"--([a-z][a-z0-9-]*)", text))
    envs = set(re.findall(r"\[env: ([A-Z_][A-Z0-9_]*)=", text))
    return flags, envs


def seconds(duration):
    m = re.fullmatch(r"([0-9.]+)(ms|s|m)?", str(duration))
    if not m:
        raise ValueError(f"not a duration: {duration}")
    value = float(m[1])
    return {"ms": value / 1000, "s": value, None: value, "m": value * 60}[m[2]]


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def args_of(container):
    out = {}
    for arg in container.get("args", []):
        m = re.fullmatch(r"--([a-z0-9-]+)=(.*)", arg)
        if not m:
            fail(f"{container['name']}: argument {arg!r} is not --flag=value")
            continue
        out[m[1]] = m[2]
    return out


def check_flags(container, flags, envs):
    for flag in args_of(container):
        if flag not in flags:
            fail(f"{container['name']}: --{flag} is not a flag of the binary ({sorted(flags)})")
    for env in container.get("env", []):
        name = env["name"]
        if name != "RUST_LOG" and name not in envs:
            fail(f"{container['name']}: environment {name} is not read by the binary ({sorted(envs)})")


def hardened(container, pod_security):
    sc = container.get("securityContext", {})
    name = container["name"]
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{name}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(f"{name}: readOnlyRootFilesystem must be true")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        fail(f"{name}: capabilities must drop ALL")
    if not (sc.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        fail(f"{name}: runAsNonRoot must be true")
    seccomp = sc.get("seccompProfile") or pod_security.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        fail(f"{name}: seccompProfile must be RuntimeDefault")
    if "resources" not in container or "requests" not in container["resources"]:
        fail(f"{name}: resources.requests missing")


def selects(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def main():
    rendered, out = Path(sys.argv[1]), Path(sys.argv[2])
    api_help, sidecar_help = Path(sys.argv[3]).read_text(), Path(sys.argv[4]).read_text()
    versions = sys.argv[5:]
    api_flags, api_envs = help_flags(api_help)
    sidecar_flags, sidecar_envs = help_flags(sidecar_help)
    admin_line = next(line for line in sidecar_help.splitlines() if "/healthz" in line)
    admin_paths = set(re.findall(r"`(?:POST )?(/[a-z]+)`", admin_line))
    # The paths the manifests ask of each binary, for deploy/check-endpoints to GET for real.
    used = {"api": set(), "sidecar": set()}
    if not {"/healthz", "/readyz", "/metrics"} <= admin_paths:
        fail(f"sidecar --help no longer names /healthz, /readyz and /metrics: {admin_paths}")

    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
        if doc["kind"] in CRD_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as e:  # the library raises several types; each is a failure
                fail(f"{doc['kind']}/{doc['metadata']['name']} against Kubernetes {version}: {e}")

    (deployment,) = by_kind["Deployment"]
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    pod_labels = pod["metadata"]["labels"]
    if not selects(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        fail("Deployment selector does not select its pods")
    containers = {c["name"]: c for c in spec["containers"]}
    inits = {c["name"]: c for c in spec.get("initContainers", [])}
    native = "sidecar" in inits
    sidecar = inits.get("sidecar") or containers.get("sidecar")
    api = containers.get("api")
    if not sidecar or not api:
        fail("the pod needs an api container and a sidecar container")
        return finish()
    if native and sidecar.get("restartPolicy") != "Always":
        fail("native sidecar: the init container needs restartPolicy Always")
    for c in [api, sidecar]:
        hardened(c, spec.get("securityContext", {}))
    check_flags(api, api_flags, api_envs)
    check_flags(sidecar, sidecar_flags, sidecar_envs)
    # Traces: one trace crosses both containers, so both export to the same collector or
    # neither does (docs/tracing.md); ratios are shares.
    endpoints = {c["name"]: args_of(c).get("otlp-endpoint") for c in [api, sidecar]}
    if len(set(endpoints.values())) != 1:
        fail(f"the containers export spans to different collectors: {endpoints}")
    # An https collector's CA: the file each container is given is in a Secret mounted there.
    pod_volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in [api, sidecar]:
        certificate = args_of(c).get("otlp-certificate")
        if certificate is None:
            continue
        mounted = [m for m in c.get("volumeMounts", [])
                   if certificate.startswith(m["mountPath"].rstrip("/") + "/")]
        secret = mounted and pod_volumes.get(mounted[0]["name"], {}).get("secret")
        if not secret:
            fail(f"{c['name']}: --otlp-certificate={certificate} is not in a mounted Secret")
        elif certificate.rsplit("/", 1)[1] not in [i["path"] for i in secret.get("items", [])]:
            fail(f"{c['name']}: --otlp-certificate={certificate} is not an item of its Secret volume")
    for c in [api, sidecar]:
        ratio = args_of(c).get("trace-sample-ratio")
        if ratio is not None and not 0 <= float(ratio) <= 1:
            fail(f"{c['name']}: --trace-sample-ratio={ratio} is not between 0 and 1")

    # Ports and listeners.
    a, s = args_of(api), args_of(sidecar)
    api_listen = a.get("listen", "127.0.0.1:8000")
    if not api_listen.startswith("127.0.0.1:"):
        fail(f"the API must listen on loopback only, not {api_listen}")
    if s.get("upstream") != f"http://127.0.0.1:{port_of(api_listen)}":
        fail(f"sidecar --upstream {s.get('upstream')} is not the API's listener {api_listen}")
    ports = {p["name"]: p["containerPort"] for p in sidecar.get("ports", [])}
    if ports.get("http") != port_of(s.get("listen", "127.0.0.1:8080")):
        fail(f"containerPort http {ports.get('http')} is not sidecar --listen {s.get('listen')}")
    if ports.get("admin") != port_of(s.get("admin-listen", "127.0.0.1:9901")):
        fail(f"containerPort admin {ports.get('admin')} is not sidecar --admin-listen {s.get('admin-listen')}")
    if api.get("ports"):
        fail("the API container declares ports, but it listens on loopback only")

    # Probes.
    for c in [sidecar, api]:
        for kind in ["startupProbe", "livenessProbe", "readinessProbe"]:
            probe = c.get(kind)
            if not probe:
                fail(f"{c['name']}: no {kind}")
                continue
            if "httpGet" in probe:
                get = probe["httpGet"]
                if c is not sidecar or get["port"] != "admin" or get["path"] not in admin_paths:
                    fail(f"{c['name']} {kind}: {get} is not a sidecar admin endpoint {admin_paths}")
                used["sidecar"].add(get["path"])
            else:
                command = " ".join(probe["exec"]["command"])
                m = re.search(r"/dev/tcp/127\.0\.0\.1/(\d+).*GET (\S+) HTTP", command)
                if c is not api or not m or int(m[1]) != port_of(api_listen):
                    fail(f"{c['name']} {kind}: {command!r} does not GET the API's listener {api_listen}")
                else:
                    used["api"].add(m[2])
    if native and sidecar["startupProbe"]["httpGet"]["path"] != "/healthz":
        fail("a native sidecar's startup probe must not wait for the API (use /healthz)")

    # The sidecar's TOML, and the plugin modules in the layout the pod mounts.
    config_maps = {cm["metadata"]["name"]: cm for cm in by_kind.get("ConfigMap", [])}
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_cm = config_maps[volumes["config"]["configMap"]["name"]]
    toml_text = config_cm["data"]["sidecar.toml"]
    mounts = {m["name"]: m["mountPath"] for m in sidecar["volumeMounts"]}
    if s.get("config") != mounts["config"] + "/sidecar.toml":
        fail(f"sidecar --config {s.get('config')} is not in the config mount {mounts['config']}")
    (out / "config").mkdir(parents=True, exist_ok=True)
    (out / "plugins").mkdir(parents=True, exist_ok=True)
    (out / "config" / "sidecar.toml").write_text(toml_text)
    config = tomllib.loads(toml_text)
    plugin_sources = volumes["plugins"].get("projected", {}).get("sources", [])
    for source in plugin_sources:
        cm = config_maps[source["configMap"]["name"]]
        for name, data in cm.get("binaryData", {}).items():
            module = base64.b64decode(data)
            if len(json.dumps(cm)) > MIB:
                fail(f"ConfigMap {cm['metadata']['name']} is over 1 MiB: Kubernetes refuses it")
            (out / "plugins" / name).write_bytes(module)
    for plugin in config.get("plugins", []):
        resolved = (Path(mounts["config"]) / plugin["path"]).resolve()
        if resolved.parent != Path(mounts["plugins"]):
            fail(f"plugin {plugin['name']}: {plugin['path']} is not in the plugins mount")

    # Shutdown budget.
    limits = config.get("limits", {})
    sidecar_stop = seconds(limits.get("grace_period", "10s")) + seconds(
        limits.get("final_scrape_wait", "5s")) + ADMIN_GRACE_SECONDS
    api_pre_stop = int(api["lifecycle"]["preStop"]["exec"]["command"][1])
    api_stop = api_pre_stop + seconds(a.get("shutdown-grace", "10s"))
    if not native:
        sleep = int(sidecar["lifecycle"]["preStop"]["exec"]["command"][1])
        if sleep < api_stop:
            fail(f"plain sidecar preStop sleep {sleep}s is shorter than the API's stop {api_stop}s")
        api_stop = sleep
    grace = spec["terminationGracePeriodSeconds"]
    if grace < api_stop + sidecar_stop:
        fail(f"terminationGracePeriodSeconds {grace} < API {api_stop}s + sidecar {sidecar_stop}s")

    # Services, monitors, policies select what they mean to.
    services = {svc["metadata"]["name"]: svc for svc in by_kind.get("Service", [])}
    main_service = services[deployment["metadata"]["name"]]
    if [p["targetPort"] for p in main_service["spec"]["ports"]] != ["http"]:
        fail("the Service must target the sidecar's proxy port (http) only")
    for svc in services.values():
        if selects(svc["spec"]["selector"], pod_labels):
            for p in svc["spec"]["ports"]:
                if p["targetPort"] not in ports:
                    fail(f"Service {svc['metadata']['name']}: targetPort {p['targetPort']} is no container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            fail("the PodDisruptionBudget does not select the pods")
    for np in by_kind.get("NetworkPolicy", []):
        if selects(np["spec"]["podSelector"]["matchLabels"], pod_labels):
            allowed = {}  # port -> peers (None: everyone)
            for rule in np["spec"]["ingress"]:
                for p in rule["ports"]:
                    if p["port"] not in ports:
                        fail(f"NetworkPolicy port {p['port']} is no container port")
                    allowed[p["port"]] = rule.get("from")
            # Prometheus (the admin port's peers) must reach every port a monitor scrapes.
            for port in ["http"] if by_kind.get("PodMonitor") or by_kind.get("ServiceMonitor") else []:
                peers = allowed.get(port)
                if peers is not None and not all(p in peers for p in allowed.get("admin") or []):
                    fail(f"NetworkPolicy keeps Prometheus from the {port} port it scrapes the API on")
    for monitor in by_kind.get("PodMonitor", []) + by_kind.get("ServiceMonitor", []):
        selector = monitor["spec"]["selector"]["matchLabels"]
        if monitor["kind"] == "PodMonitor":
            selected = selects(selector, pod_labels)
        else:
            selected = any(selects(selector, svc["metadata"]["labels"]) for svc in services.values())
        if not selected:
            fail(f"{monitor['kind']} selects nothing")
        endpoints = monitor["spec"].get("podMetricsEndpoints") or monitor["spec"].get("endpoints")
        for e in endpoints:
            job = next((r.get("replacement") for r in e.get("relabelings", []) if r.get("targetLabel") == "job"), None)
            if e["port"] not in ports or (e["port"] == "admin" and e["path"] not in admin_paths):
                fail(f"{monitor['kind']} endpoint {e['port']}{e['path']} is not served ({admin_paths})")
            # The proxy port forwards to the API: its path is the API's.
            used["sidecar" if e["port"] == "admin" else "api"].add(e["path"])
            if job not in {"api", "sidecar"} or (job == "sidecar") != (e["port"] == "admin"):
                fail(f"{monitor['kind']} endpoint {e['port']} labelled job={job}")

    check_sources(by_kind, config_maps, out, fail)
    for binary, paths in used.items():
        (out / f"{binary}-paths").write_text("\n".join(sorted(paths)) + "\n")
    # The containers' own arguments, for deploy/check to hand to the binaries (the sidecar's
    # --config pointed at the extracted copy).
    (out / "api-args").write_text("\n".join(api.get("args", [])) + "\n")
    (out / "sidecar-args").write_text("\n".join(
        f"--config={out / 'config' / 'sidecar.toml'}" if a.startswith("--config=") else a
        for a in sidecar.get("args", [])) + "\n")
    (out / "crs.json").write_text(json.dumps([d for d in docs if d["kind"] in CRD_KINDS]))
    return finish(len(docs), native)


def finish(count=0, native=None):
    for e in errors:
        print(f"validate: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    variant = "native sidecar" if native else "plain container"
    print(f"validate: {count} manifests valid ({variant}); flags, ports, probes, shutdown, rules, dashboards consistent")


if __name__ == "__main__":
    main()
