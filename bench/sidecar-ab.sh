#!/usr/bin/env bash
# A/B of sidecar builds: the same load as bench/sidecar.sh (wrk, 64 keep-alive connections,
# 2 threads, GET /hello on the tiny bench upstream), against each binary in turn, in interleaved
# rounds. Prints req/s and the sidecar's CPU time (user + system, from /proc) per request, the
# steadier figure on a shared machine. Use it to measure one change: build the sidecar before
# and after (`cp target/release/sidecar /tmp/sidecar-before`), then
#
#   bench/sidecar-ab.sh before=/tmp/sidecar-before after=target/release/sidecar
#
# Knobs: AB_ROUNDS (3), AB_SECONDS (6), AB_WORKERS (nproc), AB_LUA (a wrk script, e.g.
# bench/sidecar-post.lua for the 1 KiB POST), AB_PORT_BASE (18200), AB_PLUGINS (example plugins
# to load, e.g. "client-slo items-business", from plugins/dist: run plugins/build first).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${AB_ROUNDS:-3}" seconds="${AB_SECONDS:-6}" workers="${AB_WORKERS:-$(nproc)}"
base="${AB_PORT_BASE:-18200}"
[[ $# -ge 1 ]] || { echo "usage: bench/sidecar-ab.sh label=binary [label=binary ...]" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --release -p sidecar --example bench_upstream --manifest-path "$root/Cargo.toml" >&2
upstream_bin="${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_upstream"
work="$(mktemp -d /tmp/sidecar-ab.XXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

"$upstream_bin" "127.0.0.1:$base" 2>/dev/null &
pids+=($!)
printf 'workers = %s\n[[routes]]\ntemplate = "/hello"\n[[routes]]\ntemplate = "/echo"\n' "$workers" >"$work/sidecar.toml"
for plugin in ${AB_PLUGINS:-}; do
    wasm="$root/plugins/dist/$plugin.wasm"
    [[ -f $wasm ]] || { echo "AB_PLUGINS: $wasm missing (run plugins/build)" >&2; exit 1; }
    printf '[[plugins]]\nname = "%s"\npath = "%s"\n' "$plugin" "$wasm" >>"$work/sidecar.toml"
    [[ $plugin == items-business ]] && printf 'request_body = true\nresponse_body = true\n' >>"$work/sidecar.toml"
done
script=()
[[ -n "${AB_LUA:-}" ]] && script=(-s "$AB_LUA")
url="http://127.0.0.1:$((base + 1))/hello"
[[ -n "${AB_LUA:-}" ]] && url="http://127.0.0.1:$((base + 1))"

for round in $(seq "$rounds"); do
    for variant in "$@"; do
        label=${variant%%=*} binary=${variant#*=}
        SIDECAR_LISTEN="127.0.0.1:$((base + 1))" SIDECAR_ADMIN_LISTEN="127.0.0.1:$((base + 2))" \
            SIDECAR_UPSTREAM="http://127.0.0.1:$base" SIDECAR_CONFIG="$work/sidecar.toml" RUST_LOG=warn \
            "$binary" 2>"$work/$label.log" &
        sidecar=$!
        for _ in $(seq 100); do curl -fs "$url" >/dev/null 2>&1 && break; sleep 0.1; done
        wrk -t2 -c64 -d1s "${script[@]}" "$url" >/dev/null # warm-up
        before=$(awk '{ print $14 + $15 }' "/proc/$sidecar/stat")
        out=$(wrk -t2 -c64 -d"${seconds}s" "${script[@]}" "$url")
        after=$(awk '{ print $14 + $15 }' "/proc/$sidecar/stat")
        kill "$sidecar"; wait "$sidecar" 2>/dev/null || true
        if grep -q -e "Non-2xx" -e "Socket errors" <<<"$out"; then
            echo "$label: errors under load:" >&2; echo "$out" >&2; exit 1
        fi
        requests=$(awk '/requests in/ { print $1 }' <<<"$out")
        rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
        cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
        printf 'round %s  %-12s req/s %8s  cpu us/req %6s\n' "$round" "$label" "$rps" "$cpu"
    done
done
