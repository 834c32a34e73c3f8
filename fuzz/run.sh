#!/usr/bin/env bash
# fuzz/run.sh [seconds] - build the libFuzzer harnesses with clang in build-fuzz/
# and run each for `seconds` (default 30) on a copy of its seed corpus.
# Exits non-zero when a harness finds a crash, leak, timeout or broken
# invariant; the input is saved under build-fuzz/artifacts/<harness>/.
# Environment: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_JOBS (build
# jobs), FUZZ_ONLY (space-separated harness names), TANDEM_FUZZ_STRICT=1
# (stricter invariants, see the harness comments).
set -euo pipefail

secs=${1:-30}
case "$secs" in
'' | *[!0-9]*)
  echo "usage: $0 [seconds]" >&2
  exit 2
  ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang not found (run make setup)" >&2
  exit 1
fi

CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_FUZZ=ON \
  -DTANDEM_TRACES="$root/tests/traces" >/dev/null
cmake --build "$build" --target tandem_fuzzers -j "$jobs"

# harness:max_len[:quiet] (quiet: the target's own stdout/stderr are closed;
# libFuzzer still reports crashes)
harnesses=(fuzz_update:4096 fuzz_snapshot:8192 fuzz_sv_ds:2048 fuzz_cbor:2048
  fuzz_sync_msg:4096 fuzz_sync_session:16384 fuzz_ot:2048 fuzz_awareness:4096
  fuzz_sync_client:16384 fuzz_token:4096 fuzz_import:8192 fuzz_store_jrnl:1024)
only=${FUZZ_ONLY:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=()
for entry in "${harnesses[@]}"; do
  name=${entry%%:*}
  rest=${entry#*:}
  maxlen=${rest%%:*}
  extra=()
  if [[ $rest == *:quiet ]]; then extra=(-close_fd_mask=3); fi
  if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then continue; fi
  corpus="$work/$name"
  artifacts="$build/artifacts/$name"
  mkdir -p "$corpus" "$artifacts"
  cp "$root/fuzz/corpus/$name/"* "$corpus/"
  echo "== $name: ${secs}s, max_len $maxlen"
  if ! "$build/fuzz/$name" "$corpus" -max_len="$maxlen" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" ${extra[@]+"${extra[@]}"} \
    >"$work/$name.log" 2>&1; then
    failed+=("$name")
    echo "!! $name found a problem; input saved in $artifacts/" >&2
    grep -E "ERROR|invariant|SUMMARY|Test unit written" "$work/$name.log" | head -20 >&2 || true
    cp "$work/$name.log" "$artifacts/last.log"
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$work/$name.log" |
    sed "s/^/   /" || true
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all harnesses ran ${secs}s without findings"
