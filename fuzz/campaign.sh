#!/usr/bin/env bash
# One fuzzing campaign of one target, bounded by CPU time rather than wall time (the machine
# may be shared): runs the built libFuzzer binary at nice 19 (or $NICE) on fuzz/corpus/TARGET (seed.sh
# fills it) until it has used CPU_SECONDS of CPU (user + system), then stops it with SIGINT so
# libFuzzer prints its final statistics. Prints one Markdown table row for SECURITY.md:
#   | target | CPU time | executions | exec/s (CPU) | cov start → end | ft start → end | corpus | peak RSS | crashes |
# Usage: fuzz/campaign.sh TARGET [CPU_SECONDS]   (default 600; build first: cargo +nightly fuzz build)
set -euo pipefail
TARGET=$1
CPU=${2:-600}
FUZZ=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$FUZZ/target/x86_64-unknown-linux-gnu/release/$TARGET
[[ -x $BIN ]] || { echo "campaign.sh: $BIN is not built (cargo +nightly fuzz build)" >&2; exit 64; }
mkdir -p "$FUZZ/corpus/$TARGET" "$FUZZ/artifacts/$TARGET" "$FUZZ/logs"
LOG=$FUZZ/logs/$TARGET.log
TICKS=$(getconf CLK_TCK)
nice -n "${NICE:-19}" "$BIN" "$FUZZ/corpus/$TARGET" "$FUZZ/seeds/$TARGET" \
  -artifact_prefix="$FUZZ/artifacts/$TARGET/" -rss_limit_mb=2048 -timeout=20 -max_len=262144 \
  -print_final_stats=1 >"$LOG" 2>&1 &
PID=$!
used=0
while kill -0 "$PID" 2>/dev/null; do
  # utime + stime of the fuzzer (fields 14 and 15 of /proc/PID/stat).
  if read -r -a stat <"/proc/$PID/stat" 2>/dev/null; then
    used=$(( (stat[13] + stat[14]) / TICKS ))
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0)
  fi
  (( used >= CPU )) && { kill -INT "$PID"; break; }
  sleep 2
done
wait "$PID" || true
inited=$(grep -m1 'INITED' "$LOG" || true)
done_line=$(grep -E '#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$LOG" | tail -n1 || true)
field() { sed -n "s/.* $1: *\([0-9]*\).*/\1/p" <<<"$2"; }
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG")
crashes=$(ls "$FUZZ/artifacts/$TARGET" | grep -c . || true)
echo "| \`$TARGET\` | ${used} s | ${execs:-?} | $(( ${execs:-0} / (used > 0 ? used : 1) )) | $(field cov "$inited") → $(field cov "$done_line") | $(field ft "$inited") → $(field ft "$done_line") | $(field corp "$done_line") | $(( ${peak:-0} / 1024 )) MB | $crashes |"
