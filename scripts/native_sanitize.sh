#!/usr/bin/env bash
# Build the native core + stand-in + C++ test driver with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc) and run the driver with leak detection.
# Any sanitizer report or test failure makes this script fail.
# Needs: g++, cmake, ninja (or make), libssl-dev. No Python involved.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${ENTRACLAW_SANITIZE_BUILD_DIR:-build/native-sanitize}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
cmake -S native -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_COMPILER="${CXX:-g++}" \
    -DENTRACLAW_STANDIN=ON -DENTRACLAW_PYTHON=OFF -DENTRACLAW_NATIVE_TESTS=ON \
    -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" --target entraclaw_cng_core_test entraclaw_cng_contract_test -j 2
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"$build/entraclaw_cng_core_test" 2>&1 | tee "$log" || status=$?
"$build/entraclaw_cng_contract_test" 2>&1 | tee -a "$log" || status=$?
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" "$log"; then
    echo "native_sanitize: sanitizer report above" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "native_sanitize: test driver failed (exit $status)" >&2
    exit "$status"
fi
echo "native_sanitize: clean"
