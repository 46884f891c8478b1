#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for SECONDS (default 30),
# starting from the seed corpus in tests/fuzz/corpus. Fails on the first finding, leaving the
# crashing input in the work folder it names. Longer runs: docs/fuzzing.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-30}
cd "$top"
build=${TOTALPLACE_FUZZ_BUILD:-build-fuzz}
cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DTOTALPLACE_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_batch fuzz_convert fuzz_csv fuzz_encoding \
  fuzz_query >/dev/null
work=$(mktemp -d /tmp/tp-fuzz.XXXXXX)
status=0
for target in batch convert csv encoding query; do
  mkdir -p "$work/$target"
  cp tests/fuzz/corpus/$target/* "$work/$target/"
  if (cd "$work" && "$top/$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" \
        -max_len=65536 -print_final_stats=1 "$work/$target" >"$work/$target.log" 2>&1); then
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$work/$target.log" | grep -o '[0-9]*$')
    echo "fuzz_$target: $runs executions in ${seconds}s, no finding"
  else
    echo "fuzz_$target: FINDING; input and log in $work" >&2
    grep -E 'ERROR|SUMMARY|fuzz_' "$work/$target.log" | head -5 >&2
    status=1
  fi
done
((status == 0)) && rm -rf "$work"
exit $status
