# bench/load_common.sh - shared by bench/load.sh and bench/load_ab.sh (sourced,
# not run): the server each run starts, /healthz, and the machine probe.
# Uses the caller's PORT (the last port tried; each start tries the next),
# RUN (a command prefix such as `nice -n -10`, may be empty), and sets SRV_PID
# and TMP (the run's data directory, removed by stop_server). Installs traps
# that stop the server on exit and on INT/TERM.

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

# GET /healthz on 127.0.0.1:$1 with bash's /dev/tcp (no curl needed).
healthz() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
     printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
     timeout 5 cat <&3) 2>/dev/null
}

# start_server BINARY [NAME=VALUE ...]: `BINARY serve --dev` on a fresh data
# directory with those variables in its environment, on the next free port;
# returns once its /healthz answers with its pid (5 ports tried).
start_server() {
    local bin=$1
    shift
    TMP=$(mktemp -d /tmp/tandem-load.XXXXXX)
    local tries=0
    while :; do
        PORT=$((PORT + 1))
        env "$@" "${RUN[@]}" "$bin" serve --dev --host 127.0.0.1 --port "$PORT" \
            --data "$TMP/data" >"$TMP/server.log" 2>&1 &
        SRV_PID=$!
        for _ in $(seq 1 50); do
            if healthz "$PORT" | grep -q "\"pid\":$SRV_PID[,}]"; then
                return 0
            fi
            kill -0 "$SRV_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -TERM "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
        SRV_PID=
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            echo "$(basename "$0"): the server did not start:" >&2
            cat "$TMP/server.log" >&2
            return 1
        fi
    done
}

# How fast this (virtual) machine wakes a task on the other CPU right now:
# `perf bench sched pipe`, microseconds per round trip (empty without perf).
# The server's CPU per frame is mostly kernel work of that kind, and on a
# shared VM it drifts by tens of percent within an hour (docs/PERFORMANCE.md).
machine_probe() {
    command -v perf >/dev/null || return 0
    perf bench sched pipe -l 20000 2>/dev/null | awk '/usecs\/op/ {printf "%.1f", $1}'
}
