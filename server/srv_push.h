/* srv_push.h - Web Push notifications of the server (prefix srv_push_;
 * docs/PUSH.md). Not installed.
 *
 * The VAPID key pair is loaded (or, in --dev, generated) at start-up; the
 * HTTP API serves the public key and takes subscriptions, stored per user
 * through storage/ (store_push_*). When a chat message becomes durable in a
 * room, srv_push_chat hands an event to the push worker thread, which finds
 * the room's followers (skipping the sender and users connected to the room
 * at that moment), applies the per-user cap, encrypts (aes128gcm, RFC 8291),
 * signs (VAPID, RFC 8292) and POSTs with libcurl; 404/410 remove the
 * subscription, 429/5xx and transport errors are retried with exponential
 * backoff honouring Retry-After (seconds or an HTTP-date), a bounded number
 * of times. Messages held back by the cap are announced when the user's cap
 * window reopens ("N more messages in ROOM") if no later notification told
 * them.
 *
 * Threads: every function here is called on the lws service thread. The
 * worker thread (srv_push_worker.c) touches only the shared part of
 * srv_push under its mutex, the store (thread-safe) and libcurl; it reports
 * counters back through a mutex-protected inbox and lws_cancel_service
 * (drained by srv_push_drain on the service thread).
 */
#ifndef TANDEM_SRV_PUSH_H
#define TANDEM_SRV_PUSH_H

#include "srv_internal.h"

#define SRV_PUSH_BODY_MAX     16384u /* a POST body; 413 past it */
#define SRV_PUSH_ENDPOINT_MAX 1024u  /* endpoint URL bytes accepted */
#define SRV_PUSH_ROOMS_MAX    64u    /* rooms one subscription follows */
#define SRV_PUSH_SUBS_MAX     16u    /* subscriptions per user */
#define SRV_PUSH_EVENTS_MAX   256u   /* chat events waiting for the worker */
#define SRV_PUSH_QUEUE_MAX    1024u  /* deliveries waiting (first tries and retries) */
#define SRV_PUSH_ATTEMPTS     5u     /* tries per delivery [TANDEM_PUSH_ATTEMPTS] */
#define SRV_PUSH_BACKOFF_MS   2000u  /* first retry delay, doubling [TANDEM_PUSH_BACKOFF_MS] */
#define SRV_PUSH_BACKOFF_MAX                                                                       \
    300000u                        /* longest wait before a retry; a longer Retry-After gives up */
#define SRV_PUSH_USER_RATE      6u /* notifications per user per minute [TANDEM_PUSH_USER_RATE] */
#define SRV_PUSH_USER_WINDOW_MS 60000u      /* the cap window [TANDEM_PUSH_USER_WINDOW_MS] */
#define SRV_PUSH_TTL_S          3600u       /* TTL header: the push service keeps it this long */
#define SRV_PUSH_JWT_TTL_S      43200u      /* VAPID token lifetime (12 h; RFC 8292 allows 24 h) */
#define SRV_PUSH_TIMEOUT_MS     10000u      /* one HTTP request, connect included */
#define SRV_PUSH_TEXT_MAX       240u        /* message bytes copied into a notification body */
#define SRV_PUSH_KEY_FILE       "vapid.pem" /* in the data directory */
#define SRV_PUSH_SUBJECT        "mailto:push@tandem.invalid" /* default VAPID sub */

/* Delivery counters (service thread copy, for /metrics and the SSE stats). */
typedef struct srv_push_counters {
    uint64_t subscribed;   /* subscriptions stored (new or replaced) */
    uint64_t unsubscribed; /* removed by the user */
    uint64_t events;       /* durable chat messages handed to the worker */
    uint64_t events_lost;  /* events refused because the worker queue was full */
    uint64_t skipped;      /* followers skipped: connected to the room or the sender */
    uint64_t sent;         /* deliveries the push service accepted (2xx) */
    uint64_t retried;      /* retries scheduled (429, 5xx, transport errors) */
    uint64_t failed;       /* deliveries given up (other 4xx, attempts used up) */
    uint64_t removed;      /* subscriptions deleted after 404/410 */
    uint64_t capped;       /* notifications held back by the per-user cap */
    uint64_t coalesced;    /* notifications merged into one still queued */
    uint64_t dropped;      /* deliveries refused because the queue was full */
    uint64_t queued;       /* deliveries waiting now (gauge) */
} srv_push_counters;

/* srv_push_open - the VAPID key (TANDEM_VAPID_KEY_FILE, else
 * DATA/vapid.pem; generated there in --dev when missing), the subject
 * (TANDEM_VAPID_SUBJECT), the limits from the environment, and the worker
 * thread. Without a key outside --dev push is off (the endpoints answer
 * 503) and TDM_OK is returned. Errors: TDM_EMALFORMED / TDM_EIO (an
 * unusable key file: message on stderr), TDM_ENOMEM. Call after the store
 * is open and before lws starts; s->push is set on success. */
tdm_err srv_push_open(srv *s);
/* srv_push_set_context - lws is up: the worker may wake the service loop. */
void srv_push_set_context(srv *s, struct lws_context *ctx);
/* srv_push_close - stop the worker (deliveries still waiting are dropped),
 * join it and free everything. NULL-safe on s->push. */
void srv_push_close(srv *s);
/* srv_push_drain - move the worker's counter updates into the service
 * thread's copy (on EVENT_WAIT_CANCELLED). */
void srv_push_drain(srv *s);
/* srv_push_counters_get - the current counters. */
void srv_push_counters_get(const srv *s, srv_push_counters *out);

/* srv_push_chat - chat record `rec` of room `room` is durable (id assigned):
 * notify the room's followers who are not connected to it. Copies what it
 * needs; never blocks (a full worker queue drops the event, counted). */
void srv_push_chat(srv *s, const char *room, const sync_chat_rec *rec);

/* srv_push_get - GET /api/push/... into r: public-key, subscriptions.
 * Returns the error of srv_resp_* (the caller answers 500). */
tdm_err srv_push_get(srv *s, struct lws *wsi, const char *path, srv_resp *r);
/* srv_push_is_post - is `path` a POST endpoint (/api/push/subscribe,
 * /api/push/unsubscribe)? */
bool srv_push_is_post(const char *path);
/* srv_push_post - POST `path` with body[0..n) into r (400 with a JSON
 * message for bad input, nothing stored). */
tdm_err srv_push_post(srv *s, struct lws *wsi, const char *path, const uint8_t *body, size_t n,
                      srv_resp *r);

#endif
