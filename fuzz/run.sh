#!/usr/bin/env bash
# Builds every cargo-fuzz target of mmlog and runs each for a while from the generated
# seed corpus (plus whatever earlier runs left in fuzz/corpus/). Any crash, hang
# (an input that takes longer than FUZZ_TIMEOUT seconds), or allocation over
# FUZZ_MALLOC_MB makes the script fail; libFuzzer leaves the input in
# fuzz/artifacts/<target>/ (minimise it with `cargo +nightly fuzz tmin <target> <file>`
# and keep it as a test in tests/fuzz_regressions.rs).
#
# Usage: fuzz/run.sh [seconds per target, default 60] [target ...]   (default: all)
# Environment: FUZZ_TARGET_DIR (default fuzz/target), FUZZ_TIMEOUT (default 30),
# FUZZ_MALLOC_MB (default 512).
#
# Needs a nightly toolchain (cargo-fuzz builds with sanitizers); installs cargo-fuzz
# with `cargo install cargo-fuzz` when it is missing. The seed corpus comes from
# tests/fuzz_harness/seeds.rs through `cargo run --bin gen_corpus` in the fuzz crate.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
all=(segment_decode checkpoint_decode record_roundtrip ops_model dir_mutate)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
target_dir="${FUZZ_TARGET_DIR:-fuzz/target}"
timeout="${FUZZ_TIMEOUT:-30}"
malloc_mb="${FUZZ_MALLOC_MB:-512}"

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "== seed corpus"
cargo run --quiet --manifest-path fuzz/Cargo.toml --target-dir "$target_dir/plain" --bin gen_corpus

echo "== build (release, debug assertions, AddressSanitizer)"
cargo +nightly fuzz build --debug-assertions --target-dir "$target_dir"

for t in "${targets[@]}"; do
  case "$t" in
    segment_decode | checkpoint_decode) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  echo "== $t for ${secs}s"
  log="$target_dir/$t.log"
  mkdir -p "$target_dir"
  status=0
  cargo +nightly fuzz run --debug-assertions --target-dir "$target_dir" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout="$timeout" -malloc_limit_mb="$malloc_mb" \
    -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -80 "$log"
    echo "$t failed (exit $status); the input is in fuzz/artifacts/$t/, the whole log in $log"
    exit 1
  fi
done
echo "== all targets clean"
