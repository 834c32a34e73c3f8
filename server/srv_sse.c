/* srv_sse.c - Server-Sent Events on protocols[0]:
 *   GET /api/stream/stats[?interval_ms=N&lifetime_ms=N]
 * sends `connected`, then a `stats-update` event every interval (default
 * SRV_SSE_INTERVAL_MS). Every event carries an `id:`; the numbering
 * continues after the request's Last-Event-ID header (or ?lastEventId=).
 *
 *   GET /api/rooms/{id}/events[?after=N&lifetime_ms=N]
 * (read access to the room, srv_access_http) sends `connected`, then the
 * room's `presence` and `typing` snapshot (who is present and typing now),
 * then its live `chat`, `presence` and `typing` events (srv_room_events.c). A chat
 * event's id is the chat record id; other events carry the synthetic id
 * "C.S" (C: the last chat id this stream delivered, or its starting point;
 * S: a per-stream counter). Last-Event-ID (either form; the part before '.')
 * or ?after=N first replays the stored chat after that id from storage, a
 * page at a time as the queue drains, then goes live: live chat the replay
 * already sent is skipped, and a chat event that does not fit the queue
 * sends the stream back to storage, so no chat is lost or repeated.
 * Presence and typing events are dropped when the queue is full. Streams
 * are keyed by room name and need no loaded room: events flow while some
 * session has the room loaded, and a watcher never keeps a room in memory.
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
#include "auth.h"
#include "srv_push.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#include "utf8.h"

#define SRV_SSE_INTERVAL_MIN 250u   /* the tick period: nothing finer is possible */
#define SRV_SSE_INTERVAL_CAP 60000u /* longest ?interval_ms= */
#define SRV_SSE_LIFETIME_MIN 1000u  /* shortest ?lifetime_ms= */
#define SRV_SSE_RETRY_MS     2000u  /* `retry:` sent to EventSource clients */
#define SRV_SSE_ID_MAX       (((uint64_t)1 << 53) - 1)
#define SRV_RATE_WINDOW_MS   1000u
#define SRV_REPLAY_PAGE      64u /* stored chat records read per replay step */

typedef struct srv_sse {
    srv *s;
    struct lws *wsi;
    srv_http_req *q;
    uint64_t next_id;        /* id of the next event */
    uint64_t end_ms, due_ms; /* lifetime end; next stats-update */
    unsigned interval_ms;
    bool ending; /* send what is queued, then close */
    bool dead;   /* the peer went away; the kill is scheduled */
    /* per-room streams (room[0] != 0) */
    char room[SYNCM_MAX_NAME + 1];
    uint64_t chat_last; /* last chat id delivered (or the starting point) */
    bool replaying;     /* stored chat after chat_last is still to be read */
    size_t len;         /* queued bytes at buf + LWS_PRE */
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

/* lws_get_urlarg_by_name copies each argument into the caller's buffer and
 * gives up at the first one that does not fit, so the buffer must hold the
 * longest argument that can come before ours (a ?token=). */
#define SRV_SSE_ARG_BUF 8192

/* The value of query argument `name` ("name=") copied to buf, or NULL. */
static char *query_value(struct lws *wsi, const char *name, char *buf, size_t cap)
{
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) return NULL;
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, (int)cap);
    return v ? buf + (v - buf) : NULL;
}

/* A numeric query argument `name`: true with *out when present and valid. */
static bool query_arg(struct lws *wsi, const char *name, uint64_t *out)
{
    char buf[SRV_SSE_ARG_BUF];
    const char *v = query_value(wsi, name, buf, sizeof buf);
    return v && parse_u64(v, SRV_SSE_ID_MAX - 1, out);
}

/* A numeric query argument `name`, clamped to [lo, hi]; `def` when absent or bad. */
static uint64_t query_u64(struct lws *wsi, const char *name, uint64_t def, uint64_t lo, uint64_t hi)
{
    uint64_t x;
    if (!query_arg(wsi, name, &x)) return def;
    return x < lo ? lo : x > hi ? hi : x;
}

/* An event id "N" or, with synthetic, "N.S": true with *id = N. */
static bool parse_event_id(char *v, bool synthetic, uint64_t *id)
{
    char *dot = synthetic ? strchr(v, '.') : NULL;
    if (dot) {
        uint64_t seq;
        if (!parse_u64(dot + 1, UINT64_MAX / 10 - 1, &seq)) return false;
        *dot = '\0';
    }
    return parse_u64(v, SRV_SSE_ID_MAX - 1, id);
}

/* Last-Event-ID header (or ?lastEventId=): true with *id when present and
 * numeric (synthetic: "N.S" counts as N). */
static bool last_event_id(struct lws *wsi, bool synthetic, uint64_t *id)
{
    static const char name[] = "last-event-id:";
    char buf[64];
    int n = lws_hdr_custom_length(wsi, name, (int)(sizeof name - 1));
    if (n > 0 && n < (int)sizeof buf &&
        lws_hdr_custom_copy(wsi, buf, sizeof buf, name, (int)(sizeof name - 1)) > 0 &&
        parse_event_id(buf, synthetic, id))
        return true;
    char arg[SRV_SSE_ARG_BUF];
    char *v = query_value(wsi, "lastEventId=", arg, sizeof arg);
    return v && parse_event_id(v, synthetic, id);
}

/* Queue one event with id `id`; false when it does not fit (it is dropped). */
static bool queue_raw(srv_sse *e, const char *id, const char *event, const char *data)
{
    char *p = (char *)e->buf + LWS_PRE + e->len;
    size_t room = SRV_SSE_OUT_MAX - e->len;
    int n = snprintf(p, room, "id: %s\nevent: %s\ndata: %s\n\n", id, event, data);
    if (n < 0 || (size_t)n >= room) return false;
    e->len += (size_t)n;
    lws_callback_on_writable(e->wsi);
    return true;
}

/* Queue one event with the next id: numeric (stats) or "C.S" (rooms); false
 * when it does not fit (it is dropped, the id is not used). */
static bool queue_event(srv_sse *e, const char *event, const char *data)
{
    char id[48];
    if (e->room[0])
        snprintf(id, sizeof id, "%llu.%llu", (unsigned long long)e->chat_last,
                 (unsigned long long)e->next_id);
    else
        snprintf(id, sizeof id, "%llu", (unsigned long long)e->next_id);
    if (!queue_raw(e, id, event, data)) return false;
    e->next_id++;
    return true;
}

/* Queue chat record `id`; false when it does not fit. */
static bool queue_chat(srv_sse *e, uint64_t id, const char *data)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    if (!queue_raw(e, ids, "chat", data)) return false;
    e->chat_last = id;
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
    srv_push_counters pc; /* Web Push delivery (srv_push.h) */
    srv_push_counters_get(s, &pc);
    char data[768];
    snprintf(data, sizeof data,
             "{\"connections\":%zu,\"rooms\":%llu,\"sessions\":%llu,\"sse_streams\":%zu,"
             "\"updates_per_s\":%.1f,\"messages_per_s\":%.1f,\"bytes_per_s\":%.1f,"
             "\"memory\":%llu,\"time_ms\":%llu,\"push\":{\"sent\":%llu,\"failed\":%llu,"
             "\"retried\":%llu,\"removed\":%llu,\"capped\":%llu,\"queued\":%llu}}",
             s->nconns, (unsigned long long)st.rooms, (unsigned long long)st.sessions, s->nsse,
             s->rates.updates_per_s, s->rates.messages_per_s, s->rates.bytes_per_s,
             (unsigned long long)srv_rss_bytes(), (unsigned long long)now,
             (unsigned long long)pc.sent, (unsigned long long)pc.failed,
             (unsigned long long)pc.retried, (unsigned long long)pc.removed,
             (unsigned long long)pc.capped, (unsigned long long)pc.queued);
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

/* ---- per-room streams ---------------------------------------------------------- */

typedef struct replay_ctx {
    srv_sse *e;
    size_t n;
    bool full;
} replay_ctx;

static int replay_one(void *ctx, const store_chat_msg *m)
{
    replay_ctx *c = ctx;
    sync_chat_rec rec;
    srv_host_chat_rec(m, &rec);
    char *data = srv_room_chat_json(&rec);
    bool ok = data && queue_chat(c->e, rec.id, data);
    free(data);
    if (!ok) {
        c->full = true; /* retried from chat_last once the queue drained */
        return 1;
    }
    c->n++;
    return 0;
}

/* Queue stored chat after e->chat_last until the queue is full or the
 * stored records run out (then the stream is live). A storage error ends
 * the stream (the client reconnects with its Last-Event-ID). */
static void replay(srv_sse *e)
{
    while (e->replaying && !e->ending) {
        replay_ctx c = {e, 0, false};
        tdm_err err = store_chat_range(e->s->st, e->room, strlen(e->room), e->chat_last,
                                       SRV_REPLAY_PAGE, replay_one, &c);
        if (err == TDM_ENOTFOUND) err = TDM_OK; /* not stored (yet): nothing to replay */
        if (err) {
            lwsl_warn("tandem: chat replay of '%s': %s\n", e->room, tdm_strerror(err));
            e->ending = true;
            lws_callback_on_writable(e->wsi);
            return;
        }
        if (c.full) return;
        if (c.n < SRV_REPLAY_PAGE) e->replaying = false;
    }
}

/* "/api/rooms/{id}/events": 1 with the name in room[], -1 a malformed name,
 * 0 another path. */
static int room_events_path(const char *path, char room[SYNCM_MAX_NAME + 1])
{
    static const char pre[] = "/api/rooms/", suf[] = "/events";
    size_t n = strlen(path), np = sizeof pre - 1, ns = sizeof suf - 1;
    if (n < np + ns || strncmp(path, pre, np) != 0 || strcmp(path + n - ns, suf) != 0) return 0;
    size_t len = n - np - ns;
    if (len == 0 || len > SYNCM_MAX_NAME ||
        !utf8_validate((const uint8_t *)path + np, len, NULL, NULL))
        return -1;
    memcpy(room, path + np, len);
    room[len] = '\0';
    return 1;
}

/* May this request watch `room`? 0 (*last_chat: the last stored chat id;
 * *exp_ms: when the token expires, 0 never), or 1 with the answer in *err,
 * -1 no memory. */
static int room_check(srv *s, struct lws *wsi, const char *room, uint64_t *last_chat,
                      uint64_t *exp_ms, srv_resp *err)
{
    srv_auth_claims c; /* srv_access_http's rule, keeping the claims for exp */
    bool anon;
    unsigned deny = srv_access_http_claims(s, wsi, &c, &anon);
    if (!deny && !anon && srv_auth_access(&c, room, strlen(room)) < SRV_AUTH_READ) deny = 403;
    *exp_ms = !deny && !anon && c.exp > 0 ? (uint64_t)c.exp * 1000u : 0;
    if (deny)
        return srv_resp_error(err, deny, deny == 401 ? "unauthorized" : "forbidden",
                              deny == 401 ? "a valid token is required"
                                          : "the token gives no read access to this room")
                   ? -1
                   : 1;
    store_doc_meta meta;
    tdm_err e = store_doc_info(s->st, room, strlen(room), &meta);
    *last_chat = e == TDM_OK && meta.chat_next_id ? meta.chat_next_id - 1 : 0;
    if (e == TDM_ENOTFOUND && !sync_server_room_doc(s->sync, room))
        return srv_resp_error(err, 404, "not_found", "no such room") ? -1 : 1;
    if (e && e != TDM_ENOTFOUND)
        return srv_resp_error(err, 500, "internal", tdm_strerror(e)) ? -1 : 1;
    return 0;
}

/* srv_room_snapshot's emit: one event on the new stream e (dropped when full). */
static void snapshot_emit(void *arg, const char *event, const char *data)
{
    queue_event(arg, event, data);
}

/* ---- routing ------------------------------------------------------------------------ */

int srv_sse_route(srv *s, struct lws *wsi, srv_http_req *q, const char *path, srv_resp *err)
{
    char room[SYNCM_MAX_NAME + 1] = "";
    int rp = 0;
    if (strcmp(path, "/api/stream/stats") != 0 && (rp = room_events_path(path, room)) == 0)
        return 0;
    if (rp < 0)
        return srv_resp_error(err, 400, "bad_request", "a room name is 1 to 255 bytes of UTF-8")
                   ? -1
                   : 1;
    uint64_t stored_last = 0, exp_ms = 0;
    if (rp > 0) {
        int c = room_check(s, wsi, room, &stored_last, &exp_ms, err);
        if (c) return c;
    }
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
    memcpy(e->room, room, sizeof room);
    bool resume = last_event_id(wsi, rp > 0, &last);
    if (rp > 0) {
        /* rooms: ids of non-chat events count from 1 on every stream */
        e->next_id = 1;
        if (!resume) resume = query_arg(wsi, "after=", &last);
        /* an id past the last stored one (the store was replaced) would make
         * every new chat look already sent: start after the last stored one */
        e->chat_last = resume && last < stored_last ? last : stored_last;
        e->replaying = resume;
    } else {
        e->next_id = resume ? last + 1 : 1;
        e->interval_ms = (unsigned)query_u64(wsi, "interval_ms=", SRV_SSE_INTERVAL_MS,
                                             SRV_SSE_INTERVAL_MIN, SRV_SSE_INTERVAL_CAP);
    }
    uint64_t life = query_u64(wsi, "lifetime_ms=", SRV_SSE_LIFETIME_MS, SRV_SSE_LIFETIME_MIN,
                              SRV_SSE_LIFETIME_MS);
    /* a room stream does not outlive its token: EventSource reconnects with
     * Last-Event-ID and whatever token the page has by then */
    if (exp_ms) {
        uint64_t left = exp_ms > now ? exp_ms - now : 0;
        if (left < life) life = left > SRV_SSE_LIFETIME_MIN ? left : SRV_SSE_LIFETIME_MIN;
    }
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
    if (rp > 0) s->nroom_sse++;
    s->n.sse_opened++;
    int n = snprintf((char *)e->buf + LWS_PRE, SRV_SSE_OUT_MAX, "retry: %u\n\n", SRV_SSE_RETRY_MS);
    e->len = (size_t)n;
    if (rp > 0) {
        json_t *o = json_pack("{s:o, s:I, s:b, s:I, s:I}", "room", srv_json_str(room, strlen(room)),
                              "after", (json_int_t)e->chat_last, "replay", e->replaying,
                              "lifetime_ms", (json_int_t)life, "time_ms", (json_int_t)now);
        char *data = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        queue_event(e, "connected", data ? data : "{}");
        free(data);
        srv_room_snapshot(s, room, snapshot_emit, e); /* who is present and typing now */
        replay(e);
    } else {
        char data[160];
        snprintf(data, sizeof data, "{\"interval_ms\":%u,\"lifetime_ms\":%llu,\"time_ms\":%llu}",
                 e->interval_ms, (unsigned long long)life, (unsigned long long)now);
        queue_event(e, "connected", data);
    }
    return 2;
}

bool srv_sse_room_watched(const srv *s, const char *name)
{
    if (!s->nroom_sse) return false;
    for (const srv_sse *e = s->sse; e; e = e->next)
        if (e->room[0] && strcmp(e->room, name) == 0) return true;
    return false;
}

void srv_sse_room_push(srv *s, const char *name, const char *event, const char *data,
                       uint64_t chat_id)
{
    for (srv_sse *e = s->sse; e; e = e->next) {
        if (!e->room[0] || e->dead || e->ending || strcmp(e->room, name) != 0) continue;
        if (!chat_id) {
            queue_event(e, event, data); /* dropped when full */
            continue;
        }
        if (e->replaying || chat_id <= e->chat_last) continue; /* storage has it / sent */
        if (!data || !queue_chat(e, chat_id, data)) {
            /* read it (and what follows) from storage once the queue drained */
            e->replaying = true;
            lws_callback_on_writable(e->wsi);
        }
    }
}

int srv_sse_writeable(srv *s, struct lws *wsi, srv_http_req *q)
{
    (void)s;
    srv_sse *e = q->sse;
    if (!e || e->dead) return e ? -1 : 0;
    if (!e->len && e->replaying) replay(e);
    if (e->len) {
        int w = lws_write(wsi, e->buf + LWS_PRE, e->len, LWS_WRITE_HTTP);
        if (w < 0) return -1;
        e->len = 0; /* lws keeps what the socket did not take */
        if (e->ending || e->replaying) {
            lws_callback_on_writable(wsi); /* close / read more on the next round */
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
    if (e->room[0]) s->nroom_sse--;
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

/* The 4.1.6 workaround: a stream whose peer is gone is killed (lws would
 * spin on its socket forever). True when e was reaped. */
static bool reap_if_gone(srv *s, srv_sse *e)
{
    if (!peer_gone(e->wsi)) return false;
    e->dead = true;
    s->n.sse_reaped++;
    lws_set_timeout(e->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    return true;
}

void srv_sse_tick(srv *s, uint64_t now)
{
    sample_rates(s, now);
    for (srv_sse *e = s->sse; e; e = e->next) {
        if (e->dead) continue;
        if (reap_if_gone(s, e)) continue;
        if (e->ending) continue;
        if (now >= e->end_ms) {
            e->ending = true;
            s->n.sse_expired++;
            lws_callback_on_writable(e->wsi);
        } else if (!e->room[0] && now >= e->due_ms) {
            e->due_ms = now + e->interval_ms;
            queue_stats(e, now);
        }
    }
}

void srv_sse_close_all(srv *s)
{
    for (srv_sse *e = s->sse; e; e = e->next) {
        if (e->dead) continue;
        if (reap_if_gone(s, e)) continue;
        if (!e->ending) {
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
    s->nroom_sse = 0;
}
