/* srv.h - the tandem sync server (prefix srv_): one libwebsockets context on
 * one port serving the sync protocol over WebSocket (subprotocol
 * SRV_SUBPROTOCOL), a small HTTP JSON API and static files, with rooms kept
 * by sync/ and stored by storage/. docs/SERVER.md describes configuration,
 * endpoints, close codes, limits and threads.
 *
 * Threads: srv_run is called once, from the main thread; it runs the lws
 * service loop on that thread until SIGTERM or SIGINT (or srv_stop) and
 * returns after a clean shutdown. The storage writer thread is the only other
 * thread; it reports commits back through a mutex-protected inbox and
 * lws_cancel_service.
 */
#ifndef TANDEM_SRV_H
#define TANDEM_SRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The WebSocket subprotocol (Sec-WebSocket-Protocol) of sync protocol version 1. */
#define SRV_SUBPROTOCOL "tandem.v1"

/* WebSocket close codes the server sends (docs/SERVER.md). */
#define SRV_CLOSE_NORMAL        1000u /* the session ended normally */
#define SRV_CLOSE_GOING_AWAY    1001u /* the server is shutting down */
#define SRV_CLOSE_PROTOCOL      1002u /* protocol version mismatch / unanswerable frame */
#define SRV_CLOSE_TOO_BIG       1009u /* an inbound message over the frame cap */
#define SRV_CLOSE_INTERNAL      1011u /* out of memory or another server fault */
#define SRV_CLOSE_TRY_LATER     1013u /* session cap reached */
#define SRV_CLOSE_BACKPRESSURE  4001u /* outbound queue cap reached (slow consumer) */
#define SRV_CLOSE_HELLO_TIMEOUT 4002u /* no HELLO in time */
#define SRV_CLOSE_IDLE          4003u /* no frame within the idle timeout */
#define SRV_CLOSE_PRE_HELLO     4004u /* too many bytes or messages before HELLO */

/* Hard caps. */
#define SRV_HTTP_BODY_MAX   ((size_t)128 << 20) /* one generated HTTP response body */
#define SRV_PATH_MAX        1024u               /* request path bytes */
#define SRV_HISTORY_LIMIT   1000u               /* chat records per /messages request */
#define SRV_HISTORY_DEFAULT 100u

typedef struct srv_config {
    const char *host;           /* listen address [127.0.0.1] */
    uint16_t port;              /* listen port [8080] */
    const char *data_dir;       /* LMDB directory [./data] */
    const char *web_root;       /* static files [the source tree's server/web] */
    bool dev;                   /* development mode: no auth set-up needed (never implicit) */
    const char *secret_file;    /* HS256 secret file (else TANDEM_JWT_SECRET) */
    const char *es256_key_file; /* ES256 public key PEM file */
    const char *audience;       /* required "aud" of tokens (NULL: not checked) */
    size_t max_frame;           /* inbound WebSocket message cap, bytes [1 MiB] */
    size_t max_out_bytes;       /* outbound queue cap per session [4 MiB] */
    uint64_t room_idle_ms;      /* an unused room is freed after this [30000] */
    uint64_t idle_timeout_ms;   /* a silent session is closed after this [120000] */
    uint64_t hello_timeout_ms;  /* HELLO must come within this [10000] */
    uint64_t aw_timeout_ms;     /* presence not renewed this long is removed [30000] */
    unsigned ping_secs;         /* WebSocket ping after this much silence [30] */
    unsigned hangup_secs;       /* drop a connection silent this long [75] */
    uint64_t close_grace_ms;    /* a session marked for closing (e.g. backpressure) that has
                                   not taken its queued frames this long is dropped [10000] */
    bool quiet;                 /* no start-up / shutdown lines on stderr */
    /* Connection attempts per client IP before auth (every HTTP request and
     * WebSocket upgrade takes one; past the limit: 429 with Retry-After). */
    uint32_t connect_per_s;      /* refill per second [20]; 0: no limit */
    uint32_t connect_burst;      /* bucket size [50] */
    bool connect_limit_loopback; /* also limit 127.0.0.0/8 and ::1 [false: exempt] */
    /* A WebSocket that has not had a HELLO accepted is closed with
     * SRV_CLOSE_PRE_HELLO past either cap (0: no cap). */
    size_t pre_hello_bytes;  /* inbound payload bytes before HELLO [65536] */
    uint32_t pre_hello_msgs; /* inbound messages before HELLO [32] */
    /* Several nodes (docs/SCALING.md): relay rooms through this Redis
     * server, redis://HOST[:PORT] (NULL: a single node, no Redis) */
    const char *redis_url;
} srv_config;

/* srv_config_init - fill *cfg with the defaults above, then apply the
 * environment: TANDEM_CONNECT_RATE ("N" or "N/BURST": connect_per_s and
 * connect_burst; "0" turns the limit off), TANDEM_CONNECT_LOOPBACK
 * ("1": connect_limit_loopback), TANDEM_ROOM_IDLE_MS (room_idle_ms,
 * 1..86400000), TANDEM_HELLO_TIMEOUT_MS (hello_timeout_ms,
 * 100..3600000), TANDEM_AWARENESS_TIMEOUT_MS (aw_timeout_ms,
 * 100..3600000) and TANDEM_CLOSE_GRACE_MS (close_grace_ms, 1000..600000).
 * Malformed or out-of-range values are ignored. */
void srv_config_init(srv_config *cfg);

/* srv_run - open the store, listen and serve until SIGTERM/SIGINT, then stop
 * accepting, flush pending commits, close every connection with 1001 and
 * return. Errors: TDM_EINVAL (bad configuration), TDM_EIO (cannot listen),
 * the store_open errors, TDM_ENOMEM. Main thread only; one call at a time. */
tdm_err srv_run(const srv_config *cfg);

#endif
