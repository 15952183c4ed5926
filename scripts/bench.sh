#!/usr/bin/env bash
# Benchmark (not a test): generates the three sizes of issue 7 once into bench-data/, then times
# for each: a bare scan of the columns the job reads, and `run` end to end (six tables, month
# and quarter grains), with peak RSS from /usr/bin/time. Prints a Markdown table.
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
timed() { # prints "seconds peak_MiB" of the command
  /usr/bin/time -f "%e %M" -o "$out/time" "$@" > "$out/stdout" 2> "$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
  awk '{ printf "%s %.0f", $1, $2 / 1024 }' "$out/time"
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
  ratio=$(awk -v r="$run" -v s="$scan" 'BEGIN { printf "%.1f", r / s }')
  echo "| $s | $acts | $mib | $gen | $scan | $run | $ratio | $rss |"
  grep -o '"timings_ms":{[^}]*}' "$out/stdout" >&2 || true
done
