#!/usr/bin/env bash
# The cost of tracing, in the sidecar or in the api. `bench/tracing.sh` (or `sidecar`): the same
# GET load through three sidecars in front of one tiny upstream. `bench/tracing.sh api`: the same
# GET /items/{id} load (bench/api-get.lua) on three apis sharing one throwaway PostgreSQL (ITEMS
# seeded rows, a pool of 16 each). The three: tracing off (ratio 0, no export), 1 % sampled with
# OTLP export on, and 100 % sampled with export on. The export goes to a local OTLP/HTTP sink (python3, answers 200 to
# every POST), so spans really leave the process. Prints req/s, p50, p99 and the sidecar's CPU
# per request (user + system, from /proc) of the sidecar or api for each, and each one's ratio to "off".
#
# The sidecars are measured in interleaved rounds (off, 1 %, 100 %, then again, each round
# starting one mode later); each figure is
# the median over the rounds, so a burst of load from elsewhere hits all three alike.
#
# Usage: bench/tracing.sh [sidecar|api]   (from anywhere; needs wrk, curl and python3; api: the
#        PostgreSQL server binaries)
# Knobs: BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_DURATION (8, seconds per run),
#        BENCH_ROUNDS (3), BENCH_WORKERS (nproc, sidecar), BENCH_ITEMS (10000, api),
#        BENCH_PORT_BASE (18200).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
connections="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
duration="${BENCH_DURATION:-8}"
rounds="${BENCH_ROUNDS:-3}"
base="${BENCH_PORT_BASE:-18200}"
workers="${BENCH_WORKERS:-$(nproc)}"
upstream_port=$base sink_port=$((base + 1))
what="${1:-sidecar}"
items="${BENCH_ITEMS:-10000}"

die() { echo "bench/tracing.sh: $*" >&2; exit 1; }
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk)"
command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
command -v python3 >/dev/null || die "python3 not found: apt-get install python3"

case "$what" in
    sidecar)
        echo "== building the sidecar and the bench upstream (release)" >&2
        cargo build --release -p sidecar --bin sidecar --example bench_upstream --manifest-path "$root/Cargo.toml" >&2 ;;
    api)
        echo "== building the api (release)" >&2
        cargo build --release -p api --bin api --manifest-path "$root/Cargo.toml" >&2 ;;
    *) die "usage: bench/tracing.sh [sidecar|api]" ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d /tmp/tracing-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    stop_pg "$work"
    rm -rf "$work"
}
trap cleanup EXIT

wait_for() { # url name
    for _ in $(seq 100); do
        if curl -fsS "$1" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$2 did not come up at $1: $(cat "$work"/*.log 2>/dev/null)"
}

if [[ $what == sidecar ]]; then
    "$target/examples/bench_upstream" "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
    pids+=($!)
    wait_for "http://127.0.0.1:$upstream_port/hello" upstream
    printf 'workers = %s\n[[routes]]\ntemplate = "/hello"\n' "$workers" >"$work/sidecar.toml"
    path=/hello ready=/hello
else
    echo "== starting PostgreSQL in $work" >&2
    start_pg "$work" bench || die "PostgreSQL did not start"
    path=/items/1 ready=/readyz
fi

# The OTLP sink: reads each export and answers 200, as a collector that keeps up would.
cat >"$work/sink.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
python3 "$work/sink.py" "$sink_port" 2>"$work/sink.log" &
pids+=($!)
wait_for "http://127.0.0.1:$sink_port/" "OTLP sink"

declare -A port pid
i=2
for mode in off 1pct 100pct; do
    port[$mode]=$((base + i)); admin=$((base + i + 1)); i=$((i + 2))
    env=(OTEL_TRACES_SAMPLER_ARG=0)
    case $mode in
        1pct) env=(OTEL_TRACES_SAMPLER_ARG=0.01 OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port") ;;
        100pct) env=(OTEL_TRACES_SAMPLER_ARG=1 OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port") ;;
    esac
    if [[ $what == sidecar ]]; then
        env "${env[@]}" SIDECAR_LISTEN="127.0.0.1:${port[$mode]}" SIDECAR_ADMIN_LISTEN="127.0.0.1:$admin" \
            SIDECAR_UPSTREAM="http://127.0.0.1:$upstream_port" SIDECAR_CONFIG="$work/sidecar.toml" RUST_LOG=warn \
            "$target/sidecar" 2>"$work/$what-$mode.log" &
    else
        admin=${port[$mode]} # the api serves its metrics on its own port
        env "${env[@]}" DATABASE_URL="host=$work user=postgres dbname=bench" API_LISTEN="127.0.0.1:${port[$mode]}" \
            API_POOL_SIZE=16 RUST_LOG=warn "$target/api" 2>"$work/$what-$mode.log" &
    fi
    pid[$mode]=$!
    pids+=($!)
    wait_for "http://127.0.0.1:${port[$mode]}$ready" "$what ($mode)"
    echo "$mode admin 127.0.0.1:$admin" >>"$work/admins"
done
if [[ $what == api ]]; then seed_items bench "$items"; fi
load_args=()
if [[ $what == api ]]; then load_args=(-s "$root/bench/api-get.lua"); fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/runs"
for round in $(seq "$rounds"); do
    # Each round starts with the next mode, so none always runs first (warm caches, turbo).
    modes=(off 1pct 100pct)
    for ((k = 0; k < 3; k++)); do
        mode=${modes[(round + k) % 3]}
        url="http://127.0.0.1:${port[$mode]}$path"
        echo "== round $round: wrk GET via $what ($mode)" >&2
        [[ $round == 1 ]] && ITEMS="$items" wrk "${load_args[@]}" -t"$threads" -c"$connections" -d2s "$url" >/dev/null # warm-up
        before=$(ticks "${pid[$mode]}")
        ITEMS="$items" wrk "${load_args[@]}" -t"$threads" -c"$connections" -d"${duration}s" --latency "$url" >"$work/out"
        after=$(ticks "${pid[$mode]}")
        grep -q -e "Non-2xx" -e "Socket errors" "$work/out" && die "errors under load via $what ($mode): $(cat "$work/out")"
        requests=$(awk '/requests in/ { print $1 }' "$work/out")
        echo "$mode $(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/out") $(wrk_ms 50% <"$work/out") $(wrk_ms 99% <"$work/out") \
            $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')" >>"$work/runs"
    done
done

# Export really happened: the sidecars' own counters.
exported() { curl -fsS "http://$1/metrics" | awk '/^otlp_spans_exported_total / { print $2 } /^otlp_spans_dropped_total\{/ { d += $2 } END { print d + 0 }' | paste -sd' '; }

echo
if [[ $what == sidecar ]]; then
    echo "sidecar tracing off vs 1 % vs 100 % sampled (export on): GET /hello, $connections connections,"
    echo "$threads wrk threads, ${duration}s per run, median of $rounds interleaved rounds; $workers workers; $(nproc) cores;"
else
    echo "api tracing off vs 1 % vs 100 % sampled (export on): GET /items/{id} over $items rows, $connections connections,"
    echo "$threads wrk threads, ${duration}s per run, median of $rounds interleaved rounds; pool of 16 each; $(nproc) cores;"
fi
echo "load average before: $load_before"
printf "%-22s %10s %9s %9s %11s %12s %16s\n" "tracing" "req/s" "p50 ms" "p99 ms" "cpu us/req" "req/s vs off" "exported dropped"
for mode in off 1pct 100pct; do
    pick() { awk -v m="$mode" -v c="$1" '$1 == m { print $c }' "$work/runs" | median; }
    rps=$(pick 2)
    [[ $mode == off ]] && off_rps=$rps
    admin=$(awk -v m="$mode" '$1 == m { print $3 }' "$work/admins")
    printf "%-22s %10s %9s %9s %11s %12s %16s\n" "$mode" "$rps" "$(pick 3)" "$(pick 4)" "$(pick 5)" \
        "$(awk -v a="$rps" -v b="$off_rps" 'BEGIN { printf "%.3f", a / b }')" "$(exported "$admin")"
done
