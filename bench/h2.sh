#!/usr/bin/env bash
# HTTP/2 benchmark: h2load (HTTP/2 cleartext, prior knowledge) through the sidecar, through
# nginx (`http2` on a cleartext listener) and through HAProxy (`proto h2`), same run, same
# worker count, each proxying to the same tiny HTTP/1.1 upstream over keep-alive connections
# (sidecar/examples/bench_upstream.rs). Prints req/s, p50/p99 (from h2load's per-request log)
# and the CPU time the proxy spent per request, and the sidecar's ratios to the others.
#
# The targets are measured in interleaved rounds and each figure is the median over the rounds.
# The ratios are the medians of each round's own ratios: the three runs of a round are seconds
# apart, so they share the machine's state, which on a shared VM can move throughput by a third
# from one minute to the next (a ratio of medians can then compare a fast minute to a slow one).
#
# Usage: bench/h2.sh     (installs h2load, nginx and HAProxy through scripts/setup bench)
# Knobs: BENCH_CLIENTS (32), BENCH_STREAMS (10, concurrent streams per connection),
#        BENCH_REQUESTS (100000 per run), BENCH_ROUNDS (9), BENCH_WORKERS (nproc),
#        BENCH_PORT_BASE (18200: upstream, +1 sidecar, +2 sidecar admin, +3 nginx, +4 HAProxy).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
clients="${BENCH_CLIENTS:-32}"
streams="${BENCH_STREAMS:-10}"
requests="${BENCH_REQUESTS:-100000}"
rounds="${BENCH_ROUNDS:-9}"
workers="${BENCH_WORKERS:-$(nproc)}"
base="${BENCH_PORT_BASE:-18200}"
upstream_port=$base sidecar_port=$((base + 1)) admin_port=$((base + 2))
nginx_port=$((base + 3)) haproxy_port=$((base + 4))
nginx=/usr/sbin/nginx haproxy=/usr/sbin/haproxy

die() { echo "bench/h2.sh: $*" >&2; exit 1; }
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs h2load, nginx, HAProxy)"
command -v h2load >/dev/null || die "h2load not found: apt-get install nghttp2-client"
[[ -x $nginx ]] || die "nginx not found at $nginx: apt-get install nginx-light"
[[ -x $haproxy ]] || die "haproxy not found at $haproxy: apt-get install haproxy"

echo "== building the sidecar and the bench upstream (release)" >&2
cargo build --release -p sidecar --bin sidecar --example bench_upstream --manifest-path "$root/Cargo.toml" >&2
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d /tmp/h2-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_h2() { # port name
    for _ in $(seq 100); do
        if h2load -n1 -c1 "http://127.0.0.1:$1/hello" 2>/dev/null | grep -q "1 succeeded"; then return 0; fi
        sleep 0.1
    done
    die "$2 does not answer HTTP/2 on port $1: $(cat "$work"/*.log 2>/dev/null)"
}

"$target/examples/bench_upstream" "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream_pid=$!
pids+=("$upstream_pid")

cat >"$work/sidecar.toml" <<TOML
workers = $workers
[[routes]]
template = "/hello"
TOML
SIDECAR_LISTEN="127.0.0.1:$sidecar_port" SIDECAR_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    SIDECAR_UPSTREAM="http://127.0.0.1:$upstream_port" SIDECAR_CONFIG="$work/sidecar.toml" RUST_LOG=warn \
    "$target/sidecar" 2>"$work/sidecar.log" &
sidecar_pid=$!
pids+=("$sidecar_pid")

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes $workers;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    http2_max_concurrent_streams 256;
    keepalive_requests 10000000;   # the default 1,000 ends each HTTP/2 connection (GOAWAY) mid-run
    upstream bench_upstream {
        server 127.0.0.1:$upstream_port;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$nginx_port http2;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
NGINX
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")

cat >"$work/haproxy.cfg" <<HAPROXY
global
    nbthread $workers
    maxconn 8192
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend h2
    bind 127.0.0.1:$haproxy_port proto h2
    option forwardfor
    default_backend upstream
backend upstream
    server up 127.0.0.1:$upstream_port
HAPROXY
"$haproxy" -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" &
haproxy_pid=$!
pids+=("$haproxy_pid")

wait_h2 "$sidecar_port" sidecar
wait_h2 "$nginx_port" nginx
wait_h2 "$haproxy_port" haproxy
nginx_pids="$nginx_pid $(ps -o pid= --ppid "$nginx_pid" | tr '\n' ' ')"

run() { # round target port pids
    local round=$1 target=$2 port=$3 procs=($4)
    local out="$work/$round-$target.h2load" log="$work/$round-$target.log"
    echo "== round $round: h2load via $target: $clients connections x $streams streams, $requests requests" >&2
    [[ $round == 1 ]] && h2load -n20000 -c"$clients" -m"$streams" "http://127.0.0.1:$port/hello" >/dev/null
    local before after
    before=$(ticks "${procs[@]}")
    h2load -n"$requests" -c"$clients" -m"$streams" --log-file="$log" "http://127.0.0.1:$port/hello" >"$out"
    after=$(ticks "${procs[@]}")
    grep -E "^finished in|^requests:|^status codes:" "$out" >&2
    grep -q " 0 failed, 0 errored, 0 timeout" "$out" || die "$target: failed requests (see $out)"
    local rps cpu p50 p99
    rps=$(awk '/^finished in/ { v = $4; gsub(/,/, "", v); printf "%.0f", v }' "$out")
    cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
    # The log's third column is each request's time in microseconds.
    read -r p50 p99 < <(cut -f3 "$log" | sort -n | awk '{ v[NR] = $1 } END { printf "%.3f %.3f\n", v[int(NR * 0.5)] / 1000, v[int(NR * 0.99)] / 1000 }')
    echo "$target $rps $p50 $p99 $cpu $round" >>"$work/runs"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/runs"
for round in $(seq "$rounds"); do
    run "$round" sidecar "$sidecar_port" "$sidecar_pid"
    run "$round" nginx "$nginx_port" "$nginx_pids"
    run "$round" haproxy "$haproxy_port" "$haproxy_pid"
done
counted=$(curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk '/^http_requests_total\{/ { s += $2 } END { printf "%.0f", s }')

echo
echo "HTTP/2 cleartext through each proxy to an HTTP/1.1 upstream: h2load, $clients connections x $streams"
echo "concurrent streams, $requests requests per run, median of $rounds interleaved rounds; $workers workers"
echo "each; $(nproc) cores, $(uname -m); load average before: $load_before. cpu us/req: the proxy's user + system CPU per request"
printf "%-10s %10s %9s %9s %11s\n" "proxy" "req/s" "p50 ms" "p99 ms" "cpu us/req"
for target in sidecar nginx haproxy; do
    pick() { awk -v t="$target" -v c="$1" '$1 == t { print $c }' "$work/runs" | median; }
    printf "%-10s %10s %9s %9s %11s\n" "$target" "$(pick 2)" "$(pick 3)" "$(pick 4)" "$(pick 5)"
    echo "$target $(pick 2) $(pick 3) $(pick 4) $(pick 5)" >>"$work/results"
done
echo
echo "the sidecar's ratios, median of the $rounds rounds' own ratios (lowest and highest round in brackets):"
for other in nginx haproxy; do
    line="sidecar/$other"
    for column in 2:req/s 4:p99 5:cpu/req; do
        # Each round's ratio of the sidecar's figure to the other proxy's, then their median.
        ratios=$(awk -v o="$other" -v c="${column%%:*}" '{ v[$6, $1] = $c } END {
            for (k in v) { split(k, part, SUBSEP); r = part[1]
                if (part[2] == "sidecar" && ((r, o) in v) && v[r, o] > 0) printf "%.3f\n", v[r, "sidecar"] / v[r, o] }
        }' "$work/runs" | sort -g)
        line+="  ${column#*:} $(median <<<"$ratios") [$(head -1 <<<"$ratios")-$(tail -1 <<<"$ratios")]"
    done
    echo "$line"
done
echo "requests counted in the sidecar's http_requests_total (warm-up included): $counted"
