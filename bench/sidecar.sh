#!/usr/bin/env bash
# Side-by-side benchmark of the sidecar: the same load against a tiny upstream directly, through
# the sidecar, and through nginx configured as a keep-alive reverse proxy.
#
# The upstream is `sidecar/examples/bench_upstream.rs` (GET answers "hello", POST answers the
# body length), so the proxies' own cost is what shows. Load: wrk, fixed concurrency,
# keep-alive, `--latency`; a small GET and a POST with a 1 KiB body. Prints req/s, p50, p99 for
# each target, the ratios sidecar/direct and sidecar/nginx, and the sidecar's peak RSS.
# It also prints the CPU time (user + system, from /proc) the server under test spent per
# request: on a machine where wrk, the upstream and the proxy share the cores, req/s depends on
# what the others got; CPU per request is the proxy's own cost and moves much less with noise.
#
# Fairness: the sidecar and nginx get the same number of workers (BENCH_WORKERS, default one
# per CPU: the sidecar's `workers`, nginx's `worker_processes`), both keep upstream connections
# alive, and neither writes an access log.
#
# The targets are measured in interleaved rounds (direct, sidecar, nginx, then again) and each
# figure is the median over the rounds, so a burst of load from elsewhere on the machine hits
# all three alike instead of skewing one.
#
# Usage: bench/sidecar.sh          (from anywhere; needs wrk and nginx)
# Knobs: BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_DURATION (8, seconds per run),
#        BENCH_ROUNDS (3), BENCH_WORKERS (nproc),
#        BENCH_PORT_BASE (18100: upstream, +1 sidecar, +2 sidecar admin, +3 nginx),
#        NGINX (/usr/sbin/nginx).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
connections="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
duration="${BENCH_DURATION:-8}"
rounds="${BENCH_ROUNDS:-3}"
base="${BENCH_PORT_BASE:-18100}"
nginx="${NGINX:-/usr/sbin/nginx}"
workers="${BENCH_WORKERS:-$(nproc)}"
upstream_port=$base sidecar_port=$((base + 1)) admin_port=$((base + 2)) nginx_port=$((base + 3))

die() { echo "bench/sidecar.sh: $*" >&2; exit 1; }
# The load tools (wrk, nginx) are installed the way the test command installs its own.
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk and nginx)"
command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
[[ -x "$nginx" ]] || die "nginx not found at $nginx: apt-get install nginx-light (or set NGINX)"

echo "== building the sidecar and the bench upstream (release)" >&2
cargo build --release -p sidecar --bin sidecar --example bench_upstream --manifest-path "$root/Cargo.toml" >&2
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d /tmp/sidecar-bench.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
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

echo "== starting the upstream on 127.0.0.1:$upstream_port" >&2
"$target/examples/bench_upstream" "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream_pid=$!
pids+=("$upstream_pid")
wait_for "http://127.0.0.1:$upstream_port/hello" upstream

echo "== starting the sidecar on 127.0.0.1:$sidecar_port (admin $admin_port)" >&2
cat >"$work/sidecar.toml" <<TOML
workers = $workers
[[routes]]
template = "/hello"
[[routes]]
template = "/echo"
[[routes]]
template = "/items/{id}"
TOML
SIDECAR_LISTEN="127.0.0.1:$sidecar_port" SIDECAR_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    SIDECAR_UPSTREAM="http://127.0.0.1:$upstream_port" SIDECAR_CONFIG="$work/sidecar.toml" RUST_LOG=warn \
    "$target/sidecar" 2>"$work/sidecar.log" &
sidecar_pid=$!
pids+=("$sidecar_pid")
wait_for "http://127.0.0.1:$sidecar_port/hello" sidecar

echo "== starting nginx on 127.0.0.1:$nginx_port" >&2
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
    upstream bench_upstream {
        server 127.0.0.1:$upstream_port;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
NGINX
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_for "http://127.0.0.1:$nginx_port/hello" nginx
nginx_pids="$nginx_pid $(ps -o pid= --ppid "$nginx_pid" | tr '\n' ' ')"

run() { # round scenario target port pids [lua]
    local round=$1 scenario=$2 target=$3 port=$4 procs=($5) script=()
    [[ $# -ge 6 ]] && script=(-s "$root/bench/$6")
    local url="http://127.0.0.1:$port/hello"
    [[ $scenario == post ]] && url="http://127.0.0.1:$port"
    local out="$work/$round-$scenario-$target.wrk"
    echo "== round $round: wrk $scenario via $target: $connections connections, $threads threads, ${duration}s" >&2
    [[ $round == 1 ]] && wrk -t"$threads" -c"$connections" -d2s "${script[@]}" "$url" >/dev/null # warm-up
    local before after upstream_before upstream_after machine_before machine_after
    before=$(ticks "${procs[@]}") upstream_before=$(ticks "$upstream_pid") machine_before=$(machine_ticks)
    wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "${script[@]}" "$url" >"$out"
    after=$(ticks "${procs[@]}") upstream_after=$(ticks "$upstream_pid") machine_after=$(machine_ticks)
    cat "$out" >&2
    if grep -q -e "Non-2xx" -e "Socket errors" "$out"; then
        die "$scenario via $target: errors under load (see above)"
    fi
    local rps p50 p99 requests cpu upstream_cpu machine_cpu
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    p50=$(wrk_ms 50% <"$out")
    p99=$(wrk_ms 99% <"$out")
    requests=$(awk '/requests in/ { print $1 }' "$out")
    per_request() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }'; }
    cpu=$(per_request $((after - before)))
    upstream_cpu=$(per_request $((upstream_after - upstream_before)))
    machine_cpu=$(per_request $((machine_after - machine_before)))
    echo "$scenario $target $rps $p50 $p99 $cpu $upstream_cpu $machine_cpu" >>"$work/runs"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$work/runs"
for round in $(seq "$rounds"); do
    for target in direct sidecar nginx; do
        case $target in
            direct) port=$upstream_port procs=$upstream_pid ;;
            sidecar) port=$sidecar_port procs=$sidecar_pid ;;
            nginx) port=$nginx_port procs=$nginx_pids ;;
        esac
        run "$round" get "$target" "$port" "$procs"
        run "$round" post "$target" "$port" "$procs" sidecar-post.lua
    done
done
: >"$work/results"
for scenario in get post; do
    for target in direct sidecar nginx; do
        pick() { awk -v s="$scenario" -v t="$target" -v c="$1" '$1 == s && $2 == t { print $c }' "$work/runs" | median; }
        echo "$scenario $target $(pick 3) $(pick 4) $(pick 5) $(pick 6) $(pick 7) $(pick 8)" >>"$work/results"
    done
done

# Every request through the sidecar was counted (warm-ups included): a sanity check on the run.
counted=$(curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk '/^http_requests_total\{/ { s += $2 } END { printf "%.0f", s }')
peak_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$sidecar_pid/status")

echo
echo "sidecar vs direct vs nginx: $connections connections, $threads wrk threads, ${duration}s per run,"
echo "median of $rounds interleaved rounds; $workers workers each; $(nproc) cores, $(uname -m); load average before: $load_before"
echo "cpu us/req: user + system CPU of the server under test (the upstream for direct) per request;"
echo "upstream: the upstream's, machine: every process's and the kernel's, per request"
printf "%-30s %10s %9s %9s %11s %9s %8s\n" "scenario" "req/s" "p50 ms" "p99 ms" "cpu us/req" "upstream" "machine"
while read -r scenario target rps p50 p99 cpu upstream_cpu machine_cpu; do
    case "$scenario" in get) what="GET /hello" ;; post) what="POST /echo (1 KiB)" ;; esac
    printf "%-30s %10s %9s %9s %11s %9s %8s\n" "$what via $target" "$rps" "$p50" "$p99" "$cpu" "$upstream_cpu" "$machine_cpu"
done <"$work/results"
echo
awk '{ rps[$1 " " $2] = $3; p99[$1 " " $2] = $5; cpu[$1 " " $2] = $6 } END {
    for (s = 1; s <= 2; s++) {
        sc = (s == 1) ? "get" : "post"
        printf "%-4s ratio sidecar/direct req/s %.2f, sidecar/nginx req/s %.2f, p99 sidecar/nginx %.2f, cpu/req sidecar/nginx %.2f\n", toupper(sc),
            rps[sc " sidecar"] / rps[sc " direct"], rps[sc " sidecar"] / rps[sc " nginx"], p99[sc " sidecar"] / p99[sc " nginx"],
            cpu[sc " sidecar"] / cpu[sc " nginx"]
    }
}' "$work/results"
echo "sidecar peak RSS (VmHWM): $((peak_kib / 1024)) MiB ($peak_kib KiB); requests counted in http_requests_total: $counted"
