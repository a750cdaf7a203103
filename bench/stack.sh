# The stack under test for bench/stress.sh and bench/soak.sh; sourced, not run.
# Expects: root, port, items, config, die(). Starts, in release mode and on loopback, a throwaway
# PostgreSQL (ITEMS seeded rows), the api on it (port; STRESS_POOL_SIZE sets its pool), the
# sidecar in front of it with $config (port+1, admin port+2) and a Prometheus scraping both every
# second (port+3); stops them all on exit. Sets api_pid, sidecar_pid, pg_pid, plugins, and
# defines pg_pids, pg_ticks, pss_mib, fds and promq.
proxy_port=$((port + 1)) admin_port=$((port + 2)) prom_port=$((port + 3))
for tool in wrk curl python3 prometheus; do
    command -v "$tool" >/dev/null || die "$tool not found: scripts/setup (apt-get install $tool)"
done
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
[[ -x "$pg_bin/initdb" ]] || die "PostgreSQL server binaries not found: apt-get install postgresql (or set PG_BIN)"
# One connection per user on each side of the sidecar, plus the pool: beyond the default 1024 fds.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== building plugins, the api and the sidecar (release)" >&2
"$root/plugins/build" >&2
cargo build --release -p api -p sidecar --bins --manifest-path "$root/Cargo.toml" >&2
target="${CARGO_TARGET_DIR:-$root/target}/release"

work="$(mktemp -d /tmp/stress.XXXXXX)"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    stop_pg "$work"
    rm -rf "$work"
}
trap cleanup EXIT

wait_up() { # name url pid log
    for _ in $(seq 300); do
        curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$1 exited: $(tail -n 20 "$4")"
        sleep 0.1
    done
    die "$1 not up at $2: $(tail -n 20 "$4")"
}

echo "== PostgreSQL, the api, the sidecar and Prometheus in $work" >&2
start_pg "$work" stress || die "PostgreSQL did not start"
pg_pid=$(head -n1 "$work/data/postmaster.pid")

api_env=(DATABASE_URL="host=$work user=postgres dbname=stress" API_LISTEN="127.0.0.1:$port")
[[ -n ${STRESS_POOL_SIZE:-} ]] && api_env+=(API_POOL_SIZE="$STRESS_POOL_SIZE")
env "${api_env[@]}" RUST_LOG=warn "$target/api" 2>"$work/api.log" &
api_pid=$!; pids+=("$api_pid")
wait_up api "http://127.0.0.1:$port/readyz" "$api_pid" "$work/api.log"
seed_items stress "$items"

RUST_LOG=warn "$target/sidecar" --listen "127.0.0.1:$proxy_port" --admin-listen "127.0.0.1:$admin_port" \
    --upstream "http://127.0.0.1:$port" --config "$config" 2>"$work/sidecar.log" &
sidecar_pid=$!; pids+=("$sidecar_pid")
wait_up sidecar "http://127.0.0.1:$admin_port/readyz" "$sidecar_pid" "$work/sidecar.log"

cat >"$work/prometheus.yml" <<EOF
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - { job_name: api, static_configs: [ { targets: ["127.0.0.1:$port"] } ] }
  - { job_name: sidecar, static_configs: [ { targets: ["127.0.0.1:$admin_port"] } ] }
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!; pids+=("$prom_pid")
wait_up prometheus "http://127.0.0.1:$prom_port/-/ready" "$prom_pid" "$work/prometheus.log"

plugins=$(curl -fsS "http://127.0.0.1:$admin_port/metrics" |
    sed -n 's/^sidecar_plugin_memory_bytes{plugin="\([^"]*\)".*/\1/p' | sort -u | paste -sd, -)

pg_pids() { echo "$pg_pid" $(pgrep -P "$pg_pid" || true); }
pg_ticks() { # the postmaster's own and its reaped children's time, then the live backends'
    local t p v
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pg_pid/stat")
    for p in $(pgrep -P "$pg_pid" || true); do
        v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || continue # exited meanwhile
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
pss_mib() { # PSS of the processes in "$@", so PostgreSQL's shared buffers count once
    local kib=0 p v
    for p in "$@"; do v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0); kib=$((kib + ${v:-0})); done
    awk -v k="$kib" 'BEGIN { printf "%.0f", k / 1024 }'
}
promq() { # query time -> "value" or "label=value,..." (empty result: -)
    curl -fsS --data-urlencode "query=$1" --data-urlencode "time=$2" "http://127.0.0.1:$prom_port/api/v1/query" |
        python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
def num(v):
    f = float(v)
    return "NaN" if f != f else ("%.4g" % f)
if not r: print("-")
elif len(r) == 1 and not r[0]["metric"]: print(num(r[0]["value"][1]))
else: print(",".join("%s=%s" % ("/".join(m["metric"].values()) or "all", num(m["value"][1])) for m in r))'
}

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
