/* srv_internal.h - what the server's source files share (not installed).
 *
 * Threads: everything here belongs to the lws service thread except the
 * inbox push (srv_inbox_push), which the storage writer thread calls.
 */
#ifndef TANDEM_SRV_INTERNAL_H
#define TANDEM_SRV_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "srv.h"
#include "session.h"
#include "store.h"

typedef struct srv srv;

/* ---- inbox: storage writer thread -> service thread (srv_inbox.c) ---- */

/* One finished storage job. */
typedef struct srv_done {
    uint64_t token;
    tdm_err err;
    uint64_t id;
    bool duplicate;
} srv_done;

/* A fixed ring of finished jobs. Its capacity is at least the number of
 * jobs that can be outstanding (sync's max_pending), so a push never finds
 * it full; if it ever did, the entry is counted in `lost` (and the ack never
 * comes: the client resends after reconnecting). */
typedef struct srv_inbox {
    pthread_mutex_t mu;
    srv_done *ring;
    size_t cap, head, len;
    size_t lost;
    struct lws_context *ctx; /* woken with lws_cancel_service after a push */
} srv_inbox;

/* srv_inbox_init - a ring of `cap` entries. TDM_ENOMEM. Service thread. */
tdm_err srv_inbox_init(srv_inbox *in, size_t cap);
/* srv_inbox_fini - free the ring (no thread may push any more). */
void srv_inbox_fini(srv_inbox *in);
/* srv_inbox_push - add a result; wake the service thread (lws_cancel_service)
 * when the ring was empty: its drain takes until the ring is empty. Any
 * thread. */
void srv_inbox_push(srv_inbox *in, const srv_done *d);
/* srv_inbox_take - move up to `max` results into out[], oldest first;
 * returns how many. Service thread. */
size_t srv_inbox_take(srv_inbox *in, srv_done *out, size_t max);

/* ---- connections (srv_ws.c) ---- */

/* Per-connection state of a WebSocket session (lws per_session_data). */
typedef struct srv_conn {
    srv *s;
    struct lws *wsi;
    sync_session *ss;
    uint8_t *rx; /* message reassembly, capped at cfg.max_frame */
    size_t rx_len, rx_cap;
    unsigned close_code; /* set: close with this code once the queue is sent (or now) */
    bool helloed;        /* a HELLO was accepted (the pre-HELLO caps no longer apply) */
    size_t pre_bytes;    /* payload bytes received before that */
    uint32_t pre_msgs;   /* messages received before that */
    bool close_now;      /* close without sending what is queued */
    bool close_sent;     /* our close frame is queued: nothing more is written (srv_ws.c) */
    bool grace_armed;    /* sync marked it for closing: lws drops it after cfg.close_grace_ms */
    bool want_w;         /* a WRITEABLE callback was asked for and has not come yet */
    bool dirty;          /* on srv.dirty: sync queued frames since the last srv_ws_flush */
    struct srv_conn *prev, *next;
    struct srv_conn *dnext; /* srv.dirty list */
} srv_conn;

/* Counters for /healthz and /metrics. Service thread only. */
typedef struct srv_counters {
    uint64_t ws_accepted, ws_refused, ws_closed;
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t too_big, protocol_errors, http_requests;
    uint64_t updates_persisted, chats_persisted, storage_errors, auth_refused;
    uint64_t sse_opened, sse_refused, sse_closed, sse_reaped, sse_expired;
    uint64_t connect_limited, pre_hello_closed;
} srv_counters;

/* Per-second rates over the last sampling window (srv_sse.c). */
typedef struct srv_rates {
    uint64_t at_ms; /* when the counters below were sampled (0: never) */
    uint64_t updates, messages, bytes;
    double updates_per_s, messages_per_s, bytes_per_s;
} srv_rates;

struct srv_sse;
struct srv_resp;

struct srv {
    srv_config cfg;
    struct lws_context *ctx;
    void *evloop[1]; /* the libev loop lws runs on ([0] NULL: lws's own poll loop) */
    store *st;
    sync_server *sync;
    srv_inbox inbox;
    struct srv_auth *auth; /* token verifier (auth.h) */
    struct srv_rl *rl;     /* rate limiter (ratelimit.h) */
    srv_conn *conns;       /* every open WebSocket session */
    size_t nconns;
    srv_conn *dirty; /* sessions with frames queued since the last srv_ws_flush */
    lws_sorted_usec_list_t tick_sul;
    uint8_t *wbuf; /* outbound scratch: LWS_PRE + frame (lws keeps what it cannot send) */
    size_t wcap;
    uint64_t id_base, id_count; /* fresh_client_id */
    struct {
        bool held;
        uint64_t version, src, op_id;
        uint8_t *op; /* malloc'd; freed once handed to the store */
        size_t op_len;
        char name[SYNCM_MAX_NAME + 1];
    } ot_held; /* srv_host.c: an OT record waiting for its room's persist_update */
    uint64_t started_ms;
    bool stopping;       /* shutdown begun: no new connections */
    char web_real[4096]; /* realpath of cfg.web_root ("" when missing) */
    srv_counters n;
    struct srv_push *push;   /* Web Push (srv_push.h) */
    struct srv_redis *redis; /* several nodes through Redis (srv_redis.h); NULL: one node */
    struct srv_sse *sse;     /* every open SSE stream (srv_sse.c) */
    size_t nsse;
    size_t nroom_sse; /* of which per-room event streams */
    srv_rates rates;
    size_t trim_rooms; /* rooms in memory at the last tick (srv_run.c trim) */
    uint64_t trim_ms;  /* last malloc_trim */
    bool trim_pending; /* rooms were freed since then */
};

/* srv_now_ms - Unix time in milliseconds. */
uint64_t srv_now_ms(void);

/* srv_host_make - the sync_host of s (storage, access, ids). srv_host.c */
void srv_host_make(srv *s, sync_host *h);
/* srv_host_drain - apply every finished storage job (sync_server_durable). */
void srv_host_drain(srv *s);

/* srv_ws_callback - the "tandem.v1" protocol callback. srv_ws.c */
int srv_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len);
/* srv_ws_output - sync_host.session_output: put the session's connection on
 * the dirty list (srv_ws_flush writes it). Called from inside sync, so it
 * writes nothing itself. */
void srv_ws_output(void *ctx, sync_session *ss);
/* srv_ws_flush - write what sync queued for every connection on the dirty
 * list straight to its socket (lws_write outside WRITEABLE: no POLLOUT round
 * trip through the event loop); a connection whose socket does not take it
 * all, or that is closing, asks for WRITEABLE instead. Called by srv_service
 * before and after every turn of the event loop (so nothing stays listed
 * while the loop waits) and by srv_ws_kick. */
void srv_ws_flush(srv *s);
/* srv_ws_kick - srv_ws_flush, then ask for WRITEABLE on every session with
 * output or closing (a safety net run by the timer). */
void srv_ws_kick(srv *s);
/* srv_ws_close_all - flag every session to close with `code` after its queue. */
void srv_ws_close_all(srv *s, unsigned code);

/* srv_http_callback - protocols[0]: HTTP requests and refused upgrades. srv_http.c */
int srv_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                      size_t len);
/* Per-request HTTP state (lws per_session_data of protocols[0]). */
typedef struct srv_http_req {
    uint8_t *body; /* LWS_PRE + response body, or NULL */
    size_t len, off;
    bool sending;
    uint64_t retry_s; /* the next response carries Retry-After (429) */
    uint8_t *in;      /* POST body being received (capped at SRV_PUSH_BODY_MAX), or NULL */
    size_t in_len;
    bool in_over;        /* the body passed the cap: answered 413 when complete */
    char in_path[64];    /* the POST path waiting for its body */
    struct srv_sse *sse; /* set while the request is an SSE stream */
} srv_http_req;

/* ---- Server-Sent Events and metrics (srv_sse.c, srv_metrics.c) ---- */

#define SRV_SSE_MAX         256u    /* concurrent SSE streams; 503 past it */
#define SRV_SSE_LIFETIME_MS 600000u /* a stream is ended after this (EventSource reconnects) */
#define SRV_SSE_INTERVAL_MS 2000u   /* default stats-update period (?interval_ms=) */
#define SRV_SSE_OUT_MAX     65536u  /* queued event bytes per stream; the stream ends past it */

/* srv_sse_route - for an SSE endpoint `path`: 2 the stream started, 1 it
 * was refused and *err holds the answer (503 at the cap, 500), 0 `path` is
 * not an SSE endpoint, -1 close the connection. */
int srv_sse_route(srv *s, struct lws *wsi, srv_http_req *q, const char *path, struct srv_resp *err);
/* srv_sse_writeable - HTTP_WRITEABLE of a stream: 0 or -1 (close). */
int srv_sse_writeable(srv *s, struct lws *wsi, srv_http_req *q);
/* srv_sse_closed - the stream's connection closed: unlink and free. */
void srv_sse_closed(srv *s, srv_http_req *q);
/* srv_sse_tick - every SRV_TICK_MS: reap dead sockets (the 4.1.6 SSE spin
 * workaround), end streams past their lifetime, queue stats-update events. */
void srv_sse_tick(srv *s, uint64_t now_ms);
/* srv_sse_close_all - end every stream (shutdown). */
void srv_sse_close_all(srv *s);
/* srv_sse_free_all - free the records of streams still listed after
 * lws_context_destroy (their connections are gone). */
void srv_sse_free_all(srv *s);
/* srv_rss_bytes - resident set size from /proc/self/statm (0 when unknown). */
uint64_t srv_rss_bytes(void);
/* srv_metrics - the Prometheus text exposition of s into r. */
tdm_err srv_metrics(srv *s, struct srv_resp *r);

/* ---- access: tokens and rate limits (srv_access.c) ---- */

/* srv_access_open - the token verifier and the rate limiter from s->cfg.
 * TDM_EINVAL (message on stderr) when no verification is configured and
 * cfg.dev is off; the srv_auth_new errors. */
/* ---- per-room event streams: GET /api/rooms/{id}/events (srv_sse.c,
 * srv_room_events.c) ---- */

/* srv_room_event - sync_host.room_event: for a room some stream watches,
 * the event's JSON to each of them (srv_sse_room_push); otherwise nothing. */
void srv_room_event(void *ctx, const char *name, const sync_room_event *ev);
/* srv_room_snapshot - room `name` as it is now (sync_server_room_presence):
 * emit(arg, event, data) for each `presence` entry present and each user
 * `typing` now, data being the same JSON as the live events; nothing when
 * the room is not loaded. emit must not call sync_*. */
typedef void (*srv_room_emit)(void *arg, const char *event, const char *data);
void srv_room_snapshot(srv *s, const char *name, srv_room_emit emit, void *arg);
/* srv_room_chat_json - the `chat` event data of rec: one line of compact
 * JSON (malloc'd, the caller frees; NULL when out of memory), without the
 * text ("text_omitted": true) when it would not fit one event. */
char *srv_room_chat_json(const sync_chat_rec *rec);
/* srv_sse_room_watched - does an open stream watch room `name`? */
bool srv_sse_room_watched(const srv *s, const char *name);
/* srv_sse_room_push - queue `event` with `data` on every stream of room
 * `name`. chat_id > 0: a chat record (id: chat_id; skipped by streams that
 * already sent it; data NULL or a full queue: the stream reads it from
 * storage once its queue drains). chat_id 0: presence/typing with a
 * synthetic id, dropped when the queue is full. */
void srv_sse_room_push(srv *s, const char *name, const char *event, const char *data,
                       uint64_t chat_id);
/* srv_host_chat_rec - a stored chat message as a sync_chat_rec (pointers
 * into *m). srv_host.c */
void srv_host_chat_rec(const store_chat_msg *m, sync_chat_rec *r);

tdm_err srv_access_open(srv *s);
void srv_access_close(srv *s);
/* srv_access_ws - sync_host.authorize: the HELLO token's claims decide;
 * without a token only dev mode grants (write, user "anon"). */
tdm_err srv_access_ws(void *ctx, const sync_session *session, const uint8_t *token,
                      size_t token_len, const char *name, sync_auth *out);
/* srv_access_http - may this request read `room` (NULL: list rooms)?
 * 0, or the HTTP status to answer (401 no/bad token, 403 no access). */
unsigned srv_access_http(srv *s, struct lws *wsi, const char *room);
struct srv_auth_claims;
/* srv_access_http_claims - the verified claims of this request's token: 0
 * with *c filled, or 401. In dev mode a request without a token is user
 * "anon" with *anon set (every room readable, as srv_access_http). */
unsigned srv_access_http_claims(srv *s, struct lws *wsi, struct srv_auth_claims *c, bool *anon);
/* srv_access_rate - sync_host.rate_limit: per-user token buckets. */
uint64_t srv_access_rate(void *ctx, const sync_session *session, const char *user,
                         sync_rate_kind kind, uint64_t now_ms);
/* srv_access_connect - the per-IP connection-attempt limit (SRV_RL_CONNECT,
 * cfg.connect_*), checked before auth for every HTTP request and WebSocket
 * upgrade: 0 allowed (one token taken), else milliseconds until a retry can
 * succeed. Loopback peers pass unless cfg.connect_limit_loopback. */
uint64_t srv_access_connect(srv *s, struct lws *wsi);
#define SRV_DEV_TOKEN_TTL_S 3600u /* lifetime of /api/dev/token tokens */
struct srv_resp;
/* srv_access_dev_token - GET /api/dev/token?user=U&name=N (dev mode only;
 * the caller checks): {"token", "expires_at"} minted with the run's key,
 * rooms "*:rw", SRV_DEV_TOKEN_TTL_S. 400 for a bad user/name. */
tdm_err srv_access_dev_token(srv *s, struct lws *wsi, struct srv_resp *r);
/* srv_access_tick - forget idle rate-limit keys. */
void srv_access_tick(srv *s, uint64_t now_ms);

/* ---- HTTP API and static files (srv_api.c, srv_static.c) ---- */

/* A generated response. body is malloc'd with LWS_PRE bytes of headroom
 * (body + LWS_PRE is the payload); the sender frees it. */
typedef struct srv_resp {
    unsigned status;
    const char *type; /* content type */
    uint8_t *body;
    size_t len;
} srv_resp;

/* srv_resp_json - serialize v (consumed) into r. TDM_ENOMEM, TDM_ETOOBIG. */
tdm_err srv_resp_json(srv_resp *r, unsigned status, void *json_v);
/* srv_resp_error - {"error": code, "message": msg} with `status`. */
tdm_err srv_resp_error(srv_resp *r, unsigned status, const char *code, const char *msg);
/* srv_resp_bytes - a copy of p[0..n) with content type `type`. */
tdm_err srv_resp_bytes(srv_resp *r, unsigned status, const char *type, const void *p, size_t n);

/* srv_api_route - answer GET `path` under /api/ or /healthz into r; false
 * when the path is not an API path. */
bool srv_api_route(srv *s, struct lws *wsi, const char *path, srv_resp *r);
/* srv_static_resolve - map a request path to a regular file under the web
 * root: 0 with real[] and *type set, or an HTTP status (403, 404). */
unsigned srv_static_resolve(const srv *s, const char *path, char *real, size_t real_len,
                            const char **type);

/* srv_json_str - a jansson string (json_t *, new reference; NULL when out of
 * memory) of bytes p[0..n) that may not be UTF-8: non-ASCII bytes of invalid
 * UTF-8 become U+FFFD. */
struct json_t;
struct json_t *srv_json_str(const void *p, size_t n);

#endif
