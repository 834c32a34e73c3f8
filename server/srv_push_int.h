/* srv_push_int.h - what srv_push.c (service thread) and srv_push_worker.c
 * (the push worker thread) share. Not installed.
 *
 * Ownership: `mu` guards events, nevents, stop, inbox and ctx. Everything
 * under "worker only" is touched by the worker thread alone (after start);
 * everything under "service only" by the service thread alone. key, subject
 * and the limits are set before the worker starts and never change.
 */
#ifndef TANDEM_SRV_PUSH_INT_H
#define TANDEM_SRV_PUSH_INT_H

#include <pthread.h>

#include "push_crypto.h"
#include "srv_push.h"

/* One durable chat message for the worker (owned by the queue). */
typedef struct srv_push_ev {
    struct srv_push_ev *next;
    char room[SYNCM_MAX_NAME + 1];
    uint64_t chat_id;
    char user[SYNCM_MAX_USER + 1];    /* the sender */
    char display[SYNCM_MAX_USER + 1]; /* the sender's display name */
    char text[SRV_PUSH_TEXT_MAX + 1]; /* the start of the message (whole UTF-8 characters) */
    bool text_cut;                    /* the message was longer */
    char *full_text;                  /* the whole message for mention matching (malloc'd) */
    size_t nskip;
    uint64_t *skip; /* user hashes of the room's connected users (malloc'd) */
} srv_push_ev;

/* One notification to one subscription (worker only). */
typedef struct srv_push_dlv {
    struct srv_push_dlv *next;
    uint64_t due_ms;
    unsigned attempts;
    char user[STORE_PUSH_USER_MAX + 1];
    size_t user_len;
    char endpoint[SRV_PUSH_ENDPOINT_MAX + 1];
    uint8_t p256dh[PUSH_P256_PUB_LEN];
    uint8_t auth[PUSH_AUTH_LEN];
    char room[SYNCM_MAX_NAME + 1];
    bool mention;
    char *payload; /* JSON, NUL-terminated (malloc'd) */
} srv_push_dlv;

/* What a user's capped messages were, for the flush when the window
 * reopens (worker only; malloc'd while held > 0). */
typedef struct srv_push_held {
    char user[STORE_PUSH_USER_MAX + 1];
    size_t user_len;
    char room[SYNCM_MAX_NAME + 1]; /* the room of the latest held message */
    bool other_rooms;              /* messages of other rooms were held too */
    bool mention;                  /* one of them mentioned the user */
    uint64_t chat_id;              /* the latest held message */
} srv_push_held;

/* Per-user cap window (worker only). */
typedef struct srv_push_quota {
    uint64_t user_h;
    uint64_t window_ms; /* start of the current window (user_window_ms long) */
    uint32_t used;
    uint32_t held;      /* capped since the last notification: told in the next one, or
                           flushed when the window reopens */
    srv_push_held *why; /* non-NULL while held > 0 */
    uint32_t more;      /* held count carried by the notification of event used_seq */
    uint64_t used_seq;  /* the event the decision below is for */
    bool allowed;
} srv_push_quota;

struct srv_push {
    srv *s;
    store *st;
    push_key *key;
    char public_b64[100];
    char subject[PUSH_SUB_MAX + 1];
    bool enabled;
    bool allow_local_http; /* --dev: http://127.0.0.1 endpoints */
    unsigned attempts;
    uint64_t backoff_ms;
    uint32_t user_rate;
    uint64_t user_window_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started;
    srv_push_ev *events, *events_tail; /* mu */
    size_t nevents;                    /* mu */
    bool stop;                         /* mu */
    srv_push_counters inbox;           /* mu: deltas (queued: the gauge) */
    bool inbox_dirty;                  /* mu */
    struct lws_context *ctx;           /* mu: woken after an inbox update */

    /* worker only */
    srv_push_dlv *dlv; /* waiting deliveries */
    size_t ndlv;
    srv_push_quota *quota;
    size_t nquota;

    /* service only */
    srv_push_counters n;
};

/* srv_push__hash - FNV-1a-64 of p[0..n). */
uint64_t srv_push__hash(const void *p, size_t n);
/* srv_push__worker - the worker thread's body (arg: struct srv_push *). */
void *srv_push__worker(void *arg);
/* srv_push__ev_free - free an event and what it owns. */
void srv_push__ev_free(srv_push_ev *ev);

#endif
