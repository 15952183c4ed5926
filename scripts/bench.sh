#!/usr/bin/env bash
# Benchmark (not a test): generates the three sizes of issue 7 once into bench-data/, then times
# for each: a bare scan of the columns the job reads, and `run` end to end (six tables, month
# and quarter grains), with peak RSS sampled from /proc. Prints a Markdown table.
#
#   scripts/bench.sh                 # small medium large
#   SIZES="small medium" scripts/bench.sh
#
# Needs the release build (about 33 min cold on 2 cores; cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/sales-metrics
sizes=${SIZES:-small medium large}
declare -A args=(
  [small]="--reps 40 --deals 3000 --leads 5000 --activities 30000"
  [medium]="--reps 1000 --deals 500000 --leads 500000 --activities 5000000"
  [large]="--reps 10000 --deals 5000000 --leads 5000000 --activities 50000000"
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Runs the command, printing "seconds peak_MiB"; stops it (and prints "stopped peak_MiB")
# once its RSS passes BENCH_MAX_RSS_MIB (default 12288), so a run that does not fit in
# memory ends in a table row instead of a frozen machine.
max_kib=$(( ${BENCH_MAX_RSS_MIB:-12288} * 1024 ))
timed() {
  local start end pid rss peak=0 stopped=0
  start=$(date +%s.%N)
  "$@" > "$out/stdout" 2> "$out/stderr" &
  pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2> /dev/null || true)
    if [ -n "$rss" ] && [ "$rss" -gt "$peak" ]; then peak=$rss; fi
    if [ "$peak" -gt "$max_kib" ]; then kill -9 "$pid" 2> /dev/null; stopped=1; fi
    sleep 0.02
  done
  if ! wait "$pid" && [ "$stopped" = 0 ]; then cat "$out/stderr" >&2; exit 1; fi
  end=$(date +%s.%N)
  if [ "$stopped" = 1 ]; then
    awk -v p="$peak" 'BEGIN { printf "stopped %.0f", p / 1024 }'
  else
    awk -v s="$start" -v e="$end" -v p="$peak" 'BEGIN { printf "%.2f %.0f", e - s, p / 1024 }'
  fi
}
echo "| size | activities | input (MiB) | generate (s) | bare scan (s) | run (s) | run / scan | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|"
for s in $sizes; do
  dir=bench-data/$s
  gen="-"
  if [ ! -f "$dir/pipeline.toml" ]; then
    read -r gen _ <<< "$(timed $bin generate --out "$dir" ${args[$s]} --format parquet)"
  fi
  mib=$(du -sm --exclude=output "$dir" | cut -f1)
  acts=$(grep -o -- '--activities [0-9]*' <<< "${args[$s]}" | cut -d' ' -f2)
  read -r scan _ <<< "$(timed $bin scan --pipeline "$dir/pipeline.toml")"
  rm -rf "$out/metrics"
  read -r run rss <<< "$(timed $bin run --pipeline "$dir/pipeline.toml" --as-of 2024-12-31 --output "$out/metrics" --log-format json)"
  ratio=$(awk -v r="$run" -v s="$scan" 'BEGIN { if (r == "stopped") print "-"; else printf "%.1f", r / s }')
  echo "| $s | $acts | $mib | $gen | $scan | $run | $ratio | $rss |"
  grep -o '"timings_ms":{[^}]*}' "$out/stdout" >&2 || true
done
