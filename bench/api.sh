#!/usr/bin/env bash
# Benchmark of the items API against a real PostgreSQL, with pgbench as the ceiling.
#
# Builds the api in release mode, starts a throwaway PostgreSQL cluster (unix socket only, in a
# temp dir, stock durability settings) and the api on it, then measures at a fixed concurrency:
#   - GET /items/{id} (random ids over ITEMS seeded rows) and POST /items with wrk;
#   - the same SQL statements through pgbench (prepared, as the api's are) with as many clients
#     as wrk has connections: the database's own ceiling on this machine.
#   - when nginx is installed, a fixed 200 from nginx with the same wrk settings: no database
#     at all, so it shows what this machine's HTTP loopback and scheduling alone cost
#     (on a small shared machine, most of the p99).
# Prints requests/s, p50 and p99 for each, and the api/pgbench ratio.
#
# Usage: bench/api.sh            (from anywhere; needs wrk and the PostgreSQL server binaries)
# Knobs: BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_DURATION (15, seconds),
#        BENCH_POOL_SIZE (the api's pool; default BENCH_CONNECTIONS, like pgbench's clients),
#        BENCH_ITEMS (10000 seeded rows), BENCH_PORT (18080), PG_BIN (newest /usr/lib/postgresql/*/bin).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
duration="${BENCH_DURATION:-15}"
items="${BENCH_ITEMS:-10000}"
port="${BENCH_PORT:-18080}"
pool_size="${BENCH_POOL_SIZE:-$connections}"

die() { echo "bench/api.sh: $*" >&2; exit 1; }
# The load tools (wrk, nginx) are installed the way the test command installs its own.
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk and nginx)"

command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
[[ -x "$pg_bin/initdb" && -x "$pg_bin/pgbench" ]] || die "PostgreSQL server binaries not found: apt-get install postgresql (or set PG_BIN)"

echo "== building the api (release)" >&2
cargo build --release -p api --manifest-path "$root/Cargo.toml" >&2
api_bin="${CARGO_TARGET_DIR:-$root/target}/release/api"

work="$(mktemp -d /tmp/pgbench.XXXXXX)"
api_pid=""
cleanup() {
    if [[ -n "$api_pid" ]]; then kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi
    if [[ -f "$work/nginx/nginx.pid" ]]; then kill "$(cat "$work/nginx/nginx.pid")" 2>/dev/null || true; fi
    stop_pg "$work"
    rm -rf "$work"
}
trap cleanup EXIT
echo "== starting PostgreSQL in $work" >&2
start_pg "$work" bench
database_url="host=$work user=postgres dbname=bench"

echo "== starting the api on 127.0.0.1:$port" >&2
DATABASE_URL="$database_url" API_LISTEN="127.0.0.1:$port" API_POOL_SIZE="$pool_size" \
    "$api_bin" 2>"$work/api.log" &
api_pid=$!
for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    kill -0 "$api_pid" 2>/dev/null || die "the api exited: $(cat "$work/api.log")"
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || die "the api is not ready: $(cat "$work/api.log")"
seed_items bench "$items"

run_wrk() { # name lua-script [port] [label]
    local target="http://127.0.0.1:${3:-$port}"
    echo "== wrk $1: $connections connections, $threads threads, ${duration}s" >&2
    ITEMS="$items" wrk -t"$threads" -c"$connections" -d2s -s "$root/bench/$2" "$target" >/dev/null # warm-up
    ITEMS="$items" wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$root/bench/$2" "$target" >"$work/$1.wrk"
    cat "$work/$1.wrk" >&2
    grep -q "Non-2xx" "$work/$1.wrk" && die "$1: the api answered errors under load (see above)"
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/$1.wrk")
    p50=$(wrk_ms 50% <"$work/$1.wrk")
    p99=$(wrk_ms 99% <"$work/$1.wrk")
    echo "$1 ${4:-api} $rps $p50 $p99" >>"$work/results"
}

run_nginx() { # a fixed 200 on the GET path, same wrk settings
    mkdir -p "$work/nginx"
    local tmp="client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;"
    tmp+=" uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;"
    printf '%s\n' \
        "worker_processes 2; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;" \
        "events { worker_connections 1024; }" \
        "http { access_log off; $tmp" \
        "  server { listen 127.0.0.1:$((port + 1)); location / { default_type application/json; return 200 '{\"id\":1,\"nom\":\"Test\",\"prix\":10.5}'; } } }" \
        >"$work/nginx/nginx.conf"
    nginx -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf"
    run_wrk floor api-get.lua "$((port + 1))" nginx
}

run_pgbench() { # name sql-script
    echo "== pgbench $1: $connections clients, $threads threads, ${duration}s" >&2
    "$pg_bin/pgbench" -h "$work" -U postgres -n -M prepared -c "$connections" -j "$threads" -T 2 \
        -D items="$items" -f "$root/bench/$2" bench >/dev/null 2>&1 # warm-up
    (cd "$work" && "$pg_bin/pgbench" -h "$work" -U postgres -n -M prepared -c "$connections" -j "$threads" \
        -T "$duration" -D items="$items" -l --log-prefix="pgblog_$1" -f "$root/bench/$2" bench >"$work/$1.pgbench" 2>&1)
    cat "$work/$1.pgbench" >&2
    local rps p50 p99
    rps=$(awk '/^tps = / { printf "%.0f", $3 }' "$work/$1.pgbench")
    # Per-transaction log: the third column is the latency in microseconds.
    cat "$work/pgblog_$1".* | awk '{ print $3 }' | sort -n >"$work/$1.latencies"
    local n; n=$(wc -l <"$work/$1.latencies")
    p50=$(awk -v n="$n" 'NR == int(n * 0.50) + 1 { printf "%.2f", $1 / 1000 }' "$work/$1.latencies")
    p99=$(awk -v n="$n" 'NR == int(n * 0.99) + 1 { printf "%.2f", $1 / 1000 }' "$work/$1.latencies")
    echo "$1 pgbench $rps $p50 $p99" >>"$work/results"
}

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
# Numbers from a machine that is running another benchmark are not worth recording.
others=0
for tool in wrk pgbench oha hey ab; do others=$((others + $(pgrep -xc "$tool" || true))); done
[[ $others == 0 ]] || echo "WARNING: $others other load generator(s) running: these figures are contended" >&2
: >"$work/results"
run_wrk get api-get.lua
run_pgbench get pgbench-get.sql
run_wrk post api-post.lua
run_pgbench post pgbench-post.sql
if command -v nginx >/dev/null; then run_nginx; else echo "== nginx not installed: no HTTP floor row" >&2; fi

echo
echo "items API vs pgbench ceiling: $connections concurrent clients, ${duration}s each, api pool $pool_size"
echo "machine: $(nproc) cores, $(uname -m); load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ $others == 0 ]] || echo "WARNING: $others other load generator(s) were running at the start: contended figures"
printf "%-28s %10s %9s %9s\n" "scenario" "req/s" "p50 ms" "p99 ms"
while read -r name via rps p50 p99; do
    case "$name" in get) what="GET /items/{id}" ;; post) what="POST /items" ;; floor) what="fixed 200 from nginx" ;; esac
    [[ $via == pgbench ]] && what="  same SQL via pgbench"
    printf "%-28s %10s %9s %9s\n" "$what" "$rps" "$p50" "$p99"
done <"$work/results"
echo
awk '{ rps[$1 " " $2] = $3 } END {
    printf "ratio api/pgbench (req/s): GET %.2f, POST %.2f\n", rps["get api"] / rps["get pgbench"], rps["post api"] / rps["post pgbench"]
}' "$work/results"
