#!/usr/bin/env bash
# bench/load.sh - the server load benchmark (issue 5; `make bench-load`).
#
# For every run of every scenario: start a Release `tandem serve --dev` on a
# fresh temporary data directory (127.0.0.1, a free port, `ulimit -n` raised
# to the hard limit), wait for /healthz, run tandem-bench-load against it,
# stop the server with SIGTERM. Then print the median of each figure over the
# runs.
#
#   scenario 1 (load): 2,000 connections in 200 rooms, 1 writer per room at
#                      20 edits/s, 5 s warm-up, 30 s measured.
#                      Floors: p99 < 10 ms, nothing lost, server CPU < 30% of
#                      one core, server RSS (peak) < 100 MB.
#   scenario 2 (idle): 10,000 connections in 500 rooms, HELLO + SUBSCRIBE +
#                      first sync, held 10 s. Floor: server RSS (peak) < 100 MB.
#
# Environment: BUILD (build directory with Release binaries) [build],
# RUNS (runs per scenario) [3], SCENARIOS ("1 2"), PORT (first port tried)
# [18500], SECONDS1 (measured seconds of scenario 1) [30], JSON_OUT (file
# that receives every run's JSON line) [none], NICE (on a machine shared
# with other work: run in a session of its own, so a scheduling autogroup of
# its own, with that group's nice and `nice -n` set to NICE, e.g. -10; with
# autogroups a plain nice does not reach across sessions; negative values
# need root) [unset: normal priority].
# Exit status: 0 when every run met its floors and lost nothing, else 1.
set -u
if [ -n "${NICE:-}" ] && [ -z "${LOAD_SH_OWN_SESSION:-}" ] && command -v setsid >/dev/null; then
    # the new session has no terminal: pass INT/TERM on ourselves
    LOAD_SH_OWN_SESSION=1 setsid --wait "$0" "$@" &
    child=$!
    trap 'kill -TERM "$child" 2>/dev/null' INT TERM
    while :; do
        wait "$child"
        rc=$?
        kill -0 "$child" 2>/dev/null || exit "$rc"
    done
fi
if [ -n "${NICE:-}" ] && [ -w /proc/self/autogroup ]; then
    echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null || echo "load.sh: cannot set the autogroup's nice" >&2
fi
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-"1 2"}
PORT=${PORT:-18500}
SECONDS1=${SECONDS1:-30}
JSON_OUT=${JSON_OUT:-}
RUN=()
[ -n "${NICE:-}" ] && RUN=(nice -n "$NICE")
TANDEM=$BUILD/cli/tandem
GEN=$BUILD/bench/tandem-bench-load
for f in "$TANDEM" "$GEN"; do
    [ -x "$f" ] || { echo "load.sh: $f is missing (build $BUILD first)" >&2; exit 2; }
done
ulimit -n "$(ulimit -Hn)" || true
echo "load.sh: $(nproc) CPUs, ulimit -n $(ulimit -n), $(lscpu | sed -n 's/^Model name: *//p')${NICE:+, nice $NICE ($(cat /proc/$$/autogroup 2>/dev/null))}"

# shellcheck source=load_common.sh
. bench/load_common.sh

status=0
declare -A LINES
for sc in $SCENARIOS; do
    case $sc in
    1) ARGS=(--conns 2000 --rooms 200 --writers-per-room 1 --rate 20 --seconds "$SECONDS1"
             --warmup 5 --max-p99-ms 10 --max-cpu-pct 30 --max-rss-mb 100) ;;
    2) ARGS=(--idle --conns 10000 --rooms 500 --seconds 10 --max-rss-mb 100) ;;
    *) echo "load.sh: unknown scenario $sc" >&2; exit 2 ;;
    esac
    LINES[$sc]=
    for run in $(seq 1 "$RUNS"); do
        start_server "$TANDEM" || exit 1
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        probe=$(machine_probe)
        echo "== scenario $sc run $run/$RUNS (port $PORT, load before: $load${probe:+, pipe round trip $probe us})"
        out=$("${RUN[@]}" "$GEN" --port "$PORT" --server-pid "$SRV_PID" --json "${ARGS[@]}")
        rc=$?
        echo "$out"
        [ -n "$JSON_OUT" ] && echo "$out" >>"$JSON_OUT"
        [ "$rc" -eq 0 ] || { status=1; echo "   ^ run FAILED a floor or lost deliveries (rc $rc)"; }
        LINES[$sc]+="$out"$'\n'
        stop_server
    done
done

# medians per scenario (jq when present)
if command -v jq >/dev/null; then
    for sc in $SCENARIOS; do
        echo "== scenario $sc: medians over $RUNS run(s)"
        printf '%s' "${LINES[$sc]}" | jq -s -c '
          def med(f): (map(f) | sort) as $v | if ($v|length) == 0 then null
                      else $v[(($v|length) - 1) / 2 | floor] end;
          {mode: .[0].mode, conns: .[0].conns, rooms: .[0].rooms, runs: length,
           p50_ms: med(.p50_ms), p99_ms: med(.p99_ms), max_ms: med(.max_ms),
           ack_p50_ms: med(.ack_p50_ms), ack_p99_ms: med(.ack_p99_ms),
           lost_total: (map(.lost) | add), updates_per_s: med(.updates_per_s),
           frames_in_per_s: med(.frames_in_per_s), server_cpu_pct: med(.server_cpu_pct),
           server_main_cpu_pct: med(.server_main_cpu_pct),
           server_rss_mb: (med(.server_rss_kb) / 1024 * 10 | round / 10),
           server_peak_mb: (med(.server_hwm_kb) / 1024 * 10 | round / 10),
           rss_per_conn_bytes: med(.rss_per_conn_bytes),
           wire_in_per_conn: med(.wire_in_per_conn), load1: med(.load1),
           all_ok: (map(.ok) | all)}'
    done
fi
exit $status
