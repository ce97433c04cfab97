#!/usr/bin/env bash
# Build kiln with ASan+UBSan and run the whole suite: unit tests, the lab
# scenario tests (real sshd in namespaces: needs root), and every fuzz
# harness for a bounded time.  Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: the lab tests need root (namespaces, mounts); run as root" >&2
	exit 1
fi

cmake -S . -B build-test -DKILN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-test -j"$jobs"

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DKILN_FUZZ=ON \
	-DKILN_FUZZ_SECONDS="${KILN_FUZZ_SECONDS:-20}" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzzers

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
ctest --test-dir build-test --output-on-failure "$@"
ctest --test-dir build-fuzz -L fuzz --output-on-failure
