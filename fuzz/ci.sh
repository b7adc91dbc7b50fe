#!/usr/bin/env bash
# CI step for the fuzz targets (tests/run calls it after `cargo test`): builds every target once
# (one `cargo fuzz build` into one target directory, fuzz/target/) and runs each built binary for
# a few seconds from its committed seeds, so a target that no longer builds, or crashes at once,
# fails the step. Not a fuzzing campaign (see SECURITY.md, "Fuzzing", for those and for the
# measured build time).
# The build: nightly, libFuzzer with coverage instrumentation, release (-O) with debug
# assertions and overflow checks (-a), no sanitizer (-s none: signgate forbids unsafe code and
# OpenSSL is not instrumented anyway; AddressSanitizer made the build much slower), no
# debuginfo (fuzz/Cargo.toml). fuzz/campaign.sh runs the same binaries.
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
rustup toolchain list 2>/dev/null | grep -q '^nightly' || missing "the nightly toolchain"
cargo +nightly fuzz --version >/dev/null 2>&1 || missing "cargo-fuzz (cargo install cargo-fuzz)"

started=$(date +%s)
cargo +nightly fuzz build -O -a -s none
built=$(date +%s)
echo "fuzz/ci.sh: built every target in $((built - started)) s"
BIN=$FUZZ/target/x86_64-unknown-linux-gnu/release
for target in $(cargo +nightly fuzz list); do
  corpus=$(mktemp -d)
  mkdir -p "$FUZZ/artifacts/$target"
  echo "fuzz/ci.sh: $target for ${SECS}s"
  # A crash exits non-zero and leaves its input in fuzz/artifacts/$target/.
  set +e
  "$BIN/$target" "$corpus" "$FUZZ/seeds/$target" -max_total_time="$SECS" -rss_limit_mb=2048 \
    -timeout=10 -max_len=262144 -artifact_prefix="$FUZZ/artifacts/$target/" \
    -print_final_stats=1 >"$corpus.log" 2>&1
  status=$?
  set -e
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|INITED|DONE' "$corpus.log" | sed 's/^/  /'
  if (( status != 0 )); then
    tail -n 40 "$corpus.log" >&2
    rm -rf "$corpus" "$corpus.log"
    echo "fuzz/ci.sh: $target failed (status $status)" >&2
    exit "$status"
  fi
  rm -rf "$corpus" "$corpus.log"
done
echo "fuzz/ci.sh: every target built and ran ${SECS}s without a crash ($(( $(date +%s) - started )) s in all)"
