# Sourced by scripts/bench.sh and scripts/instructions.sh: the generated data sets both measure
# on (`sales-metrics generate` arguments, written to bench-data/<size>), and the release build.
# mini is instructions.sh's default, a tenth of medium's activities, so a run under valgrind
# takes seconds, not minutes.
declare -A size_args=(
  [small]="--reps 40 --deals 3000 --leads 5000 --activities 30000"
  [mini]="--reps 100 --deals 50000 --leads 50000 --activities 500000"
  [medium]="--reps 1000 --deals 500000 --leads 500000 --activities 5000000"
  [large]="--reps 10000 --deals 5000000 --leads 5000000 --activities 50000000"
)
target_dir=${CARGO_TARGET_DIR:-target}
release_bin=$target_dir/release/sales-metrics

# Builds the release binary and the bare-scan baseline (examples/scan.rs): about 33 min cold
# on 2 cores, seconds when nothing changed.
build_release() {
  cargo build --release --quiet --bin sales-metrics --example scan
}
