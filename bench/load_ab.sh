#!/usr/bin/env bash
# bench/load_ab.sh - interleaved comparison of server builds or settings under
# scenario 1 of bench/load.sh (2,000 connections, 200 rooms, 1 writer per room
# at 20 edits/s).
#
#   bench/load_ab.sh ROUNDS 'LABEL|TANDEM_BINARY|ENV=VALUE ...' 'LABEL|...' ...
#
# Each round runs every configuration once, in the order given, so slow and
# fast periods of a shared machine hit all of them alike (docs/PERFORMANCE.md:
# on this VM the same binary measures 25% or 85% of a core depending on the
# hour, so only comparisons made this way carry a difference). Each run
# starts the configuration's `tandem serve --dev` with its environment on a
# fresh data directory, waits for /healthz, runs tandem-bench-load for SECS
# [30] seconds after a 5 s warm-up, stops the server with SIGTERM, and prints one line:
# round, label, the `perf bench sched pipe` probe (µs per round trip; empty
# without perf), fan-out p50/p99, ACK p50, lost deliveries, server CPU and the
# service thread's share (% of one core), peak RSS (kB).
#
# Example (the storage journal against writing straight into the trees):
#   bench/load_ab.sh 3 'trees|build/cli/tandem|TANDEM_STORE_JOURNAL=0' \
#                      'journal|build/cli/tandem|'
#
# Environment: GEN (the generator) [build/bench/tandem-bench-load], SECS
# [30], PORT (first port tried) [18700], NICE as in bench/load.sh (a session
# and autogroup of its own at that nice; negative values need root) [unset].
set -u
if [ -n "${NICE:-}" ] && [ -z "${LOAD_AB_OWN_SESSION:-}" ] && command -v setsid >/dev/null; then
    LOAD_AB_OWN_SESSION=1 exec setsid --wait "$0" "$@"
fi
if [ -n "${NICE:-}" ] && [ -w /proc/self/autogroup ]; then
    echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null || echo "load_ab.sh: cannot set the autogroup's nice" >&2
fi
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
ROUNDS=$1
shift
GEN=${GEN:-build/bench/tandem-bench-load}
SECS=${SECS:-30}
PORT=${PORT:-18700}
RUN=()
[ -n "${NICE:-}" ] && RUN=(nice -n "$NICE")
[ -x "$GEN" ] || { echo "load_ab.sh: $GEN is missing (build first)" >&2; exit 2; }
for cfg in "$@"; do
    IFS='|' read -r _ bin _ <<<"$cfg"
    [ -x "$bin" ] || { echo "load_ab.sh: $bin is missing" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" || true

# shellcheck source=load_common.sh
. bench/load_common.sh

field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }

for r in $(seq 1 "$ROUNDS"); do
    for cfg in "$@"; do
        IFS='|' read -r label bin envs <<<"$cfg"
        # shellcheck disable=SC2086 # envs is a list of NAME=VALUE words
        start_server "$bin" $envs || exit 1
        p=$(machine_probe)
        out=$("${RUN[@]}" "$GEN" --port "$PORT" --server-pid "$SRV_PID" --json --conns 2000 \
            --rooms 200 --writers-per-room 1 --rate 20 --seconds "$SECS" --warmup 5)
        stop_server
        printf '%s %-12s probe %5s us  p50 %s ms  p99 %s ms  ack p50 %s ms  lost %s  cpu %s%% (service thread %s%%)  rss peak %s kB\n' \
            "$r" "$label" "${p:--}" "$(field p50_ms "$out")" "$(field p99_ms "$out")" \
            "$(field ack_p50_ms "$out")" "$(field lost "$out")" "$(field server_cpu_pct "$out")" \
            "$(field server_main_cpu_pct "$out")" "$(field server_hwm_kb "$out")"
    done
done
