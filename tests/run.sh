#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, build with -Werror, run every ctest
# test, then rebuild with AddressSanitizer + UndefinedBehaviorSanitizer and run them all again,
# then run the daemons of three integration tests under valgrind, then each fuzz target briefly.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash deploy/install-deps.sh
jobs=$(nproc)

echo "== build (-Werror) and test"
cmake -S . -B build-ci -DTOTALPLACE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-ci -j "$jobs"
ctest --test-dir build-ci --output-on-failure -j "$jobs"

echo "== build with ASan+UBSan and test"
cmake -S . -B build-asan -DTOTALPLACE_WERROR=ON -DTOTALPLACE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== the daemons under valgrind: no definite leak, no memory error (docs/security.md)"
TOTALPLACE_VALGRIND=1 ctest --test-dir build-ci --output-on-failure -R 'integration\.test_(end_to_end|security|restore)$'

echo "== fuzz targets, briefly (docs/fuzzing.md)"
bash tests/fuzz/run.sh "${TOTALPLACE_FUZZ_SECONDS:-30}"
