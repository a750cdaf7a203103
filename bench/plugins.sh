#!/usr/bin/env bash
# Per-request cost of Proxy-Wasm plugins, side by side in one run.
#
# Builds the release sidecar, the tiny upstream (sidecar/examples/bench_upstream.rs) and the
# example plugins (plugins/build), then runs wrk at a fixed concurrency through the sidecar with:
# no plugin, client-slo only (headers + properties), items-business only (request and response
# bodies), both, and both again loaded from a warm `--wasm-cache-dir` ("both,cached": nothing
# compiled at start, as after a restart). Two request kinds: GET /items/{id} and POST /items with a JSON body.
# The four configurations are measured in interleaved rounds (BENCH_ROUNDS, default 3) and each
# row shows the median round, so a burst of load from another process skews one round, not a row.
# Prints req/s, p50/p99, the throughput ratio against "no plugin" and the added p50/p99, and the
# sidecar's RSS per configuration (idle after start, after the load, peak).
# Then the cost of one callback and one hostcall round trip, and of one request through the
# plugin layer in-process (wasm-host/examples/plugin_callback.rs).
#
# Usage: bench/plugins.sh       Knobs: BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#        BENCH_DURATION (5, seconds), BENCH_ROUNDS (3), BENCH_PORT (18180; and the next two ports),
#        BENCH_BEFORE (a directory holding another build's `sidecar` and, in `examples/`,
#        `plugin_callback`: each configuration is then also run with it, interleaved in the
#        same rounds, as rows `before:<plugins>` with ratios against `before:none`: an A/B of
#        two builds on the same machine at the same time), BENCH_BEFORE_PLUGINS (a directory
#        holding another build of client-slo.wasm and items-business.wasm: the `before:` rows
#        load those, with BENCH_BEFORE's sidecar if set, else this one).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
duration="${BENCH_DURATION:-5}"
rounds="${BENCH_ROUNDS:-3}"
port="${BENCH_PORT:-18180}"
upstream_port=$((port + 1))
admin_port=$((port + 2))

die() { echo "bench/plugins.sh: $*" >&2; exit 1; }
# The load tools (wrk, nginx) are installed the way the test command installs its own.
"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk and nginx)"
command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
command -v curl >/dev/null || die "curl not found: apt-get install curl"

echo "== building plugins, the sidecar and the bench upstream (release)" >&2
build_plugin_bench

work="$(mktemp -d /tmp/plugins-bench.XXXXXX)"
upstream_pid="" sidecar_pid=""
stop() { # pid
    if [[ -n "$1" ]]; then kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; fi
}
cleanup() { stop "$sidecar_pid"; stop "$upstream_pid"; rm -rf "$work"; }
trap cleanup EXIT

"$target/examples/bench_upstream" "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream_pid=$!

example_plugins

start_sidecar() { # binary config-text [extra flags...]
    printf '%s' "$2" >"$work/sidecar.toml"
    RUST_LOG=warn "$1" "${@:3}" --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin_port" \
        --upstream "http://127.0.0.1:$upstream_port" --config "$work/sidecar.toml" 2>"$work/sidecar.log" &
    sidecar_pid=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$sidecar_pid" 2>/dev/null || die "the sidecar exited: $(cat "$work/sidecar.log")"
        sleep 0.1
    done
    die "the sidecar did not start: $(cat "$work/sidecar.log")"
}

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$sidecar_pid/status"; } # VmRSS | VmHWM

run() { # scenario config [binary [extra flags...]]
    start_sidecar "${3:-$target/sidecar}" "$2" "${@:4}"
    sleep 0.5 # start-up allocations settle
    local idle_kib; idle_kib=$(kib VmRSS)
    for kind in get post; do
        local args=(-t"$threads" -c"$connections" -H "User-Agent: wrk/4.2")
        local url="http://127.0.0.1:$port/items/7"
        if [[ $kind == post ]]; then args+=(-s "$work/post.lua"); url="http://127.0.0.1:$port"; fi
        echo "== round $round, $1, $kind: $connections connections, ${duration}s" >&2
        wrk "${args[@]}" -d1s "$url" >/dev/null # warm-up
        wrk "${args[@]}" -d"${duration}s" --latency "$url" >"$work/$1.$kind.wrk"
        grep -q "Non-2xx\|Socket errors" "$work/$1.$kind.wrk" && { cat "$work/$1.$kind.wrk" >&2; die "$1 $kind: errors under load"; }
        echo "$1 $kind $round $(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$work/$1.$kind.wrk") $(wrk_ms 50% <"$work/$1.$kind.wrk") $(wrk_ms 99% <"$work/$1.$kind.wrk")" >>"$work/results"
    done
    curl -fsS "http://127.0.0.1:$admin_port/metrics" | grep -E '^sidecar_plugin_faults_total' >&2 || true
    echo "$1 $round $idle_kib $(kib VmRSS) $(kib VmHWM)" >>"$work/memory"
    stop "$sidecar_pid"; sidecar_pid=""
}

: >"$work/results"
: >"$work/memory"
before="${BENCH_BEFORE:-}"
before_plugins="${BENCH_BEFORE_PLUGINS:-}"
[[ -z $before || -x $before/sidecar ]] || die "BENCH_BEFORE=$before holds no sidecar binary"
prefixes=("")
[[ -n $before || -n $before_plugins ]] && prefixes+=("before:")
# The `before:` rows' plugin configurations: these plugins, or BENCH_BEFORE_PLUGINS' build.
before_slo=$client_slo before_items=$items_business
if [[ -n $before_plugins ]]; then
    mkdir "$work/before"
    cp "$before_plugins/client-slo.wasm" "$before_plugins/items-business.wasm" "$work/before/" ||
        die "BENCH_BEFORE_PLUGINS=$before_plugins holds no client-slo.wasm and items-business.wasm"
    before_slo=${client_slo/path = \"/path = \"before\/}
    before_items=${items_business/path = \"/path = \"before\/}
fi
# "both, cached": the same two plugins loaded from a warm --wasm-cache-dir (what a restart
# finds), so start-up compiles nothing. Warmed once here, before the rounds.
cache_flags=(--wasm-cache-dir "$work/wasm-cache")
start_sidecar "$target/sidecar" "$routes$client_slo$items_business" "${cache_flags[@]}"
stop "$sidecar_pid"; sidecar_pid=""
for round in $(seq "$rounds"); do
    for prefix in "${prefixes[@]}"; do
        bin="$target/sidecar" slo=$client_slo items=$items_business
        if [[ -n $prefix ]]; then
            bin="${before:-$target}/sidecar" slo=$before_slo items=$before_items
        fi
        run "${prefix}none" "$routes" "$bin"
        run "${prefix}client-slo" "$routes$slo" "$bin"
        run "${prefix}items-business" "$routes$items" "$bin"
        run "${prefix}both" "$routes$slo$items" "$bin"
        [[ -z $prefix ]] && run "both,cached" "$routes$client_slo$items_business" "$bin" "${cache_flags[@]}"
    done
done
# The median round (by req/s) of each configuration and request kind.
sort -k1,1 -k2,2 -k4,4n "$work/results" | awk -v r="$rounds" '
    { key = $1 " " $2; n[key]++; if (n[key] == int((r + 1) / 2)) print $1, $2, $4, $5, $6 }' >"$work/medians"

echo
echo "plugins in the sidecar: wrk $connections connections, $threads threads, median of $rounds rounds of ${duration}s, $(nproc) cores, $(uname -m), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-22s %-5s %9s %7s %9s %9s %11s %11s\n" "plugins" "req" "req/s" "ratio" "p50 ms" "p99 ms" "+p50 ms" "+p99 ms"
for prefix in "${prefixes[@]}"; do
    awk -v base="${prefix}none" '{ key = $2; if ($1 == base) { base_rps[key] = $3; base50[key] = $4; base99[key] = $5 }
           row[NR] = $0 }
         END { for (i = 1; i <= NR; i++) { split(row[i], f, " "); k = f[2]
               printf "%-22s %-5s %9s %7.2f %9.3f %9.3f %+11.3f %+11.3f\n", f[1], toupper(k), f[3], f[3] / base_rps[k], f[4], f[5], f[4] - base50[k], f[5] - base99[k] } }' \
        <(for p in none client-slo items-business both both,cached; do grep "^$prefix$p " "$work/medians"; done)
done
echo
# A round's configurations run a minute apart at most; the machine's state moves more than that
# between rounds, so each round's own ratio to `none` is the steadier figure.
echo "req/s ratio to none, median of each round's own ratio (lowest and highest round in brackets):"
for prefix in "${prefixes[@]}"; do
    for p in client-slo items-business both both,cached; do
        [[ -z $prefix || $p != both,cached ]] || continue
        line=$(printf "%-22s" "$prefix$p")
        for kind in get post; do
            ratios=$(awk -v c="$prefix$p" -v base="${prefix}none" -v k="$kind" '$2 == k { v[$1, $3] = $4 }
                END { for (key in v) { split(key, f, SUBSEP); if (f[1] == c && ((base, f[2]) in v)) printf "%.3f\n", v[key] / v[base, f[2]] } }' \
                "$work/results" | sort -g)
            line+="  ${kind^^} $(median <<<"$ratios") [$(head -1 <<<"$ratios")-$(tail -1 <<<"$ratios")]"
        done
        echo "$line"
    done
done
echo
echo "sidecar memory (MiB, median round): idle after start, after the load, peak (VmHWM)"
printf "%-22s %9s %11s %9s %11s\n" "plugins" "idle" "after load" "peak" "+peak"
for prefix in "${prefixes[@]}"; do
    sort -k1,1 -k5,5n "$work/memory" | awk -v r="$rounds" -v pre="$prefix" '
        { n[$1]++; if (n[$1] == int((r + 1) / 2)) { idle[$1] = $3; after[$1] = $4; peak[$1] = $5 } }
        END { configs = split("none client-slo items-business both both,cached", order, " ")
              for (i = 1; i <= configs; i++) { p = pre order[i]; if (!(p in peak)) continue
                  printf "%-22s %9.1f %11.1f %9.1f %+11.1f\n", p, idle[p] / 1024, after[p] / 1024, peak[p] / 1024, (peak[p] - peak[pre "none"]) / 1024 } }'
done
echo
echo "one call into a plugin (wasm-host/examples/plugin_callback.rs, in-process, one core):"
if [[ -n $before_plugins ]]; then
    PLUGIN_CALLBACK_BEFORE_DIST="$work/before" "$target/examples/plugin_callback"
else
    "$target/examples/plugin_callback"
fi
if [[ -n $before && -x $before/examples/plugin_callback ]]; then
    echo
    echo "the same with BENCH_BEFORE's build ($before):"
    (cd "$root/sidecar" && "$before/examples/plugin_callback")
elif [[ -n $before ]]; then
    echo "(BENCH_BEFORE has no examples/plugin_callback: its in-process figures are not shown)"
fi
