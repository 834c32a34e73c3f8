#!/usr/bin/env bash
# bench/bench_cluster.sh - cross-node fan-out latency (issue 9, docs/SCALING.md).
#
# Starts a redis-server (127.0.0.1, free port, no persistence) and two
# Release `tandem serve --dev --redis` nodes A and B on fresh data
# directories, then runs tandem-bench-load twice with the same load:
#   single: writers and readers on node A (the one-node path; A still relays)
#   cross:  writers on node A, readers on node B (--reader-port): every
#           delivery goes A -> Redis -> B
# and prints one JSON line per run plus the p50/p99 side by side.
#
# Environment: BUILD [build], CONNS [400], ROOMS [40], RATE (edits/s per
# writer) [20], SECS (measured seconds) [15], RUNS [1], PORT (first port tried) [18700].
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
CONNS=${CONNS:-400}
ROOMS=${ROOMS:-40}
RATE=${RATE:-20}
SECS=${SECS:-15}
RUNS=${RUNS:-1}
PORT=${PORT:-18700}
TANDEM=$BUILD/cli/tandem
GEN=$BUILD/bench/tandem-bench-load
for f in "$TANDEM" "$GEN"; do
    [ -x "$f" ] || { echo "bench_cluster.sh: $f is missing (build $BUILD first)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "bench_cluster.sh: redis-server missing (scripts/setup.sh)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)" || true
TMP=$(mktemp -d /tmp/tandem-cluster.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RPORT=$((PORT))
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --loglevel warning >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "${PIDS[0]}" 2>/dev/null || { echo "bench_cluster.sh: redis-server did not start on $RPORT" >&2; cat "$TMP/redis.log" >&2; exit 1; }

NODE_PID=
start_node() { # name port: sets NODE_PID (not in a subshell: cleanup must see it)
    mkdir -p "$TMP/$1"
    "$TANDEM" serve --dev --host 127.0.0.1 --port "$2" --data "$TMP/$1/data" \
        --redis "redis://127.0.0.1:$RPORT" >"$TMP/$1/server.log" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    for _ in $(seq 1 50); do
        curl -sf "http://127.0.0.1:$2/healthz" 2>/dev/null | grep -q "\"pid\":$NODE_PID[,}]" && return 0
        sleep 0.1
    done
    echo "bench_cluster.sh: node $1 did not start" >&2
    cat "$TMP/$1/server.log" >&2
    return 1
}
A_PORT=$((PORT + 1))
B_PORT=$((PORT + 2))
start_node a "$A_PORT" || exit 1
A_PID=$NODE_PID
start_node b "$B_PORT" || exit 1
echo "bench_cluster.sh: $(nproc) CPUs, redis :$RPORT, node A :$A_PORT, node B :$B_PORT"

ARGS=(--conns "$CONNS" --rooms "$ROOMS" --writers-per-room 1 --rate "$RATE" --seconds "$SECS"
      --warmup 3 --json)
status=0
for run in $(seq 1 "$RUNS"); do
    for mode in single cross; do
        extra=()
        [ "$mode" = cross ] && extra=(--reader-port "$B_PORT")
        out=$("$GEN" --port "$A_PORT" --server-pid "$A_PID" --prefix "$mode-$run-$$" "${ARGS[@]}" "${extra[@]}")
        rc=$?
        [ "$rc" -eq 0 ] || status=1
        echo "{\"run\":$run,\"path\":\"$mode\",\"result\":$out}"
        if command -v jq >/dev/null; then
            echo "$out" | jq -c --arg m "$mode" '{path: $m, p50_ms, p99_ms, max_ms, lost, delivered}' >&2
        fi
    done
done
exit $status
