#!/usr/bin/env bash
# Counts the instructions a run executes (valgrind's cachegrind, no cache simulation), for
# comparing builds on a machine whose speed drifts. Wall and CPU time of one binary here have
# varied by 2x between sittings and by 20-40 % between runs minutes apart; the instruction
# count of a run varies by 0.1 % between runs minutes apart and by 0.4 % over hours (polars'
# threads still wait on each other differently), so a change of 1 % in the CPU work shows in
# one run of each build, made one after the other. It counts work, not time: cache misses and
# page faults do not show, so confirm a gain it finds with interleaved runs of
# scripts/bench.sh's medium size.
#
#   scripts/instructions.sh                      # the release build
#   scripts/instructions.sh /tmp/before target/release/sales-metrics
#   INSTR_SIZE=small scripts/instructions.sh     # 30 k activities: seconds, not half a minute
#
# Generates its data set once into bench-data/<size> (scripts/sizes.sh; default "mini": 100
# reps, 50 k deals, 50 k leads, 500 k activities; about 25 s a run under valgrind, which
# serialises the threads). Prints a Markdown table with each binary's count relative to the first's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sizes.sh
command -v valgrind > /dev/null || {
  echo "instructions.sh: needs valgrind (Debian: apt-get install valgrind)" >&2
  exit 1
}
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  build_release
  bins=("$release_bin")
fi
size=${INSTR_SIZE:-mini}
case $size in
  mini | small) ;;
  *) echo "instructions.sh: INSTR_SIZE is mini or small, not '$size'" >&2; exit 1 ;;
esac
dir=bench-data/$size
if [ ! -f "$dir/pipeline.toml" ]; then
  "${bins[0]}" generate --out "$dir" ${size_args[$size]} --format parquet > /dev/null
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| binary | instructions (millions) | vs first |"
echo "|---|---|---|"
first=""
for bin in "${bins[@]}"; do
  rm -rf "$out/metrics"
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
    "$bin" run --pipeline "$dir/pipeline.toml" --as-of 2024-12-31 --output "$out/metrics" \
    > "$out/stdout" 2> "$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
  # cachegrind's summary line: "==PID== I   refs:      5,040,572,334".
  ir=$(awk '/I +refs:/ { gsub(",", "", $NF); print $NF }' "$out/stderr")
  if [ -z "$ir" ]; then
    echo "instructions.sh: no instruction count from valgrind for $bin" >&2
    exit 1
  fi
  first=${first:-$ir}
  awk -v b="$bin" -v ir="$ir" -v f="$first" \
    'BEGIN { printf "| %s | %.1f | %+.2f %% |\n", b, ir / 1e6, (ir / f - 1) * 100 }'
done
