#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS (default
# 15) from its seeds; exits non-zero on the first crash, leak or timeout.
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
# Corpora grow in BUILD_DIR/corpus/<target> and are kept between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-15}
dir=${2:-$root/build-fuzz}
targets=(fuzz_config fuzz_cron fuzz_ninjaone_decode fuzz_pii)
declare -A seeds=([fuzz_config]=config [fuzz_cron]=cron
                  [fuzz_ninjaone_decode]=decode [fuzz_pii]=pii)

CC=clang cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBUILD_TESTING=OFF -DREGENTRA_FUZZ=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}" >/dev/null

for t in "${targets[@]}"; do
  corpus=$dir/corpus/$t
  mkdir -p "$corpus"
  log=$dir/$t.log
  if ! (cd "$dir" && "./tests/fuzz/$t" -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "$corpus" "$root/tests/fuzz/seeds/${seeds[$t]}") >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "$t: FAILED (log: $log)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "$t: ${runs:-?} executions in ${seconds}s, 0 crashes"
done
