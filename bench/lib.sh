# Shell functions the benchmark scripts share; sourced, not run.

# CPU ticks (user + system, all threads) of the processes in "$@".
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }

# Busy CPU ticks of the whole machine (user, nice, system, irq, softirq).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# wrk --latency prints "50%  1.23ms"; `wrk_ms 50%` turns that line of stdin into milliseconds.
wrk_ms() { awk -v p="$1" '$1 == p { v = $2; if (v ~ /us$/) f = 0.001; else if (v ~ /ms$/) f = 1; else f = 1000; sub(/[a-z]+$/, "", v); printf "%.3f", v * f }'; }

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
