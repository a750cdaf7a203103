# Shell functions the benchmark scripts share; sourced, not run.

# CPU ticks (user + system, all threads) of the processes in "$@".
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }

# Busy CPU ticks of the whole machine (user, nice, system, irq, softirq).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# wrk --latency prints "50%  1.23ms"; `wrk_ms 50%` turns that line of stdin into milliseconds.
wrk_ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else f = 1000; sub(/[a-z]+$/, "", v); printf "%.3f", v * f }'; }

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A throwaway PostgreSQL cluster in directory "$1" (unix socket there, no TCP), with database
# "$2" created; as root its tools run as the postgres user. Sets pg_bin (PG_BIN or the newest
# /usr/lib/postgresql/*/bin), as_pg and psql (an array). stop_pg "$1" stops it.
start_pg() {
    pg_bin="${pg_bin:-${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}}"
    if [[ ! -x "$pg_bin/initdb" ]]; then
        echo "PostgreSQL server binaries not found: apt-get install postgresql (or set PG_BIN)" >&2
        return 1
    fi
    as_pg=()
    if [[ $(id -u) == 0 ]]; then as_pg=(runuser -u postgres --); chown postgres: "$1"; fi
    "${as_pg[@]}" "$pg_bin/initdb" -D "$1/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$1/data" -l "$1/pg.log" -w \
        -o "-c listen_addresses='' -k $1 -c max_connections=200" start >/dev/null
    psql=("$pg_bin/psql" -h "$1" -U postgres -v ON_ERROR_STOP=1 -qAt)
    "${psql[@]}" -d postgres -c "CREATE DATABASE $2"
}
stop_pg() { [[ -z ${pg_bin:-} ]] || "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$1/data" -m immediate stop >/dev/null 2>&1 || true; }

# "$2" rows in the items table of database "$1" (the api creates the table at start-up).
seed_items() {
    "${psql[@]}" -d "$1" -c "INSERT INTO items (nom, prix) SELECT 'item ' || n, n / 100.0 FROM generate_series(1, $2) AS n" \
        -c "VACUUM ANALYZE items"
}

# Builds the example plugins and, in release, the sidecar, the bench upstream and the
# plugin_callback example; sets `target` (the release directory).
build_plugin_bench() {
    "$root/plugins/build" >&2
    cargo build --release -p sidecar -p wasm-host --bin sidecar --example bench_upstream \
        --example plugin_callback --manifest-path "$root/Cargo.toml" >&2
    target="${CARGO_TARGET_DIR:-$root/target}/release"
}

# The example plugins in "$work" (copied from plugins/dist), wrk's POST script ("$work/post.lua":
# an item as JSON to /items), and their sidecar configurations: sets `routes` (the items API's
# two templates), `items_business` (bodies) and `client_slo`, `[[...]]` TOML to concatenate.
example_plugins() {
    cp "$root/plugins/dist/items-business.wasm" "$root/plugins/dist/client-slo.wasm" "$work/"
    cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.path = "/items"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"nom":"bench item","prix":42.5}'
EOF
    routes='[[routes]]
template = "/items"
[[routes]]
template = "/items/{id}"
'
    items_business='[[plugins]]
name = "items-business"
path = "items-business.wasm"
request_body = true
response_body = true
'
    client_slo='[[plugins]]
name = "client-slo"
path = "client-slo.wasm"
configuration = '"'"'{"threshold_ms": 250}'"'"'
'
}
