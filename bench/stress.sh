#!/usr/bin/env bash
# The stress test of docs/stress-test.md: the whole stack under rising load, then past the
# breaking point.
#
# Starts, all in release mode and on loopback: a throwaway PostgreSQL (ITEMS seeded rows), the
# api on it, the sidecar in front of it with the stack's own configuration (config/sidecar.toml:
# every example plugin), and a Prometheus scraping both every second. Then, for each step of
# STRESS_USERS, wrk runs bench/stress.lua (the CRUD mix of loadgen/locustfile.py, with Locust's
# think time between a user's requests) with one connection per user, and the script prints:
#   - the teaching stack's table: users, requests/s, p50/p95/p99, errors by kind;
#   - CPU (% of one core) and memory (PSS, MiB) of the api, the sidecar, PostgreSQL (all its
#     processes) and wrk over the step;
#   - what the dashboards would have shown at the end of the step, queried from Prometheus:
#     the sidecar's request rate and p95, the share of requests over the 500 ms SLO threshold,
#     the 5xx ratio, the pool's wait p99 and most waiting requests, the queries' p95, pool
#     timeouts, upstream errors by type, plugin faults.
# A step breaks the service when more than 1 % of its requests fail or miss the 500 ms SLO
# threshold of prometheus/rules (the error budget of the latency alerts).
#
# Usage: bench/stress.sh
# Knobs: STRESS_USERS ("20 100 200 400 800 1600 3200"), STRESS_DURATION (60, seconds per step),
#        STRESS_THINK_MS ("50-300", Locust's between(0.05, 0.3); "0" for no think time),
#        STRESS_THREADS (2, wrk threads), STRESS_POOL_SIZE (the api's pool; its default when
#        unset), STRESS_ITEMS (10000), STRESS_PORT (18180; +1 sidecar, +2 admin, +3 Prometheus),
#        STRESS_CONFIG (config/sidecar.toml), STRESS_OUT (a file that also receives the report),
#        PG_BIN (newest /usr/lib/postgresql/*/bin).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/bench/lib.sh"
read -r -a users_steps <<<"${STRESS_USERS:-20 100 200 400 800 1600 3200}"
duration="${STRESS_DURATION:-60}"
think="${STRESS_THINK_MS:-50-300}"
threads="${STRESS_THREADS:-2}"
items="${STRESS_ITEMS:-10000}"
port="${STRESS_PORT:-18180}"
config="${STRESS_CONFIG:-$root/config/sidecar.toml}"
die() { echo "bench/stress.sh: $*" >&2; exit 1; }

"$root/scripts/setup" bench >/dev/null || die "scripts/setup bench failed (it installs wrk)"
case "$think" in
    0) think_min=0 think_max=0 ;;
    *-*) think_min="${think%-*}" think_max="${think#*-}" ;;
    *) die "STRESS_THINK_MS must be MIN-MAX or 0, got $think" ;;
esac
source "$root/bench/stack.sh"

hz=$(getconf CLK_TCK)
run_step() { # users -> one line per table into $work/*.rows
    local users=$1 log="$work/wrk.$1"
    local api0 side0 pg0 start end wrk_pid wrk_ticks=0 t
    api0=$(ticks "$api_pid"); side0=$(ticks "$sidecar_pid"); pg0=$(pg_ticks)
    start=$(date +%s.%N)
    ITEMS="$items" THINK_MIN_MS="$think_min" THINK_MAX_MS="$think_max" \
        wrk -t"$threads" -c"$users" -d"${duration}s" --timeout 10s -s "$root/bench/stress.lua" \
        "http://127.0.0.1:$proxy_port" >"$log" 2>&1 &
    wrk_pid=$!
    while t=$(ticks "$wrk_pid" 2>/dev/null); do wrk_ticks=$t; sleep 0.5; done
    wait "$wrk_pid" || { cat "$log" >&2; die "wrk failed at $users users"; }
    end=$(date +%s.%N)
    local secs cpu
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
    cpu() { awk -v d="$1" -v s="$secs" -v hz="$hz" 'BEGIN { printf "%.0f", 100 * d / (s * hz) }'; }
    local line; line=$(grep '^stress ' "$log") || { cat "$log" >&2; die "no stress line from wrk"; }
    echo "$users $line" >>"$work/load.rows"
    echo "$users $(cpu $(($(ticks "$api_pid") - api0))) $(cpu $(($(ticks "$sidecar_pid") - side0))) $(cpu $(($(pg_ticks) - pg0))) $(cpu "$wrk_ticks") $(pss_mib "$api_pid") $(pss_mib "$sidecar_pid") $(pss_mib $(pg_pids))" >>"$work/resources.rows"
    sleep 2 # two more scrapes, so the step's last second is in Prometheus
    local at w="${duration}s" s='job="sidecar"'
    at=$(awk -v e="$end" 'BEGIN { printf "%.3f", e }')
    echo "$users" \
        "$(promq "sum(rate(http_requests_total{$s}[$w]))" "$at")" \
        "$(promq "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{$s}[$w])))" "$at")" \
        "$(promq "1 - sum(rate(http_request_duration_seconds_bucket{$s,le=\"0.5\"}[$w])) / sum(rate(http_request_duration_seconds_count{$s}[$w]))" "$at")" \
        "$(promq "(sum(rate(http_requests_total{$s,status=\"5xx\"}[$w])) or vector(0)) / sum(rate(http_requests_total{$s}[$w]))" "$at")" \
        "$(promq "histogram_quantile(0.99, sum by (le) (rate(db_connection_pool_wait_seconds_bucket[$w])))" "$at")" \
        "$(promq "max(max_over_time(db_connection_pool_waiting[$w]))" "$at")" \
        "$(promq "histogram_quantile(0.95, sum by (le) (rate(db_query_duration_seconds_bucket[$w])))" "$at")" \
        "$(promq "sum(increase(db_connection_pool_timeouts_total[$w]))" "$at")" \
        "$(promq "sum by (error_type) (increase(sidecar_upstream_errors_total[$w])) > 0" "$at")" \
        "$(promq "sum by (plugin, kind) (increase(sidecar_plugin_faults_total[$w])) > 0" "$at")" >>"$work/prometheus.rows"
}

echo "== warm-up: 20 users, 10 s" >&2
ITEMS="$items" THINK_MIN_MS="$think_min" THINK_MAX_MS="$think_max" \
    wrk -t"$threads" -c20 -d10s -s "$root/bench/stress.lua" "http://127.0.0.1:$proxy_port" >/dev/null
for users in "${users_steps[@]}"; do
    echo "== $users users, ${duration}s, think ${think} ms" >&2
    run_step "$users"
    sleep 3 # let the queues drain between steps
done

report() {
    echo "stress: the stack (api + PostgreSQL $("$pg_bin/postgres" --version | awk '{ print $3 }') + sidecar with $plugins), wrk $threads threads, one connection per user,"
    echo "think time ${think} ms, ${duration}s per step, $(nproc) cores $(uname -m), load average before $(cut -d' ' -f1-3 /proc/loadavg); api pool ${STRESS_POOL_SIZE:-default}"
    echo
    printf "%6s %9s %8s %8s %8s %8s %8s %6s %6s %6s %7s  %s\n" users "req/s" "p50 ms" "p95 ms" "p99 ms" "max ms" "2xx" "404" "4xx" "5xx" "socket" "codes"
    awk '{ n = $2; for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           ok = 0; nf = 0; c4 = 0; c5 = 0; split(v["codes"], cs, ",")
           for (j in cs) { split(cs[j], sc, ":"); s = sc[1] + 0
               if (s < 300) ok += sc[2]; else if (s == 404) nf += sc[2]; else if (s < 500) c4 += sc[2]; else c5 += sc[2] }
           printf "%6s %9.0f %8.1f %8.1f %8.1f %8.1f %8d %6d %6d %6d %7d  %s\n", $1, v["requests"] / v["seconds"],
               v["p50"], v["p95"], v["p99"], v["max"], ok, nf, c4, c5, v["connect"] + v["read"] + v["write"] + v["timeout"], v["codes"] }' \
        "$work/load.rows"
    awk '{ n = 0; bad = 0; for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           split(v["codes"], cs, ","); for (j in cs) { split(cs[j], sc, ":"); n += sc[2]; if (sc[1] + 0 >= 500) bad += sc[2] }
           bad += v["connect"] + v["read"] + v["write"] + v["timeout"]
           if (!found && (v["p99"] > 500 || bad > 0.01 * n)) {
               found = 1; printf "breaking point: %s users (p99 %.0f ms, %.2f %% errors; the SLO: 99 %% within 500 ms, errors under 1 %%)\n", $1, v["p99"], 100 * bad / n } }
         END { if (!found) print "breaking point: not reached (every step kept 99 % within 500 ms and errors under 1 %)" }' "$work/load.rows"
    echo
    echo "CPU over the step (% of one core; $(nproc) cores = $(($(nproc) * 100))%) and memory at its end (PSS, MiB)"
    printf "%6s %8s %8s %8s %8s   %8s %8s %8s\n" users "api" "sidecar" "postgres" "wrk" "api" "sidecar" "postgres"
    awk '{ printf "%6s %7s%% %7s%% %7s%% %7s%%   %8s %8s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$work/resources.rows"
    echo
    echo "Prometheus at the end of each step, over the step: sidecar req/s and p95 (s), share over 500 ms, 5xx ratio;"
    echo "api pool wait p99 (s), most requests waiting, query p95 (s), pool timeouts; sidecar upstream errors by type, plugin faults by plugin/kind"
    printf "%6s %8s %8s %8s %8s %9s %7s %8s %8s  %-24s %s\n" users "req/s" "p95" ">500ms" "5xx" "wait p99" "waiting" "db p95" "timeouts" "upstream errors" "faults"
    awk '{ printf "%6s %8s %8s %8s %8s %9s %7s %8s %8s  %-24s %s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$work/prometheus.rows"
}
logs() { # what the processes logged (WARN and above), the commonest messages first
    local name
    for name in api sidecar; do
        echo "$name log: $(grep -c . "$work/$name.log" || true) lines at WARN and above; most frequent messages:"
        sed -E 's/^[^ ]+ +//; s/\x1b\[[0-9;]*m//g; s/[0-9a-f]{32}|[0-9]+(\.[0-9]+)?(ms|s|µs)?/N/g' "$work/$name.log" |
            sort | uniq -c | sort -rn | head -n 4 | cut -c1-220
    done
}
echo
if [[ -n ${STRESS_OUT:-} ]]; then { report; echo; logs; } | tee "$STRESS_OUT"; else report; echo; logs; fi
