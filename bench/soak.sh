#!/usr/bin/env bash
# The soak of docs/stress-test.md: the whole stack (bench/stack.sh: PostgreSQL, the api, the
# sidecar with every example plugin, Prometheus) under steady load for SOAK_SECONDS, with the
# resident memory and open file descriptors of the api and the sidecar, and the plugins' linear
# memory, sampled every SOAK_INTERVAL seconds. Load: bench/stress.lua (the CRUD mix) with
# Locust's think time, so the table grows by the creates, as it would in production.
#
# Flat means: after the first minute (start-up, pools and caches filling), neither process's RSS
# grows by more than 10 % + 2 MiB, and open fds end where they were. The script prints every
# sample, then the verdict, and exits 1 when something is not flat.
#
# Usage: bench/soak.sh
# Knobs: SOAK_SECONDS (600), SOAK_INTERVAL (10), SOAK_USERS (200), STRESS_THINK_MS ("50-300"),
#        STRESS_ITEMS (10000), STRESS_PORT (18280 here), STRESS_CONFIG, PG_BIN.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
seconds="${SOAK_SECONDS:-600}"
interval="${SOAK_INTERVAL:-10}"
users="${SOAK_USERS:-200}"
think="${STRESS_THINK_MS:-50-300}"
items="${STRESS_ITEMS:-10000}"
port="${STRESS_PORT:-18280}"
config="${STRESS_CONFIG:-$root/config/sidecar.toml}"
die() { echo "bench/soak.sh: $*" >&2; exit 1; }
(( seconds >= 120 )) || die "SOAK_SECONDS must be at least 120 (the first minute is the baseline)"

"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk)"
source "$root/bench/stack.sh"

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# The plugins' linear memory (every instance of every plugin), from the sidecar's own gauge.
wasm_mib() {
    curl -fsS "http://127.0.0.1:$admin_port/metrics" |
        awk '/^sidecar_plugin_memory_bytes\{/ { b += $2 } END { printf "%.1f", b / 1048576 }'
}
echo "== soak: $users users, think ${think} ms, ${seconds}s, a sample every ${interval}s" >&2
ITEMS="$items" THINK_MIN_MS="${think%-*}" THINK_MAX_MS="${think#*-}" \
    wrk -t2 -c"$users" -d"${seconds}s" --timeout 10s -s "$root/bench/stress.lua" \
    "http://127.0.0.1:$proxy_port" >"$work/wrk.soak" 2>&1 &
wrk_pid=$!
start=$SECONDS
printf "%6s %10s %10s %8s %8s %12s %9s\n" "s" "api MiB" "side MiB" "api fds" "side fds" "items" "wasm MiB" | tee "$work/samples" >&2
while kill -0 "$wrk_pid" 2>/dev/null; do
    sleep "$interval"
    kill -0 "$api_pid" 2>/dev/null || die "the api died: $(tail -n 20 "$work/api.log")"
    kill -0 "$sidecar_pid" 2>/dev/null || die "the sidecar died: $(tail -n 20 "$work/sidecar.log")"
    rows=$("$pg_bin/psql" -h "$work" -U postgres -qAt -d stress -c "SELECT count(*) FROM items")
    printf "%6d %10.1f %10.1f %8d %8d %12d %9s\n" $((SECONDS - start)) \
        "$(awk -v k="$(rss_kib "$api_pid")" 'BEGIN { print k / 1024 }')" \
        "$(awk -v k="$(rss_kib "$sidecar_pid")" 'BEGIN { print k / 1024 }')" \
        "$(fds "$api_pid")" "$(fds "$sidecar_pid")" "$rows" "$(wasm_mib)" | tee -a "$work/samples" >&2
done
wait "$wrk_pid" || { cat "$work/wrk.soak" >&2; die "wrk failed"; }
sleep 2
# Idle again: keep-alive connections closed by wrk's exit are gone from both processes.
printf "%6s %10.1f %10.1f %8d %8d %12s %9s\n" "idle" \
    "$(awk -v k="$(rss_kib "$api_pid")" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$(rss_kib "$sidecar_pid")" 'BEGIN { print k / 1024 }')" \
    "$(fds "$api_pid")" "$(fds "$sidecar_pid")" "-" "$(wasm_mib)" | tee -a "$work/samples" >&2

echo
echo "soak: $users users, think ${think} ms, ${seconds}s, $(nproc) cores $(uname -m), sidecar with $plugins"
grep '^stress ' "$work/wrk.soak" || true
echo "plugin linear memory at the end (sidecar_plugin_memory_bytes):"
curl -fsS "http://127.0.0.1:$admin_port/metrics" | grep '^sidecar_plugin_memory_bytes{' || true
awk -v interval="$interval" '
    NR == 1 { next }
    $1 == "idle" { idle_api_fds = $4; idle_side_fds = $5; next }
    $1 + 0 >= 60 && !base { base = 1; a0 = $2; s0 = $3; fa0 = $4; fs0 = $5 }
    { a1 = $2; s1 = $3; if ($2 > amax) amax = $2; if ($3 > smax) smax = $3 }
    END {
        if (!base) { print "not enough samples after the first minute"; exit 1 }
        printf "api RSS     %7.1f MiB at 60 s, %7.1f at the end, %7.1f at most\n", a0, a1, amax
        printf "sidecar RSS %7.1f MiB at 60 s, %7.1f at the end, %7.1f at most\n", s0, s1, smax
        printf "open fds    api %d at 60 s, %d idle after; sidecar %d at 60 s, %d idle after\n", fa0, idle_api_fds, fs0, idle_side_fds
        bad = 0
        if (a1 > a0 * 1.10 + 2) { print "NOT FLAT: the api RSS grew"; bad = 1 }
        if (s1 > s0 * 1.10 + 2) { print "NOT FLAT: the sidecar RSS grew"; bad = 1 }
        if (idle_api_fds > fa0 || idle_side_fds > fs0) { print "NOT FLAT: open fds idle after the load exceed those under it"; bad = 1 }
        if (!bad) print "flat"
        exit bad
    }' "$work/samples"
