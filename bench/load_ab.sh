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

SRV_PID=
TMP=
stop_server() {
    if [ -n "$SRV_PID" ]; then
        kill -TERM "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
        SRV_PID=
    fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    TMP=
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

healthz() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
     printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
     timeout 5 cat <&3) 2>/dev/null
}

probe() {
    command -v perf >/dev/null || return 0
    perf bench sched pipe -l 20000 2>/dev/null | awk '/usecs\/op/ {printf "%.1f", $1}'
}

field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }

for r in $(seq 1 "$ROUNDS"); do
    for cfg in "$@"; do
        IFS='|' read -r label bin envs <<<"$cfg"
        TMP=$(mktemp -d /tmp/tandem-ab.XXXXXX)
        started=
        for _ in 1 2 3 4 5; do
            PORT=$((PORT + 1))
            # shellcheck disable=SC2086 # envs is a list of NAME=VALUE words
            env $envs "${RUN[@]}" "$bin" serve --dev --host 127.0.0.1 --port "$PORT" \
                --data "$TMP/data" >"$TMP/server.log" 2>&1 &
            SRV_PID=$!
            for _ in $(seq 1 50); do
                healthz "$PORT" | grep -q "\"pid\":$SRV_PID[,}]" && { started=1; break; }
                kill -0 "$SRV_PID" 2>/dev/null || break
                sleep 0.1
            done
            [ -n "$started" ] && break
            kill -TERM "$SRV_PID" 2>/dev/null
            wait "$SRV_PID" 2>/dev/null
            SRV_PID=
        done
        [ -n "$started" ] || { echo "load_ab.sh: $label did not start" >&2; cat "$TMP/server.log" >&2; exit 1; }
        p=$(probe)
        out=$("${RUN[@]}" "$GEN" --port "$PORT" --server-pid "$SRV_PID" --json --conns 2000 \
            --rooms 200 --writers-per-room 1 --rate 20 --seconds "$SECS" --warmup 5)
        stop_server
        printf '%s %-12s probe %5s us  p50 %s ms  p99 %s ms  ack p50 %s ms  lost %s  cpu %s%% (service thread %s%%)  rss peak %s kB\n' \
            "$r" "$label" "${p:--}" "$(field p50_ms "$out")" "$(field p99_ms "$out")" \
            "$(field ack_p50_ms "$out")" "$(field lost "$out")" "$(field server_cpu_pct "$out")" \
            "$(field server_main_cpu_pct "$out")" "$(field server_hwm_kb "$out")"
    done
done
