/* srv_sse.c - Server-Sent Events on protocols[0]:
 *   GET /api/stream/stats[?interval_ms=N&lifetime_ms=N]
 * sends `connected`, then a `stats-update` event every interval (default
 * SRV_SSE_INTERVAL_MS). Every event carries an `id:`; the numbering
 * continues after the request's Last-Event-ID header (or ?lastEventId=).
 *
 * libwebsockets 4.1.6 never notices an http/1 SSE client that went away: it
 * polls the dead socket in a tight loop and never delivers CLOSED_HTTP
 * (upstream #2455, docs/SERVER.md). srv_sse_tick, from the 250 ms server
 * tick, peeks each stream's socket with recv(MSG_PEEK | MSG_DONTWAIT); end of
 * file or a hard error kills the connection with
 * lws_set_timeout(PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC). Streams are
 * also capped (SRV_SSE_MAX, 503 past it) and ended after SRV_SSE_LIFETIME_MS
 * (an EventSource reconnects with Last-Event-ID).
 *
 * Each stream queues its event text in one buffer (LWS_PRE headroom); the
 * WRITEABLE callback sends all of it with one lws_write. Service thread only. */
#define _XOPEN_SOURCE 700
#include "srv_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SRV_SSE_INTERVAL_MIN 250u   /* the tick period: nothing finer is possible */
#define SRV_SSE_INTERVAL_CAP 60000u /* longest ?interval_ms= */
#define SRV_SSE_LIFETIME_MIN 1000u  /* shortest ?lifetime_ms= */
#define SRV_SSE_RETRY_MS     2000u  /* `retry:` sent to EventSource clients */
#define SRV_SSE_ID_MAX       (((uint64_t)1 << 53) - 1)
#define SRV_RATE_WINDOW_MS   1000u

typedef struct srv_sse {
    srv *s;
    struct lws *wsi;
    srv_http_req *q;
    uint64_t next_id;        /* id of the next event */
    uint64_t end_ms, due_ms; /* lifetime end; next stats-update */
    unsigned interval_ms;
    bool ending; /* send what is queued, then close */
    bool dead;   /* the peer went away; the kill is scheduled */
    size_t len;  /* queued bytes at buf + LWS_PRE */
    uint8_t buf[LWS_PRE + SRV_SSE_OUT_MAX];
    struct srv_sse *prev, *next;
} srv_sse;

static bool parse_u64(const char *v, uint64_t max, uint64_t *out)
{
    while (*v == ' ' || *v == '\t') v++;
    if (!*v) return false;
    uint64_t x = 0;
    for (; *v && *v != ' ' && *v != '\t'; v++) {
        if (*v < '0' || *v > '9') return false;
        x = x * 10 + (uint64_t)(*v - '0');
        if (x > max) return false;
    }
    *out = x;
    return true;
}

/* A numeric query argument `name` ("name="), clamped to [lo, hi]; `def` when absent or bad. */
static uint64_t query_u64(struct lws *wsi, const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    char buf[64];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) return def;
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, sizeof buf);
    uint64_t x;
    if (!v || !parse_u64(v, SRV_SSE_ID_MAX, &x)) return def;
    return x < lo ? lo : x > hi ? hi : x;
}

/* Last-Event-ID header (or ?lastEventId=): true with *id when present and numeric. */
static bool last_event_id(struct lws *wsi, uint64_t *id)
{
    static const char name[] = "last-event-id:";
    char buf[64];
    int n = lws_hdr_custom_length(wsi, name, (int)(sizeof name - 1));
    if (n > 0 && n < (int)sizeof buf &&
        lws_hdr_custom_copy(wsi, buf, sizeof buf, name, (int)(sizeof name - 1)) > 0 &&
        parse_u64(buf, SRV_SSE_ID_MAX - 1, id))
        return true;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) return false;
    const char *v = lws_get_urlarg_by_name(wsi, "lastEventId=", buf, sizeof buf);
    return v && parse_u64(v, SRV_SSE_ID_MAX - 1, id);
}

/* Queue one event; false when it does not fit (it is dropped, the id is not used). */
static bool queue_event(srv_sse *e, const char *event, const char *data)
{
    char *p = (char *)e->buf + LWS_PRE + e->len;
    size_t room = SRV_SSE_OUT_MAX - e->len;
    int n = snprintf(p, room, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e->next_id,
                     event, data);
    if (n < 0 || (size_t)n >= room) return false;
    e->len += (size_t)n;
    e->next_id++;
    lws_callback_on_writable(e->wsi);
    return true;
}

static void sample_rates(srv *s, uint64_t now)
{
    srv_rates *r = &s->rates;
    uint64_t upd = s->n.updates_persisted, msg = s->n.frames_in + s->n.frames_out,
             byt = s->n.bytes_in + s->n.bytes_out;
    if (r->at_ms && now - r->at_ms < SRV_RATE_WINDOW_MS) return;
    if (r->at_ms) {
        double dt = (double)(now - r->at_ms) / 1000.0;
        r->updates_per_s = (double)(upd - r->updates) / dt;
        r->messages_per_s = (double)(msg - r->messages) / dt;
        r->bytes_per_s = (double)(byt - r->bytes) / dt;
    }
    r->at_ms = now;
    r->updates = upd;
    r->messages = msg;
    r->bytes = byt;
}

static void queue_stats(srv_sse *e, uint64_t now)
{
    srv *s = e->s;
    sync_server_stats st;
    sync_server_get_stats(s->sync, &st);
    char data[512];
    snprintf(data, sizeof data,
             "{\"connections\":%zu,\"rooms\":%llu,\"sessions\":%llu,\"sse_streams\":%zu,"
             "\"updates_per_s\":%.1f,\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f,"
             "\"memory\":%llu,\"time_ms\":%llu}",
             s->nconns, (unsigned long long)st.rooms, (unsigned long long)st.sessions, s->nsse,
             s->rates.updates_per_s, s->rates.messages_per_s, s->rates.bytes_per_s,
             (unsigned long long)srv_rss_bytes(), (unsigned long long)now);
    queue_event(e, "stats-update", data);
}

static int send_sse_headers(struct lws *wsi)
{
    uint8_t hdr[LWS_PRE + 1024];
    uint8_t *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
    if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
                                    LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end))
        return -1;
    static const struct {
        const char *name, *value;
    } extra[] = {{"cache-control:", "no-store"},
                 {"x-content-type-options:", "nosniff"},
                 {"x-accel-buffering:", "no"}};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)extra[i].name,
                                        (const unsigned char *)extra[i].value,
                                        (int)strlen(extra[i].value), &p, end))
            return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

int srv_sse_route(srv *s, struct lws *wsi, srv_http_req *q, const char *path, srv_resp *err)
{
    if (strcmp(path, "/api/stream/stats") != 0) return 0;
    if (s->stopping || s->nsse >= SRV_SSE_MAX) {
        s->n.sse_refused++;
        return srv_resp_error(err, 503, "unavailable", "too many event streams; retry later") ? -1
                                                                                              : 1;
    }
    srv_sse *e = malloc(sizeof *e);
    if (!e) return srv_resp_error(err, 500, "internal", "out of memory") ? -1 : 1;
    memset(e, 0, offsetof(srv_sse, buf));
    e->prev = e->next = NULL;
    uint64_t now = srv_now_ms(), last = 0;
    e->s = s;
    e->wsi = wsi;
    e->q = q;
    e->next_id = last_event_id(wsi, &last) ? last + 1 : 1;
    e->interval_ms = (unsigned)query_u64(wsi, "interval_ms=", SRV_SSE_INTERVAL_MS,
                                         SRV_SSE_INTERVAL_MIN, SRV_SSE_INTERVAL_CAP);
    uint64_t life = query_u64(wsi, "lifetime_ms=", SRV_SSE_LIFETIME_MS, SRV_SSE_LIFETIME_MIN,
                              SRV_SSE_LIFETIME_MS);
    e->end_ms = now + life;
    e->due_ms = now + e->interval_ms;
    /* Headers go out now; the headers storage is released by lws_http_mark_sse. */
    if (send_sse_headers(wsi)) {
        free(e);
        return -1;
    }
    lws_http_mark_sse(wsi);
    q->sse = e;
    e->next = s->sse;
    if (s->sse) s->sse->prev = e;
    s->sse = e;
    s->nsse++;
    s->n.sse_opened++;
    int n = snprintf((char *)e->buf + LWS_PRE, SRV_SSE_OUT_MAX, "retry: %u\n\n", SRV_SSE_RETRY_MS);
    e->len = (size_t)n;
    char data[160];
    snprintf(data, sizeof data, "{\"interval_ms\":%u,\"lifetime_ms\":%llu,\"time_ms\":%llu}",
             e->interval_ms, (unsigned long long)life, (unsigned long long)now);
    queue_event(e, "connected", data);
    return 2;
}

int srv_sse_writeable(srv *s, struct lws *wsi, srv_http_req *q)
{
    (void)s;
    srv_sse *e = q->sse;
    if (!e || e->dead) return e ? -1 : 0;
    if (e->len) {
        int w = lws_write(wsi, e->buf + LWS_PRE, e->len, LWS_WRITE_HTTP);
        if (w < 0) return -1;
        e->len = 0; /* lws keeps what the socket did not take */
        if (e->ending) {
            lws_callback_on_writable(wsi); /* close on the next round */
            return 0;
        }
    }
    return e->ending ? -1 : 0;
}

void srv_sse_closed(srv *s, srv_http_req *q)
{
    srv_sse *e = q ? q->sse : NULL;
    if (!e) return;
    q->sse = NULL;
    if (e->prev)
        e->prev->next = e->next;
    else
        s->sse = e->next;
    if (e->next) e->next->prev = e->prev;
    s->nsse--;
    s->n.sse_closed++;
    free(e);
}

/* Has the peer closed (or broken) the connection? Data waiting is not a close. */
static bool peer_gone(struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0) return true;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return false;
    if (n == 0) return true;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void srv_sse_tick(srv *s, uint64_t now)
{
    sample_rates(s, now);
    for (srv_sse *e = s->sse; e; e = e->next) {
        if (e->dead) continue;
        if (peer_gone(e->wsi)) {
            /* The 4.1.6 workaround: lws would spin on this socket forever. */
            e->dead = true;
            s->n.sse_reaped++;
            lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (e->ending) continue;
        if (now >= e->end_ms) {
            e->ending = true;
            s->n.sse_expired++;
            lws_callback_on_writable(e->wsi);
        } else if (now >= e->due_ms) {
            e->due_ms = now + e->interval_ms;
            queue_stats(e, now);
        }
    }
}

void srv_sse_close_all(srv *s)
{
    for (srv_sse *e = s->sse; e; e = e->next) {
        if (e->dead) continue;
        if (peer_gone(e->wsi)) {
            e->dead = true;
            s->n.sse_reaped++;
            lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (!e->ending) {
            e->ending = true;
            lws_callback_on_writable(e->wsi);
        }
    }
}

void srv_sse_free_all(srv *s)
{
    while (s->sse) {
        srv_sse *e = s->sse;
        s->sse = e->next;
        if (e->q) e->q->sse = NULL;
        free(e);
    }
    s->nsse = 0;
}
