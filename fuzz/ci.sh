#!/usr/bin/env bash
# CI step for the fuzz targets: builds every target (nightly toolchain, libFuzzer, ASan) and
# runs each for a few seconds from the committed seeds, so a target that no longer builds or
# crashes at once fails the step. Not a fuzzing campaign (see SECURITY.md for those).
# tests/run does not call it: building the fuzz workspace is a second full build with ASan
# (SECURITY.md, "Fuzzing", has the measured time); CI instead runs every target's function over
# its seeds as a normal test (`cargo test --test it fuzz_seeds::`, stable toolchain).
# Usage: fuzz/ci.sh [SECONDS_PER_TARGET]   (default 5)
# Needs: cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`rustup toolchain
# install nightly`); without them it fails under CI=true and skips with a reason otherwise.
set -euo pipefail
SECS=${1:-5}
FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$FUZZ")"

missing() {
  if [[ ${CI:-} == true ]]; then echo "fuzz/ci.sh: $1 is missing (CI=true: failing)" >&2; exit 1; fi
  echo "fuzz/ci.sh: skipping: $1 is missing" >&2; exit 0
}
cargo fuzz --version >/dev/null 2>&1 || missing "cargo-fuzz (cargo install cargo-fuzz)"
rustup toolchain list 2>/dev/null | grep -q '^nightly' || missing "the nightly toolchain"

cargo +nightly fuzz build
for target in $(cargo +nightly fuzz list); do
  corpus=$(mktemp -d)
  echo "fuzz/ci.sh: $target for ${SECS}s"
  # A crash exits non-zero and leaves its input in fuzz/artifacts/$target/.
  set +e
  cargo +nightly fuzz run "$target" "$corpus" "$FUZZ/seeds/$target" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -n 12
  status=${PIPESTATUS[0]}
  set -e
  rm -rf "$corpus"
  (( status == 0 )) || { echo "fuzz/ci.sh: $target failed (status $status)" >&2; exit "$status"; }
done
echo "fuzz/ci.sh: every target built and ran ${SECS}s without a crash"
