/* srv_push_worker.c - the push worker thread (srv_push.h): turns durable
 * chat messages into deliveries (followers of the room, minus the sender
 * and users connected to it, within the per-user cap, coalescing what is
 * still queued for the same subscription and room) and sends them one at a
 * time with libcurl (easy interface in a loop; a request is aborted when
 * the server stops). Only this thread touches the delivery list and the
 * quota table; counters go back through p->inbox + lws_cancel_service. */
#include "srv_push_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define QUOTA_MAX 4096u /* users with a live cap window; the oldest is reused past it */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Move the local deltas d into the inbox and wake the service thread. */
static void flush(struct srv_push *p, srv_push_counters *d)
{
    pthread_mutex_lock(&p->mu);
    srv_push_counters *a = &p->inbox;
    a->sent += d->sent, a->retried += d->retried, a->failed += d->failed;
    a->removed += d->removed, a->capped += d->capped, a->coalesced += d->coalesced;
    a->dropped += d->dropped, a->skipped += d->skipped;
    a->queued = p->ndlv;
    p->inbox_dirty = true;
    if (p->ctx) lws_cancel_service(p->ctx);
    pthread_mutex_unlock(&p->mu);
    memset(d, 0, sizeof *d);
}

static bool stopping(struct srv_push *p)
{
    pthread_mutex_lock(&p->mu);
    bool st = p->stop;
    pthread_mutex_unlock(&p->mu);
    return st;
}

/* ---- quota ---- */

/* Is one more notification to user_h allowed now? Decided once per event. */
static srv_push_quota *quota_get(struct srv_push *p, uint64_t user_h, uint64_t now)
{
    size_t oldest = 0;
    for (size_t i = 0; i < p->nquota; i++) {
        if (p->quota[i].user_h == user_h) return &p->quota[i];
        if (p->quota[i].window_ms < p->quota[oldest].window_ms) oldest = i;
    }
    if (!p->quota) {
        p->quota = calloc(QUOTA_MAX, sizeof *p->quota);
        if (!p->quota) return NULL;
    }
    srv_push_quota *q = p->nquota < QUOTA_MAX ? &p->quota[p->nquota++] : &p->quota[oldest];
    free(q->why); /* a reused entry: what it held is forgotten */
    memset(q, 0, sizeof *q);
    q->user_h = user_h;
    q->window_ms = now;
    return q;
}

/* ---- events -> deliveries ---- */

typedef struct collect {
    struct srv_push *p;
    const srv_push_ev *ev;
    uint64_t now;
    uint64_t seq; /* this event's sequence number (quota decisions) */
    srv_push_counters *d;
} collect;

/* Does text mention "@name" (ASCII case-insensitive)? */
static bool mentions(const char *text, const uint8_t *name, size_t n)
{
    if (n == 0) return false;
    for (const char *at = strchr(text, '@'); at; at = strchr(at + 1, '@')) {
        size_t i = 0;
        while (i < n && at[1 + i] &&
               tolower((unsigned char)at[1 + i]) == tolower((unsigned char)name[i]))
            i++;
        if (i == n) return true;
    }
    return false;
}

static void pct_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)in; *c && o + 4 < cap; c++) {
        if (isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~') {
            out[o++] = (char)*c;
        } else {
            out[o++] = '%';
            out[o++] = hex[*c >> 4];
            out[o++] = hex[*c & 15];
        }
    }
    out[o] = '\0';
}

/* The notification JSON (malloc'd) or NULL. */
static char *payload(const srv_push_ev *ev, bool mention, uint32_t more)
{
    char title[SYNCM_MAX_USER + SYNCM_MAX_NAME + 64], body[SRV_PUSH_TEXT_MAX + 64];
    char url[3 * SYNCM_MAX_NAME + 16], enc[3 * SYNCM_MAX_NAME + 8];
    const char *who = ev->display[0] ? ev->display : ev->user;
    snprintf(title, sizeof title, mention ? "%s mentioned you in %s" : "%s in %s", who, ev->room);
    if (more)
        snprintf(body, sizeof body, "%s%s (+%u more)", ev->text, ev->text_cut ? "\xe2\x80\xa6" : "",
                 (unsigned)more);
    else
        snprintf(body, sizeof body, "%s%s", ev->text, ev->text_cut ? "\xe2\x80\xa6" : "");
    pct_encode(ev->room, enc, sizeof enc);
    snprintf(url, sizeof url, "/?room=%s", enc);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b}", "title", title, "body", body,
                          "url", url, "room", ev->room, "chat_id", (json_int_t)ev->chat_id,
                          "sender", ev->user, "mention", mention);
    if (!o) return NULL;
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (txt && strlen(txt) > PUSH_PLAINTEXT_MAX) { /* cannot happen with the caps; be safe */
        free(txt);
        txt = NULL;
    }
    return txt;
}

/* Count one message of ev held back for a user by the cap, and remember
 * what the flush will say. */
static void hold(srv_push_quota *q, const uint8_t *user, size_t ulen, const srv_push_ev *ev,
                 bool mention)
{
    q->held++;
    if (!q->why) {
        q->why = calloc(1, sizeof *q->why);
        if (!q->why) return; /* told in the next notification only */
        memcpy(q->why->user, user, ulen);
        q->why->user_len = ulen;
    } else if (strcmp(q->why->room, ev->room) != 0) {
        q->why->other_rooms = true;
    }
    snprintf(q->why->room, sizeof q->why->room, "%s", ev->room);
    q->why->mention |= mention;
    q->why->chat_id = ev->chat_id;
}

/* The JSON of a flush: n messages held back, the latest in h->room. */
static char *payload_held(const srv_push_held *h, uint32_t n)
{
    char title[SYNCM_MAX_NAME + 96], url[3 * SYNCM_MAX_NAME + 16], enc[3 * SYNCM_MAX_NAME + 8];
    snprintf(title, sizeof title, "%u more message%s in %s%s", (unsigned)n, n == 1 ? "" : "s",
             h->room, h->other_rooms ? " and other rooms" : "");
    pct_encode(h->room, enc, sizeof enc);
    snprintf(url, sizeof url, "/?room=%s", enc);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:I}", "title", title, "body",
                          h->mention ? "One of them mentions you" : "Open the room to read them",
                          "url", url, "room", h->room, "chat_id", (json_int_t)h->chat_id, "sender",
                          "", "mention", h->mention, "more", (json_int_t)n);
    if (!o) return NULL;
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (txt && strlen(txt) > PUSH_PLAINTEXT_MAX) {
        free(txt);
        txt = NULL;
    }
    return txt;
}

/* Queue a delivery of pl (owned; NULL: dropped) to sub for room, after
 * the others (first come, first sent among equal due times); false when
 * dropped (queue full, no memory). */
static bool enqueue(struct srv_push *p, const uint8_t *user, size_t ulen, const store_push_sub *sub,
                    const char *room, bool mention, char *pl, uint64_t now)
{
    if (!pl || p->ndlv >= SRV_PUSH_QUEUE_MAX) {
        free(pl);
        return false;
    }
    srv_push_dlv *d = calloc(1, sizeof *d);
    if (!d) {
        free(pl);
        return false;
    }
    d->payload = pl;
    d->due_ms = now;
    memcpy(d->user, user, ulen);
    d->user_len = ulen;
    memcpy(d->endpoint, sub->endpoint, sub->endpoint_len);
    memcpy(d->p256dh, sub->p256dh, PUSH_P256_PUB_LEN);
    memcpy(d->auth, sub->auth, PUSH_AUTH_LEN);
    snprintf(d->room, sizeof d->room, "%s", room);
    d->mention = mention;
    srv_push_dlv **pp = &p->dlv;
    while (*pp) pp = &(*pp)->next;
    *pp = d;
    p->ndlv++;
    return true;
}

static int collect_one(void *ctx, const uint8_t *user, size_t ulen, const store_push_sub *sub)
{
    collect *c = ctx;
    struct srv_push *p = c->p;
    const srv_push_ev *ev = c->ev;
    size_t rn = strlen(ev->room);
    bool follows = false;
    for (size_t i = 0; i < sub->nrooms && !follows; i++)
        follows = sub->rooms[i].n == rn && memcmp(sub->rooms[i].p, ev->room, rn) == 0;
    if (!follows) return 0;
    uint64_t uh = srv_push__hash(user, ulen);
    bool skip = ulen == strlen(ev->user) && memcmp(user, ev->user, ulen) == 0;
    for (size_t i = 0; i < ev->nskip && !skip; i++) skip = ev->skip[i] == uh;
    if (skip) {
        c->d->skipped++;
        return 0;
    }
    if (sub->p256dh_len != PUSH_P256_PUB_LEN || sub->auth_len != PUSH_AUTH_LEN ||
        sub->endpoint_len > SRV_PUSH_ENDPOINT_MAX) {
        c->d->failed++;
        return 0;
    }
    bool mention = mentions(ev->full_text, sub->display, sub->display_len);
    /* Coalesce with a delivery still queued for this subscription and room. */
    for (srv_push_dlv *d = p->dlv; d; d = d->next) {
        if (strcmp(d->room, ev->room) != 0 || strlen(d->endpoint) != sub->endpoint_len ||
            memcmp(d->endpoint, sub->endpoint, sub->endpoint_len) != 0)
            continue;
        char *pl = payload(ev, mention || d->mention, 1);
        if (pl) {
            free(d->payload);
            d->payload = pl;
            d->mention |= mention;
        }
        c->d->coalesced++;
        return 0;
    }
    /* The per-user cap, decided once per event for all of a user's devices. */
    srv_push_quota *q = quota_get(p, uh, c->now);
    if (q) {
        if (c->now - q->window_ms >= p->user_window_ms) q->window_ms = c->now, q->used = 0;
        if (q->used_seq != c->seq) {
            q->used_seq = c->seq;
            q->allowed = q->used < p->user_rate;
            if (q->allowed) {
                q->used++;
                q->more = q->held; /* told in this notification: nothing to flush */
                q->held = 0;
                free(q->why);
                q->why = NULL;
            } else {
                hold(q, user, ulen, ev, mention);
            }
        } else if (!q->allowed && q->why && strcmp(q->why->room, ev->room) == 0) {
            q->why->mention |= mention; /* another device of the same user */
        }
        if (!q->allowed) {
            c->d->capped++;
            return 0;
        }
    }
    if (!enqueue(p, user, ulen, sub, ev->room, mention, payload(ev, mention, q ? q->more : 0),
                 c->now))
        c->d->dropped++;
    return 0;
}

static void handle_event(struct srv_push *p, const srv_push_ev *ev, uint64_t seq,
                         srv_push_counters *d)
{
    collect c = {p, ev, mono_ms(), seq, d};
    tdm_err e = store_push_list(p->st, NULL, 0, collect_one, &c);
    if (e) fprintf(stderr, "tandem serve: push: listing subscriptions: %s\n", tdm_strerror(e));
}

/* ---- the cap window reopens: tell what was held ---- */

typedef struct flush_ctx {
    struct srv_push *p;
    const srv_push_held *h;
    uint32_t n;
    uint64_t now;
    srv_push_counters *d;
    bool any;
} flush_ctx;

static int flush_one(void *ctx, const uint8_t *user, size_t ulen, const store_push_sub *sub)
{
    flush_ctx *f = ctx;
    size_t rn = strlen(f->h->room);
    bool follows = false;
    for (size_t i = 0; i < sub->nrooms && !follows; i++)
        follows = sub->rooms[i].n == rn && memcmp(sub->rooms[i].p, f->h->room, rn) == 0;
    if (!follows || ulen != f->h->user_len || memcmp(user, f->h->user, ulen) != 0 ||
        sub->p256dh_len != PUSH_P256_PUB_LEN || sub->auth_len != PUSH_AUTH_LEN ||
        sub->endpoint_len > SRV_PUSH_ENDPOINT_MAX)
        return 0;
    for (srv_push_dlv *d = f->p->dlv; d; d = d->next)
        if (strcmp(d->room, f->h->room) == 0 && strlen(d->endpoint) == sub->endpoint_len &&
            memcmp(d->endpoint, sub->endpoint, sub->endpoint_len) == 0) {
            f->d->coalesced++; /* one for this room is still queued */
            return 0;
        }
    if (enqueue(f->p, user, ulen, sub, f->h->room, f->h->mention, payload_held(f->h, f->n), f->now))
        f->any = true;
    else
        f->d->dropped++;
    return 0;
}

/* When the earliest held-back user's window reopens (UINT64_MAX: none). */
static uint64_t flush_due(const struct srv_push *p)
{
    uint64_t due = UINT64_MAX;
    for (size_t i = 0; i < p->nquota; i++)
        if (p->quota[i].held && p->quota[i].why && p->quota[i].window_ms + p->user_window_ms < due)
            due = p->quota[i].window_ms + p->user_window_ms;
    return due;
}

/* Every user whose window reopened with messages held back and not told
 * since: one "N more messages in ROOM" to each of the user's subscriptions
 * following the room of the latest, counted in the new window. */
static void flush_held(struct srv_push *p, uint64_t now, srv_push_counters *d)
{
    for (size_t i = 0; i < p->nquota; i++) {
        srv_push_quota *q = &p->quota[i];
        if (!q->held || !q->why || now - q->window_ms < p->user_window_ms) continue;
        srv_push_held *h = q->why;
        flush_ctx f = {p, h, q->held, now, d, false};
        q->why = NULL;
        q->held = 0;
        q->window_ms = now;
        q->used = 0;
        tdm_err e = store_push_list(p->st, (const uint8_t *)h->user, h->user_len, flush_one, &f);
        if (e) fprintf(stderr, "tandem serve: push: listing subscriptions: %s\n", tdm_strerror(e));
        if (f.any) q->used = 1;
        free(h);
    }
}

/* ---- sending ---- */

typedef struct reply {
    bool has_retry_after;
    uint64_t retry_after_ms; /* from now (0: at once) */
} reply;

/* Retry-After: delay-seconds, or an HTTP-date (curl_getdate: RFC 1123, RFC
 * 850, asctime); a date in the past means at once, an unparseable value is
 * ignored (the backoff applies). */
static size_t on_header(char *b, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(b, name, sizeof name - 1) == 0) {
        size_t i = sizeof name - 1;
        while (i < len && (b[i] == ' ' || b[i] == '\t')) i++;
        size_t e = len;
        while (e > i && (b[e - 1] == '\r' || b[e - 1] == '\n' || b[e - 1] == ' ')) e--;
        if (e > i && b[i] >= '0' && b[i] <= '9') {
            uint64_t v = 0;
            while (i < e && b[i] >= '0' && b[i] <= '9' && v < 100000000u)
                v = v * 10 + (uint64_t)(b[i++] - '0');
            r->has_retry_after = true;
            r->retry_after_ms = v * 1000u;
        } else if (e > i && e - i < 64) {
            char date[64];
            memcpy(date, b + i, e - i);
            date[e - i] = '\0';
            time_t t = curl_getdate(date, NULL);
            if (t != (time_t)-1) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                int64_t ms =
                    (int64_t)t * 1000 - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000L);
                r->has_retry_after = true;
                r->retry_after_ms = ms > 0 ? (uint64_t)ms : 0;
            }
        }
    }
    return len;
}

static size_t on_body(char *b, size_t size, size_t n, void *ud)
{
    (void)b, (void)ud;
    return size * n; /* the push service's answer body is not needed */
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return stopping(ud) ? 1 : 0; /* abort the transfer when the server stops */
}

/* POST one delivery: the HTTP status, or 0 for a transport error. */
static long post(struct srv_push *p, CURL *curl, srv_push_dlv *dlv, reply *rp)
{
    uint8_t body[PUSH_RECORD_SIZE];
    size_t bn = 0;
    size_t pl = strlen(dlv->payload);
    if (push_encrypt(dlv->p256dh, dlv->auth, (const uint8_t *)dlv->payload, pl, NULL, NULL, body,
                     sizeof body, &bn))
        return -1;
    char aud[PUSH_AUD_MAX + 1], jwt[PUSH_JWT_MAX];
    if (push_origin(dlv->endpoint, strlen(dlv->endpoint), aud, sizeof aud)) return -1;
    uint64_t exp = (uint64_t)time(NULL) + SRV_PUSH_JWT_TTL_S;
    if (push_vapid_jwt(p->key, aud, exp, p->subject, jwt, sizeof jwt)) return -1;
    char h_auth[PUSH_JWT_MAX + 160], h_ttl[32], h_topic[40], h_urg[32];
    snprintf(h_auth, sizeof h_auth, "Authorization: vapid t=%s, k=%s", jwt, p->public_b64);
    snprintf(h_ttl, sizeof h_ttl, "TTL: %u", SRV_PUSH_TTL_S);
    /* Topic: the push service replaces an undelivered message of the same
     * topic, so one room collapses to its latest notification. */
    snprintf(h_topic, sizeof h_topic, "Topic: r%016llx",
             (unsigned long long)srv_push__hash(dlv->room, strlen(dlv->room)));
    snprintf(h_urg, sizeof h_urg, "Urgency: %s", dlv->mention ? "high" : "normal");
    struct curl_slist *hl = NULL, *t;
    const char *hs[] = {h_auth,
                        h_ttl,
                        h_topic,
                        h_urg,
                        "Content-Encoding: aes128gcm",
                        "Content-Type: application/octet-stream",
                        "Expect:"};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        t = curl_slist_append(hl, hs[i]);
        if (!t) {
            curl_slist_free_all(hl);
            return -1;
        }
        hl = t;
    }
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, dlv->endpoint);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)bn);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)SRV_PUSH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)SRV_PUSH_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, rp);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, p);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    return status;
}

static void dlv_unlink(struct srv_push *p, srv_push_dlv *dlv)
{
    for (srv_push_dlv **pp = &p->dlv; *pp; pp = &(*pp)->next)
        if (*pp == dlv) {
            *pp = dlv->next;
            p->ndlv--;
            return;
        }
}

static void dlv_free(srv_push_dlv *d)
{
    free(d->payload);
    free(d);
}

static void send_one(struct srv_push *p, CURL *curl, srv_push_dlv *dlv, srv_push_counters *d)
{
    reply rp = {0};
    long st = post(p, curl, dlv, &rp);
    dlv->attempts++;
    if (st >= 200 && st < 300) {
        d->sent++;
    } else if (st == 404 || st == 410) {
        /* The subscription is gone: forget it (and what is queued for it). */
        tdm_err e =
            store_push_del(p->st, dlv->user, dlv->user_len, dlv->endpoint, strlen(dlv->endpoint));
        if (!e) d->removed++;
        for (srv_push_dlv *o = p->dlv, *next; o; o = next) {
            next = o->next;
            if (o != dlv && strcmp(o->endpoint, dlv->endpoint) == 0) {
                dlv_unlink(p, o);
                dlv_free(o);
                d->failed++;
            }
        }
    } else if (st == 0 || st == 429 || st >= 500) {
        uint64_t delay = p->backoff_ms;
        for (unsigned i = 1; i < dlv->attempts && delay < SRV_PUSH_BACKOFF_MAX; i++) delay *= 2;
        if (delay > SRV_PUSH_BACKOFF_MAX) delay = SRV_PUSH_BACKOFF_MAX;
        bool give_up = dlv->attempts >= p->attempts;
        if (rp.has_retry_after) {
            if (rp.retry_after_ms > SRV_PUSH_BACKOFF_MAX)
                give_up = true;
            else if (rp.retry_after_ms > delay)
                delay = rp.retry_after_ms;
        }
        if (!give_up && !stopping(p)) {
            dlv->due_ms = mono_ms() + delay;
            d->retried++;
            return; /* stays queued */
        }
        d->failed++;
    } else {
        d->failed++; /* 400, 401, 403, 413 ... or a local failure (-1): not retried */
    }
    dlv_unlink(p, dlv);
    dlv_free(dlv);
}

static srv_push_dlv *earliest(struct srv_push *p)
{
    srv_push_dlv *best = NULL;
    for (srv_push_dlv *d = p->dlv; d; d = d->next)
        if (!best || d->due_ms < best->due_ms) best = d;
    return best;
}

void *srv_push__worker(void *arg)
{
    struct srv_push *p = arg;
    CURL *curl = curl_easy_init();
    srv_push_counters d;
    memset(&d, 0, sizeof d);
    uint64_t seq = 0;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (p->events) {
            srv_push_ev *ev = p->events;
            p->events = ev->next;
            if (!p->events) p->events_tail = NULL;
            p->nevents--;
            pthread_mutex_unlock(&p->mu);
            handle_event(p, ev, ++seq, &d);
            srv_push__ev_free(ev);
            flush(p, &d);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        uint64_t now = mono_ms(), fdue = flush_due(p);
        if (fdue <= now) {
            pthread_mutex_unlock(&p->mu);
            flush_held(p, now, &d);
            flush(p, &d);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        srv_push_dlv *next = earliest(p);
        if (next && next->due_ms <= now && curl) {
            pthread_mutex_unlock(&p->mu);
            send_one(p, curl, next, &d);
            flush(p, &d);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        uint64_t due = next && curl ? next->due_ms : UINT64_MAX;
        if (fdue < due) due = fdue;
        if (due != UINT64_MAX) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t wait = due - now;
            ts.tv_sec += (time_t)(wait / 1000u);
            ts.tv_nsec += (long)(wait % 1000u) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        } else {
            pthread_cond_wait(&p->cv, &p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (p->dlv) {
        srv_push_dlv *o = p->dlv;
        p->dlv = o->next;
        dlv_free(o);
    }
    p->ndlv = 0;
    for (size_t i = 0; i < p->nquota; i++) free(p->quota[i].why);
    free(p->quota);
    p->quota = NULL;
    if (curl) curl_easy_cleanup(curl);
    return NULL;
}
