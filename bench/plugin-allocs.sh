#!/usr/bin/env bash
# Heap allocations per request of the plugin layer: counted, not timed, so the figures do not
# move with the machine's load. A uprobe on each of mimalloc's allocation entry points
# (mi_malloc_aligned, mi_zalloc_aligned, mi_realloc_aligned: what Rust's global allocator calls)
# counts every call, with `perf stat`:
#
# 1. in-process (wasm-host/examples/plugin_callback.rs, one configuration per run): the same
#    configuration run for two request counts; the difference divided by the difference in
#    requests is its allocations per request, start-up (compiling the plugins) cancelled out;
# 2. through the release sidecar in front of the tiny upstream, under `wrk` (GET /items/7 and
#    POST /items, the bench/plugins.sh configurations): the calls counted during the run divided
#    by the requests served (the probes slow the sidecar down; the counts stay exact).
#
# Guest allocations (dlmalloc inside the module's linear memory) are not calls into mimalloc:
# only the host's own are counted.
#
# Usage: bench/plugin-allocs.sh     (as root: uprobes are written to /sys/kernel/tracing)
# Knobs: BENCH_PORT (18190; and the next two ports), BENCH_BEFORE (a directory holding another
#        build's `sidecar`: its rows follow, as `before:<plugins>`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
port="${BENCH_PORT:-18190}"
upstream_port=$((port + 1))
admin_port=$((port + 2))
tracing=/sys/kernel/tracing

die() { echo "bench/plugin-allocs.sh: $*" >&2; exit 1; }
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk and perf)"
command -v perf >/dev/null || die "perf not found: apt-get install linux-perf"
command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
[[ -w $tracing/uprobe_events ]] || die "cannot write $tracing/uprobe_events: run as root, with tracefs mounted"

echo "== building plugins, the sidecar, the bench upstream and the example (release)" >&2
build_plugin_bench

work="$(mktemp -d /tmp/plugin-allocs.XXXXXX)"
upstream_pid="" sidecar_pid=""
stop() { if [[ -n $1 ]]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi; }
unprobe() { for group in allocs_example allocs_sidecar allocs_before; do
    grep -o "^[pr]:$group/[a-z_]*" "$tracing/uprobe_events" 2>/dev/null | sed 's/^[pr]:/-:/' >>"$tracing/uprobe_events" || true
done; }
cleanup() { stop "$sidecar_pid"; stop "$upstream_pid"; unprobe; rm -rf "$work"; }
trap cleanup EXIT

probe() { # group binary: a uprobe on each allocation entry point of binary
    local text_delta
    # uprobes take file offsets: the symbol's address minus the executable segment's
    # address, plus that segment's offset in the file.
    text_delta=$(readelf -lW "$2" | awk '$1 == "LOAD" && / E / { print $3, $2 }' | { read -r v o; echo $((v - o)); })
    for fn in mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned; do
        local addr; addr=$(nm "$2" | awk -v f="$fn" '$3 == f { print $1 }')
        [[ -n $addr ]] || die "$2 has no symbol $fn (not built with mimalloc?)"
        printf 'p:%s/%s %s:0x%x\n' "$1" "$fn" "$2" $((0x$addr - text_delta)) >>"$tracing/uprobe_events"
    done
}
# The sum of perf stat's CSV counts on stdin.
total() { awk -F, '$3 ~ /^allocs_/ { n += $1 } END { print n + 0 }'; }

unprobe
example="$(realpath "$target/examples/plugin_callback")"
probe allocs_example "$example"
in_process() { # configuration requests
    PLUGIN_CALLBACK_ONLY="$1" PLUGIN_CALLBACK_REQUESTS="$2" \
        perf stat -x, -e 'allocs_example:*' "$example" 2>&1 >/dev/null | total
}
echo "host allocations per request (calls into mimalloc, counted with uprobes)"
echo
echo "in-process, through the plugin layer (plugin_callback: stub upstream; the example's own"
echo "request, response and bodies are in the no-plugin row):"
for configuration in "no plugin" "empty guest" "client-slo" "items-business" "both"; do
    few=$(in_process "$configuration" 2000)
    many=$(in_process "$configuration" 12000)
    awk -v c="$configuration" -v a="$few" -v b="$many" 'BEGIN { printf "  %-16s %6.2f\n", c, (b - a) / 10000 }'
done

"$target/examples/bench_upstream" "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream_pid=$!
sidecar="$(realpath "$target/sidecar")"
probe allocs_sidecar "$sidecar"
example_plugins
through_sidecar() { # label config-text [binary probe-group]
    local binary="${3:-$sidecar}" group="${4:-allocs_sidecar}"
    printf '%s' "$2" >"$work/sidecar.toml"
    RUST_LOG=warn "$binary" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
        --upstream "http://127.0.0.1:$upstream_port" --config "$work/sidecar.toml" 2>"$work/sidecar.log" &
    sidecar_pid=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 && break
        kill -0 "$sidecar_pid" 2>/dev/null || die "the sidecar exited: $(cat "$work/sidecar.log")"
        sleep 0.1
    done
    local line="  $1"
    for kind in get post; do
        local args=(-t2 -c8 -H "User-Agent: wrk/4.2") url="http://127.0.0.1:$port/items/7"
        if [[ $kind == post ]]; then args+=(-s "$work/post.lua"); url="http://127.0.0.1:$port"; fi
        wrk "${args[@]}" -d1s "$url" >/dev/null # connections open, plugins warm
        local calls
        calls=$(perf stat -x, -e "$group:*" -p "$sidecar_pid" -o "$work/perf.csv" -- \
            wrk "${args[@]}" -d3s "$url" >"$work/wrk.out"; total <"$work/perf.csv")
        grep -q "Non-2xx\|Socket errors" "$work/wrk.out" && { cat "$work/wrk.out" >&2; die "$1 $kind: errors"; }
        local requests; requests=$(awk '/requests in/ { print $1 }' "$work/wrk.out")
        line+=$(awk -v c="$calls" -v r="$requests" 'BEGIN { printf "  %6.2f", c / r }')
    done
    echo "$line"
    stop "$sidecar_pid"; sidecar_pid=""
}
echo
echo "through the release sidecar (wrk, 8 connections; the proxy's own allocations are in none):"
echo "  plugins             GET    POST"
through_sidecar "none            " "$routes"
through_sidecar "client-slo      " "$routes$client_slo"
through_sidecar "items-business  " "$routes$items_business"
through_sidecar "both            " "$routes$client_slo$items_business"
if [[ -n ${BENCH_BEFORE:-} ]]; then
    before="$(realpath "$BENCH_BEFORE/sidecar")"
    probe allocs_before "$before"
    through_sidecar "before:none          " "$routes" "$before" allocs_before
    through_sidecar "before:client-slo    " "$routes$client_slo" "$before" allocs_before
    through_sidecar "before:items-business" "$routes$items_business" "$before" allocs_before
    through_sidecar "before:both          " "$routes$client_slo$items_business" "$before" allocs_before
fi
