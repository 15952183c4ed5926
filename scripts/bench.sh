#!/usr/bin/env bash
# Benchmark (not a test): generates the sizes (scripts/sizes.sh) once into bench-data/, then
# times for each: a bare scan of the columns the job reads (examples/scan.rs), and `run` end
# to end (six tables, month and quarter grains), with peak RSS sampled from /proc. Prints a
# Markdown table.
#
# Each scan and run is repeated BENCH_RUNS times (default 3): the table shows the median, the
# range and the median run's CPU seconds (user + system). This machine's speed drifts from
# hour to hour, so compare builds by interleaving them, not across separate sittings.
#
#   scripts/bench.sh                 # small medium large
#   SIZES="small medium" BENCH_RUNS=5 scripts/bench.sh
#
# Builds and times the release build (about 33 min cold on 2 cores). BENCH_BIN times another
# binary instead, with the scan example beside it in examples/ (CI runs the script on `small`
# with its debug build, to keep it working).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sizes.sh
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  build_release
  bin=$release_bin
fi
scan_bin=$(dirname "$bin")/examples/scan
sizes=${SIZES:-small medium large}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Runs the command, printing "seconds peak_MiB cpu_seconds"; stops it (and prints "stopped
# peak_MiB -") once its RSS passes BENCH_MAX_RSS_MIB (default 12288), so a run that does not
# fit in memory ends in a table row instead of a frozen machine. The CPU seconds come from
# bash's `times` in a shell that only runs the command.
max_kib=$(( ${BENCH_MAX_RSS_MIB:-12288} * 1024 ))
runs=${BENCH_RUNS:-3}
timed() {
  local start end pid child rss peak=0 stopped=0 cpu
  start=$(date +%s.%N)
  bash -c '"$@" > "$0/stdout" 2> "$0/stderr"; rc=$?; times > "$0/times"; exit $rc' "$out" "$@" &
  pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    # The command itself is the wrapper shell's only child.
    child=""
    read -r child _ < /proc/"$pid"/task/"$pid"/children 2> /dev/null || true
    rss=""
    if [ -n "$child" ]; then
      rss=$(awk '/VmRSS/ { print $2 }' /proc/"$child"/status 2> /dev/null || true)
    fi
    if [ -n "$rss" ] && [ "$rss" -gt "$peak" ]; then peak=$rss; fi
    if [ "$peak" -gt "$max_kib" ]; then kill -9 $child 2> /dev/null; stopped=1; fi
    sleep 0.02
  done
  if ! wait "$pid" && [ "$stopped" = 0 ]; then cat "$out/stderr" >&2; exit 1; fi
  end=$(date +%s.%N)
  if [ "$stopped" = 1 ]; then
    awk -v p="$peak" 'BEGIN { printf "stopped %.0f -", p / 1024 }'
    return
  fi
  # The second line of `times`: the children's user and system time, e.g. "0m4.4s 0m1.1s".
  cpu=$(sed -n 2p "$out/times" | awk '{
    t = 0
    for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
    printf "%.2f", t
  }')
  awk -v s="$start" -v e="$end" -v p="$peak" -v c="$cpu" 'BEGIN { printf "%.2f %.0f %s", e - s, p / 1024, c }'
}
# Runs `timed` BENCH_RUNS times: "median min max peak_MiB median_cpu", or "stopped ..." as soon
# as one run is stopped.
repeated() {
  local i line peak results=()
  for ((i = 0; i < runs; i++)); do
    rm -rf "$out/metrics"
    line=$(timed "$@")
    if [[ $line == stopped* ]]; then
      read -r _ peak _ <<< "$line"
      echo "stopped stopped stopped $peak -"
      return
    fi
    results+=("$line")
  done
  printf '%s\n' "${results[@]}" | sort -n | awk '
    BEGIN { p = 0 }
    { t[NR] = $1; c[NR] = $3; if ($2 + 0 > p) p = $2 + 0 }
    END { m = int((NR + 1) / 2); printf "%s %s %s %s %s", t[m], t[1], t[NR], p, c[m] }'
}
# "median (min–max)" when repeated.
range() { if [ "$runs" -gt 1 ] && [ "$1" != stopped ]; then echo "$1 ($2–$3)"; else echo "$1"; fi; }
echo "| size | activities | input (MiB) | generate (s) | bare scan (s) | run (s) | run CPU (s) | run / scan | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|"
for s in $sizes; do
  dir=bench-data/$s
  gen="-"
  if [ ! -f "$dir/pipeline.toml" ]; then
    line=$(timed $bin generate --out "$dir" ${size_args[$s]} --format parquet)
    read -r gen _ <<< "$line"
  fi
  mib=$(du -smL --exclude=output "$dir" | cut -f1)
  acts=$(grep -o -- '--activities [0-9]*' <<< "${size_args[$s]}" | cut -d' ' -f2)
  line=$(repeated "$scan_bin" "$dir/pipeline.toml")
  read -r scan scan_min scan_max _ <<< "$line"
  line=$(repeated $bin run --pipeline "$dir/pipeline.toml" --as-of 2024-12-31 \
    --output "$out/metrics" --log-format json)
  read -r run run_min run_max rss cpu <<< "$line"
  ratio=$(awk -v r="$run" -v s="$scan" 'BEGIN { if (r == "stopped") print "-"; else printf "%.1f", r / s }')
  echo "| $s | $acts | $mib | $gen | $(range "$scan" "$scan_min" "$scan_max") | $(range "$run" "$run_min" "$run_max") | ${cpu:--} | $ratio | $rss |"
  grep -o '"timings_ms":{[^}]*}' "$out/stdout" >&2 || true
done
