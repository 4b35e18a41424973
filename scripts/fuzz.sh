#!/usr/bin/env bash
# Coverage-guided fuzzing of the wire proxy's byte readers (harness/src/wire/fuzz.rs) under
# libFuzzer, for SECONDS per target (default 600). `cargo test` runs the same targets for a few
# seconds each over their corpus; this is the long run, outside CI.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: grpc_frames protobuf_fields task_decoding)
#
# It builds the library's tests with the flags `cargo bolero test --sanitizer NONE` uses for
# libFuzzer (cargo-bolero itself would build every integration test of the package too), then runs
# each target nice'd, on a scratch copy of its corpus so the committed corpus stays small. An input
# that fails is written to the target's `crashes` directory, which `cargo test` replays: commit it
# (or move it to `corpus`) with the fix. Logs and the scratch corpora go to FUZZ_OUT
# (default target/fuzz-out); the last lines of each log give the executions and the time.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(grpc_frames protobuf_fields task_decoding)
target_dir=${CARGO_TARGET_DIR:-target}/libfuzzer
out=${FUZZ_OUT:-${CARGO_TARGET_DIR:-target}/fuzz-out}
triple=$(rustc -vV | sed -n 's/^host: //p')
fuzz_dir=harness/src/wire/__fuzz__

export BOLERO_FUZZER=libfuzzer
export RUSTFLAGS="--cfg fuzzing --cfg fuzzing_libfuzzer -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth"
build=(cargo test -p temporal-chaos --lib --target "$triple" --target-dir "$target_dir"
  --config 'profile.fuzz.inherits="dev"' --config 'profile.fuzz.opt-level=1' --profile fuzz)
nice "${build[@]}" --no-run
exe=$("${build[@]}" --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.profile.test == true and .target.kind == ["lib"]) | .executable')

mkdir -p "$out"
status=0
for target in "${targets[@]}"; do
  name="wire::fuzz::${target}_fuzz"
  corpus="$out/$target/corpus"
  crashes="$fuzz_dir/wire__fuzz__$target/crashes"
  mkdir -p "$corpus" "$crashes"
  cp -n "$fuzz_dir/wire__fuzz__$target/corpus/"* "$corpus/" 2>/dev/null || true
  echo "fuzzing $target for ${seconds}s (log: $out/$target.log)"
  BOLERO_TEST_NAME="$name" BOLERO_LIBTEST_HARNESS=1 \
    BOLERO_LIBFUZZER_ARGS="$corpus $crashes -artifact_prefix=$crashes/ -timeout=10 -max_total_time=$seconds -print_final_stats=1" \
    nice "$exe" "$name" --exact --nocapture --quiet --test-threads 1 >"$out/$target.log" 2>&1 || {
    status=1
    echo "$target FAILED: see $out/$target.log and $crashes"
  }
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$out/$target.log" || tail -5 "$out/$target.log"
done
exit $status
