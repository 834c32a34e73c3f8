/* srv_redis.c - several nodes through Redis (srv_redis.h, docs/SCALING.md).
 *
 * Wire form of one pub/sub message on "tandem:room:<name>":
 *   'T' type origin(8, big-endian) body
 *   'U' update bytes            'A' awareness bytes
 *   'Y' on(1) ulen(1) user dlen(1) display
 *   'S' flags(1) chat_last(8) state-vector bytes   (flags 1: the room opens)
 *   'Q' after(8)                (chat records with id > after, please)
 *   'C' id(8) time(8) client(8) msg(8) ulen(2) dlen(2) tlen(4) user display text
 * Every message from Redis is untrusted: lengths are checked here and the
 * bytes go through sync/'s validating entry points.
 */
#define _POSIX_C_SOURCE 200809L
#include "srv_internal.h"
#include "srv_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define CHAN_PREFIX  "tandem:room:"
#define CHAT_KEY     "tandem:chat:"
#define HDR          10u
#define NBUCKETS     1024u
#define MAX_ROOMS    100000u
#define CHAT_BATCH   100u
#define PIPELINE_MAX 1024u /* PUBLISHes sent before their replies are read */

/* Lua: raise the chat counter to at least ARGV[1], then (ARGV[2] == "1")
 * take the next id. */
static const char FLOOR_INCR[] =
    "local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if c < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end "
    "if ARGV[2] == '1' then return redis.call('INCR', KEYS[1]) end return 0";

/* ------------------------------------------------------------ queues */

typedef enum item_kind {
    IT_PUBLISH = 1, /* out: PUBLISH room body */
    IT_CHAT,        /* out: allocate an id for the 'C' body, publish it; in: a 'C' to apply */
    IT_FLOOR,       /* out: raise the chat counter to `id` */
    IT_MSG,         /* in: a message from the channel of `room` */
    IT_CONNECTED,   /* in: the subscriber (re)connected */
    IT_OPENED,      /* in: room was loaded: announce it */
    IT_CHAT_FAIL,   /* in: chat `token` could not get an id */
    IT_CHAT_STORED  /* in: the store appended chat body (id, dup, err) */
} item_kind;

typedef struct item {
    struct item *next;
    item_kind kind;
    uint64_t token, id;
    bool dup, mine;
    tdm_err err;
    char room[SYNCM_MAX_NAME + 1];
    size_t n;
    uint8_t body[]; /* n bytes */
} item;

typedef struct queue {
    item *head, *tail;
    size_t bytes;
    uint64_t dropped;
} queue;

static void q_push(queue *q, item *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->bytes += it->n + sizeof *it;
}

static item *q_take_all(queue *q)
{
    item *h = q->head;
    q->head = q->tail = NULL;
    q->bytes = 0;
    return h;
}

static void q_free_list(item *it)
{
    while (it) {
        item *n = it->next;
        free(it);
        it = n;
    }
}

static item *item_new(item_kind k, const char *room, const uint8_t *p, size_t n)
{
    item *it = calloc(1, sizeof *it + n);
    if (!it) return NULL;
    it->kind = k;
    if (room) snprintf(it->room, sizeof it->room, "%s", room);
    it->n = n;
    if (n) memcpy(it->body, p, n);
    return it;
}

/* ------------------------------------------------------------ rooms */

typedef struct held {
    struct held *next;
    uint64_t id;
    item *it; /* the 'C' message */
} held;

typedef struct rroom {
    struct rroom *next;
    char name[SYNCM_MAX_NAME + 1];
    uint64_t next_id; /* the chat id this node stores next */
    held *held;       /* records past next_id, in id order */
    size_t nheld;
    uint64_t last_q_ms, last_s_ms, last_reply_ms;
    uint64_t gap_since_ms; /* when the oldest held record was held (0: none held) */
} rroom;

typedef struct srv_redis {
    srv *s;
    char host[256];
    int port;
    int db;                            /* SELECT db when > 0 */
    char user[SRV_REDIS_USER_MAX + 1]; /* AUTH user (empty: none) */
    char pass[SRV_REDIS_PASS_MAX + 1]; /* AUTH password (empty: no AUTH); never logged */
    uint64_t node;
    uint64_t ot_off; /* this node's OT version space starts here (see w_load_room) */
    sync_host orig;  /* the wrapped callbacks */
    pthread_t sub_th, pub_th;
    bool sub_started, pub_started;
    pthread_mutex_t mu; /* everything below up to `in` */
    pthread_cond_t cv;
    bool stop;
    queue out;
    int sub_fd; /* the subscriber's socket (-1), shut down to stop it */
    bool connected;
    queue in;
    /* service thread only */
    rroom *buckets[NBUCKETS];
    size_t nrooms;
    size_t nheld; /* chat records held past a gap, all rooms */
    uint64_t last_tick_ms;
    uint64_t relayed_in, relayed_out, chat_mismatch, chat_gaps, dropped_pub;
} srv_redis;

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static uint64_t now_ms(void)
{
    return srv_now_ms();
}

static void wake_service(srv *s)
{
    pthread_mutex_lock(&s->inbox.mu);
    struct lws_context *ctx = s->inbox.ctx;
    pthread_mutex_unlock(&s->inbox.mu);
    if (ctx) lws_cancel_service(ctx);
}

/* any thread: hand an item to the service thread */
static void push_in(srv_redis *r, item *it)
{
    if (!it) return;
    pthread_mutex_lock(&r->mu);
    if (r->in.bytes + it->n > SRV_REDIS_QUEUE_BYTES && it->kind == IT_MSG) {
        r->in.dropped++;
        free(it);
        it = NULL;
    } else {
        q_push(&r->in, it);
    }
    pthread_mutex_unlock(&r->mu);
    if (it) wake_service(r->s);
}

/* service thread: hand an item to the publisher; false when dropped */
static bool push_out(srv_redis *r, item *it)
{
    if (!it) return false;
    pthread_mutex_lock(&r->mu);
    bool ok = r->out.bytes + it->n <= SRV_REDIS_QUEUE_BYTES && !r->stop;
    if (ok)
        q_push(&r->out, it);
    else
        r->out.dropped++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (!ok) free(it);
    return ok;
}

static rroom *room_get(srv_redis *r, const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    rroom **b = &r->buckets[h % NBUCKETS];
    for (rroom *x = *b; x; x = x->next)
        if (strcmp(x->name, name) == 0) return x;
    if (r->nrooms >= MAX_ROOMS) return NULL;
    rroom *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    snprintf(x->name, sizeof x->name, "%s", name);
    store_doc_meta m;
    x->next_id = store_doc_info(r->s->st, name, strlen(name), &m) == TDM_OK ? m.chat_next_id : 1;
    x->next = *b;
    *b = x;
    r->nrooms++;
    return x;
}

/* ------------------------------------------------------------ encoding */

static item *msg_new(srv_redis *r, const char *room, char type, size_t body)
{
    item *it = item_new(IT_PUBLISH, room, NULL, 0);
    if (!it) return NULL;
    item *big = realloc(it, sizeof *it + HDR + body);
    if (!big) {
        free(it);
        return NULL;
    }
    big->n = HDR + body;
    big->body[0] = 'T';
    big->body[1] = (uint8_t)type;
    put64(big->body + 2, r->node);
    return big;
}

static void publish(srv_redis *r, const char *room, char type, const uint8_t *p, size_t n)
{
    if (n > SRV_REDIS_MSG_MAX - HDR) return;
    item *it = msg_new(r, room, type, n);
    if (!it) return;
    if (n) memcpy(it->body + HDR, p, n);
    if (push_out(r, it)) r->relayed_out++;
}

/* a 'C' body for rec with id (0: to be allocated) */
static item *chat_msg(srv_redis *r, const char *room, const sync_chat_rec *rec, uint64_t id)
{
    size_t n = 40 + rec->user_len + rec->display_len + rec->text_len;
    item *it = msg_new(r, room, 'C', n);
    if (!it) return NULL;
    uint8_t *p = it->body + HDR;
    put64(p, id);
    put64(p + 8, rec->time_ms);
    put64(p + 16, rec->client_id);
    put64(p + 24, rec->msg_id);
    p[32] = (uint8_t)(rec->user_len >> 8), p[33] = (uint8_t)rec->user_len;
    p[34] = (uint8_t)(rec->display_len >> 8), p[35] = (uint8_t)rec->display_len;
    p[36] = (uint8_t)(rec->text_len >> 24), p[37] = (uint8_t)(rec->text_len >> 16);
    p[38] = (uint8_t)(rec->text_len >> 8), p[39] = (uint8_t)rec->text_len;
    memcpy(p + 40, rec->user, rec->user_len);
    memcpy(p + 40 + rec->user_len, rec->display, rec->display_len);
    memcpy(p + 40 + rec->user_len + rec->display_len, rec->text, rec->text_len);
    return it;
}

/* decode a 'C' body (after the header); false when malformed */
static bool chat_parse(const uint8_t *p, size_t n, sync_chat_rec *rec)
{
    if (n < 40) return false;
    memset(rec, 0, sizeof *rec);
    rec->id = get64(p);
    rec->time_ms = get64(p + 8);
    rec->client_id = get64(p + 16);
    rec->msg_id = get64(p + 24);
    rec->user_len = (size_t)p[32] << 8 | p[33];
    rec->display_len = (size_t)p[34] << 8 | p[35];
    rec->text_len = (size_t)p[36] << 24 | (size_t)p[37] << 16 | (size_t)p[38] << 8 | p[39];
    if (rec->user_len == 0 || rec->user_len > STORE_CHAT_USER_MAX ||
        rec->display_len > STORE_CHAT_NAME_MAX || rec->text_len > STORE_CHAT_TEXT_MAX ||
        40 + rec->user_len + rec->display_len + rec->text_len != n)
        return false;
    rec->user = p + 40;
    rec->display = rec->user + rec->user_len;
    rec->text = rec->display + rec->display_len;
    return true;
}

/* ------------------------------------------------------------ threads */

static void sleep_backoff(srv_redis *r, unsigned *ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += *ms / 1000;
    ts.tv_nsec += (long)(*ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&r->mu);
    if (!r->stop) pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    pthread_mutex_unlock(&r->mu);
    *ms = *ms * 2 > 2000 ? 2000 : *ms * 2;
}

static bool stopping(srv_redis *r)
{
    pthread_mutex_lock(&r->mu);
    bool s = r->stop;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* copy msg to out with every occurrence of the password replaced by "***" */
static void scrub(const srv_redis *r, const char *msg, char *out, size_t cap)
{
    size_t pl = strlen(r->pass), o = 0;
    for (const char *p = msg; *p && o + 4 < cap;) {
        if (pl && strncmp(p, r->pass, pl) == 0) {
            memcpy(out + o, "***", 3);
            o += 3;
            p += pl;
        } else {
            out[o++] = *p == '\n' || *p == '\r' ? ' ' : *p;
            p++;
        }
    }
    out[o] = '\0';
}

typedef enum login_res { LOGIN_OK, LOGIN_IO, LOGIN_REFUSED } login_res;

/* one command of the login; LOGIN_REFUSED with the (scrubbed) error in why */
static login_res login_step(srv_redis *r, redisReply *rep, redisContext *c, const char *what,
                            char *why, size_t cap)
{
    if (!rep) {
        snprintf(why, cap, "%s: %s", what, c->errstr[0] ? c->errstr : "connection lost");
        return LOGIN_IO;
    }
    login_res res = LOGIN_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        char msg[256];
        scrub(r, rep->str ? rep->str : "error", msg, sizeof msg);
        snprintf(why, cap, "%s refused: %s", what, msg);
        res = LOGIN_REFUSED;
    }
    freeReplyObject(rep);
    return res;
}

/* AUTH (when a password is set), SELECT (db > 0) and a PING that tells a
 * server wanting a password we did not give (NOAUTH) */
static login_res login(srv_redis *r, redisContext *c, char *why, size_t cap)
{
    login_res res = LOGIN_OK;
    if (r->pass[0]) {
        redisReply *rep = r->user[0] ? redisCommand(c, "AUTH %b %b", r->user, strlen(r->user),
                                                    r->pass, strlen(r->pass))
                                     : redisCommand(c, "AUTH %b", r->pass, strlen(r->pass));
        res = login_step(r, rep, c, "AUTH", why, cap);
    }
    if (res == LOGIN_OK && r->db > 0)
        res = login_step(r, redisCommand(c, "SELECT %d", r->db), c, "SELECT", why, cap);
    if (res == LOGIN_OK) res = login_step(r, redisCommand(c, "PING"), c, "PING", why, cap);
    return res;
}

/* connect and log in; NULL when Redis is away or refused the login (*res
 * says which, why the reason) */
static redisContext *connect_login(srv_redis *r, login_res *res, char *why, size_t cap)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    *res = LOGIN_IO;
    if (!c || c->err) {
        snprintf(why, cap, "connect: %s", c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, (struct timeval){5, 0});
    /* TCP keepalive: a subscriber blocked in a read notices a Redis
     * host that vanished without closing the connection */
    redisEnableKeepAlive(c);
    *res = login(r, c, why, cap);
    if (*res != LOGIN_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* a thread's connection attempt: log a refused login once per distinct
 * reason (retried with backoff like any other failure) */
static redisContext *connect_to(srv_redis *r, const char *who, char *last, size_t cap)
{
    login_res res;
    char why[320];
    redisContext *c = connect_login(r, &res, why, sizeof why);
    if (c) {
        last[0] = '\0';
    } else if (res == LOGIN_REFUSED && strcmp(last, why) != 0) {
        lwsl_err("tandem: redis %s at %s:%d: %s; retrying\n", who, r->host, r->port, why);
        snprintf(last, cap, "%s", why);
    }
    return c;
}

static void sub_message(srv_redis *r, redisReply *rep)
{
    /* pmessage pattern channel payload */
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) return;
    redisReply *ch = rep->element[2], *pl = rep->element[3];
    if (ch->type != REDIS_REPLY_STRING || pl->type != REDIS_REPLY_STRING) return;
    size_t pre = sizeof CHAN_PREFIX - 1;
    if (ch->len <= pre || ch->len - pre > SYNCM_MAX_NAME || memcmp(ch->str, CHAN_PREFIX, pre))
        return;
    if (pl->len < HDR || pl->len > SRV_REDIS_MSG_MAX || pl->str[0] != 'T') return;
    if (get64((const uint8_t *)pl->str + 2) == r->node) return; /* our own */
    char room[SYNCM_MAX_NAME + 1];
    memcpy(room, ch->str + pre, ch->len - pre);
    room[ch->len - pre] = '\0';
    if (strlen(room) != ch->len - pre) return; /* a NUL inside */
    push_in(r, item_new(IT_MSG, room, (const uint8_t *)pl->str, pl->len));
}

static void *sub_main(void *arg)
{
    srv_redis *r = arg;
    unsigned backoff = 100;
    char last[320] = "";
    while (!stopping(r)) {
        redisContext *c = connect_to(r, "subscriber", last, sizeof last);
        redisReply *rep = c ? redisCommand(c, "PSUBSCRIBE " CHAN_PREFIX "*") : NULL;
        bool ok = rep && rep->type == REDIS_REPLY_ARRAY;
        if (rep) freeReplyObject(rep);
        if (!ok) {
            if (c) redisFree(c);
            sleep_backoff(r, &backoff);
            continue;
        }
        redisSetTimeout(c, (struct timeval){0, 0}); /* block until a message or shutdown */
        backoff = 100;
        pthread_mutex_lock(&r->mu);
        r->sub_fd = c->fd;
        r->connected = true;
        bool stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (!stop) push_in(r, item_new(IT_CONNECTED, NULL, NULL, 0));
        while (!stop) {
            void *out = NULL;
            if (redisGetReply(c, &out) != REDIS_OK) break;
            sub_message(r, out);
            freeReplyObject(out);
            stop = stopping(r);
        }
        pthread_mutex_lock(&r->mu);
        r->sub_fd = -1;
        r->connected = false;
        pthread_mutex_unlock(&r->mu);
        redisFree(c);
        if (!stopping(r)) lwsl_warn("tandem: redis subscriber disconnected; reconnecting\n");
    }
    return NULL;
}

/* publisher: one item; false when the connection failed */
static bool pub_one(srv_redis *r, redisContext *c, item *it)
{
    char ch[sizeof CHAN_PREFIX + SYNCM_MAX_NAME], key[sizeof CHAT_KEY + SYNCM_MAX_NAME];
    snprintf(ch, sizeof ch, CHAN_PREFIX "%s", it->room);
    snprintf(key, sizeof key, CHAT_KEY "%s", it->room);
    redisReply *rep;
    if (it->kind == IT_FLOOR) {
        rep = redisCommand(c, "EVAL %s 1 %s %llu 0", FLOOR_INCR, key, (unsigned long long)it->id);
        if (rep) freeReplyObject(rep);
        return rep != NULL;
    }
    if (it->kind == IT_CHAT) {
        rep = redisCommand(c, "EVAL %s 1 %s %llu 1", FLOOR_INCR, key, (unsigned long long)it->id);
        bool ok = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
        uint64_t id = ok ? (uint64_t)rep->integer : 0;
        if (rep) freeReplyObject(rep);
        if (ok) {
            put64(it->body + HDR, id);
            rep = redisCommand(c, "PUBLISH %s %b", ch, it->body, it->n);
            ok = rep && rep->type == REDIS_REPLY_INTEGER;
            if (rep) freeReplyObject(rep);
        }
        item *back = item_new(ok ? IT_CHAT : IT_CHAT_FAIL, it->room, it->body, it->n);
        if (back) {
            back->token = it->token;
            back->mine = true;
            push_in(r, back);
        }
        return c->err == 0;
    }
    rep = redisCommand(c, "PUBLISH %s %b", ch, it->body, it->n);
    if (rep) freeReplyObject(rep);
    return rep != NULL;
}

static void fail_chat(srv_redis *r, item *it)
{
    if (it->kind != IT_CHAT) return;
    item *back = item_new(IT_CHAT_FAIL, it->room, NULL, 0);
    if (back) {
        back->token = it->token;
        push_in(r, back);
    }
}

/* read the replies of `*n` pipelined commands; false when the connection failed */
static bool drain_replies(redisContext *c, size_t *n)
{
    for (; *n > 0; (*n)--) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK) return false;
        freeReplyObject(rep);
    }
    return true;
}

static void *pub_main(void *arg)
{
    srv_redis *r = arg;
    redisContext *c = NULL;
    unsigned backoff = 100;
    char last[320] = "";
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->stop && !r->out.head) pthread_cond_wait(&r->cv, &r->mu);
        bool stop = r->stop;
        item *batch = stop ? NULL : q_take_all(&r->out);
        pthread_mutex_unlock(&r->mu);
        if (stop) break;
        if (!c) c = connect_to(r, "publisher", last, sizeof last);
        if (!c) {
            /* Redis is away: what was queued is dropped (the state-vector
             * exchange repairs documents; chat writes fail at once) */
            uint64_t n = 0;
            for (item *it = batch; it; it = it->next, n++) fail_chat(r, it);
            q_free_list(batch);
            pthread_mutex_lock(&r->mu);
            r->dropped_pub += n; /* read under the lock by srv_redis_counters_get */
            pthread_mutex_unlock(&r->mu);
            sleep_backoff(r, &backoff);
            continue;
        }
        backoff = 100;
        /* PUBLISHes are pipelined (one round trip per batch); a chat id
         * allocation waits for the replies before it */
        size_t inflight = 0;
        for (item *it = batch; it; it = it->next) {
            if (!c) {
                fail_chat(r, it);
                continue;
            }
            bool ok;
            if (it->kind == IT_PUBLISH) {
                char ch[sizeof CHAN_PREFIX + SYNCM_MAX_NAME];
                snprintf(ch, sizeof ch, CHAN_PREFIX "%s", it->room);
                ok = redisAppendCommand(c, "PUBLISH %s %b", ch, it->body, it->n) == REDIS_OK;
                if (ok && ++inflight >= PIPELINE_MAX) ok = drain_replies(c, &inflight);
            } else {
                ok = drain_replies(c, &inflight) && pub_one(r, c, it);
            }
            if (!ok) {
                redisFree(c);
                c = NULL;
                inflight = 0;
            }
        }
        if (c && !drain_replies(c, &inflight)) {
            redisFree(c);
            c = NULL;
        }
        q_free_list(batch);
    }
    if (c) redisFree(c);
    return NULL;
}

/* ------------------------------------------------------------ chat */

static void chat_store_done(void *ctx, tdm_err err, uint64_t id, bool duplicate)
{
    item *it = ctx;
    srv_redis *r = (srv_redis *)(uintptr_t)it->id; /* stashed; see chat_store */
    it->kind = IT_CHAT_STORED;
    it->err = err;
    it->id = id;
    it->dup = duplicate;
    push_in(r, it);
}

/* append the 'C' message `it` (owned) to the store */
static void chat_store(srv_redis *r, item *it)
{
    sync_chat_rec rec;
    chat_parse(it->body + HDR, it->n - HDR, &rec);
    uint8_t cmid[16];
    put64(cmid, rec.client_id);
    put64(cmid + 8, rec.msg_id);
    store_chat_msg m = {0};
    m.time_ms = (int64_t)rec.time_ms;
    m.user = rec.user, m.user_len = rec.user_len;
    m.display = rec.display, m.display_len = rec.display_len;
    m.cmid = cmid, m.cmid_len = rec.client_id || rec.msg_id ? sizeof cmid : 0;
    m.text = rec.text, m.text_len = rec.text_len;
    it->next = NULL;
    it->id = (uint64_t)(uintptr_t)r;
    tdm_err e =
        store_chat_append_async(r->s->st, it->room, strlen(it->room), &m, chat_store_done, it);
    if (e) {
        it->kind = IT_CHAT_STORED;
        it->err = e;
        it->id = 0;
        push_in(r, it);
    } else {
        r->s->n.chats_persisted++;
    }
}

/* store the held records that are next in line */
static void release_held(srv_redis *r, rroom *x)
{
    while (x->held && x->held->id == x->next_id) {
        held *h = x->held;
        x->held = h->next;
        x->nheld--;
        r->nheld--;
        x->next_id++;
        chat_store(r, h->it);
        free(h);
    }
    x->gap_since_ms = x->held ? now_ms() : 0;
}

/* A gap nobody filled within SRV_REDIS_GAP_MS (an id was allocated by a
 * node that died before storing it anywhere): give the missing ids up and
 * store what is held, so chat (and the acks queued behind a held record of
 * our own) goes on. Every node skips the same ids. */
static void skip_gaps(srv_redis *r, uint64_t now)
{
    if (!r->nheld) return;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (rroom *x = r->buckets[b]; x; x = x->next)
            if (x->held && x->gap_since_ms && now - x->gap_since_ms >= SRV_REDIS_GAP_MS) {
                lwsl_warn("tandem: room '%s': chat ids %llu..%llu never arrived; skipped\n",
                          x->name, (unsigned long long)x->next_id,
                          (unsigned long long)x->held->id - 1);
                x->next_id = x->held->id;
                r->chat_gaps++;
                release_held(r, x);
            }
}

/* a chat record with an id (ours or another node's): store in id order */
static void chat_in(srv_redis *r, item *it)
{
    sync_chat_rec rec;
    if (!chat_parse(it->body + HDR, it->n - HDR, &rec) || rec.id == 0) {
        if (it->mine) sync_server_durable(r->s->sync, it->token, TDM_EIO, 0, false);
        free(it);
        return;
    }
    rroom *x = room_get(r, it->room);
    if (!x || rec.id < x->next_id) { /* not tracked, or stored already */
        if (it->mine) sync_server_durable(r->s->sync, it->token, TDM_EIO, 0, false);
        free(it);
        return;
    }
    if (rec.id > x->next_id) {
        /* a gap: hold it and ask the other nodes for the missing records */
        held **pp = &x->held;
        while (*pp && (*pp)->id < rec.id) pp = &(*pp)->next;
        held *h = (*pp && (*pp)->id == rec.id) || x->nheld >= SRV_REDIS_CHAT_BUFFER
                      ? NULL
                      : malloc(sizeof *h);
        if (!h) {
            if (it->mine) sync_server_durable(r->s->sync, it->token, TDM_EIO, 0, false);
            free(it);
        } else {
            h->id = rec.id;
            h->it = it;
            h->next = *pp;
            *pp = h;
            x->nheld++;
            r->nheld++;
            if (!x->gap_since_ms) x->gap_since_ms = now_ms();
        }
        uint64_t now = now_ms();
        if (now - x->last_q_ms >= 500) {
            x->last_q_ms = now;
            uint8_t b[8];
            put64(b, x->next_id - 1);
            publish(r, x->name, 'Q', b, 8);
        }
        return;
    }
    x->next_id++;
    chat_store(r, it);
    release_held(r, x);
}

static void chat_stored(srv_redis *r, item *it)
{
    sync_chat_rec rec;
    chat_parse(it->body + HDR, it->n - HDR, &rec);
    uint64_t want = rec.id;
    if (!it->err && it->id != want) {
        r->chat_mismatch++;
        lwsl_warn("tandem: room '%s': chat %llu stored as %llu%s\n", it->room,
                  (unsigned long long)want, (unsigned long long)it->id,
                  it->dup ? " (duplicate)" : "");
    }
    if (it->err) r->s->n.storage_errors++;
    if (it->mine) {
        sync_server_durable(r->s->sync, it->token, it->err, it->id, it->dup);
    } else if (!it->err && !it->dup) {
        rec.id = it->id;
        sync_server_relay_chat(r->s->sync, it->room, &rec);
    }
    free(it);
}

typedef struct chat_reply {
    srv_redis *r;
    const char *room;
} chat_reply;

static int reply_one(void *ctx, const store_chat_msg *m)
{
    chat_reply *c = ctx;
    sync_chat_rec rec;
    srv_host_chat_rec(m, &rec);
    item *it = chat_msg(c->r, c->room, &rec, rec.id);
    if (it && push_out(c->r, it)) c->r->relayed_out++;
    return 0;
}

/* another node has chat up to `after`: send what we hold past it */
static void chat_answer(srv_redis *r, const char *room, uint64_t after)
{
    rroom *x = room_get(r, room);
    if (!x || x->next_id - 1 <= after) return;
    uint64_t now = now_ms();
    if (now - x->last_reply_ms < 200) return;
    x->last_reply_ms = now;
    chat_reply c = {r, x->name};
    store_chat_range(r->s->st, room, strlen(room), after, CHAT_BATCH, reply_one, &c);
}

/* ------------------------------------------------------------ documents */

static void announce(srv_redis *r, const char *room, bool opening)
{
    tbuf b;
    tbuf_init(&b, SRV_REDIS_MSG_MAX);
    uint8_t h[9] = {opening ? 1 : 0};
    rroom *x = room_get(r, room);
    uint64_t last = x ? x->next_id - 1 : 0;
    put64(h + 1, last);
    if (tbuf_append(&b, h, sizeof h) == TDM_OK &&
        sync_server_room_sv(r->s->sync, room, &b) == TDM_OK)
        publish(r, room, 'S', b.data, b.len);
    tbuf_fini(&b);
    if (x) x->last_s_ms = now_ms();
    if (last) {
        item *f = item_new(IT_FLOOR, room, NULL, 0);
        if (f) {
            f->id = last;
            push_out(r, f);
        }
    }
}

/* another node's state vector: send what it lacks, ask for what we lack */
static void sv_in(srv_redis *r, const char *room, const uint8_t *p, size_t n)
{
    if (n < 9) return;
    bool opening = p[0] & 1;
    uint64_t their_chat = get64(p + 1);
    tbuf diff;
    tbuf_init(&diff, SRV_REDIS_MSG_MAX);
    bool behind = false;
    tdm_err e = sync_server_room_compare(r->s->sync, room, p + 9, n - 9, &diff, &behind);
    if (e == TDM_ENOTFOUND && opening) {
        /* not in memory here: answer from the store */
        crdt_sv *sv = crdt_sv_new();
        crdt_doc *doc = NULL;
        if (sv && crdt_sv_decode(sv, p + 9, n - 9) == TDM_OK &&
            store_doc_load(r->s->st, room, strlen(room), NULL, &doc, NULL) == TDM_OK) {
            crdt_sv *own = crdt_sv_new();
            if (own && crdt_doc_state_vector(doc, own) == TDM_OK && !crdt_sv_covers(sv, own))
                crdt_doc_diff(doc, sv, &diff);
            crdt_sv_free(own);
        }
        crdt_doc_free(doc);
        crdt_sv_free(sv);
    }
    if (diff.len) publish(r, room, 'U', diff.data, diff.len);
    tbuf_fini(&diff);
    rroom *x = room_get(r, room);
    uint64_t now = now_ms();
    if (behind && x && now - x->last_s_ms >= 300) announce(r, room, false);
    if (x && x->next_id - 1 > their_chat) chat_answer(r, room, their_chat);
    if (x && x->next_id - 1 < their_chat && now - x->last_q_ms >= 500) {
        x->last_q_ms = now;
        uint8_t b[8];
        put64(b, x->next_id - 1);
        publish(r, room, 'Q', b, 8);
    }
}

static void msg_in(srv_redis *r, item *it)
{
    const uint8_t *p = it->body + HDR;
    size_t n = it->n - HDR;
    sync_server *ss = r->s->sync;
    r->relayed_in++;
    switch (it->body[1]) {
    case 'U': {
        bool changed = false;
        tdm_err e = n ? sync_server_apply_remote(ss, it->room, p, n, &changed) : TDM_EINVAL;
        if (e && e != TDM_ENOTFOUND)
            lwsl_warn("tandem: relayed update for '%s' refused: %s\n", it->room, tdm_strerror(e));
        break;
    }
    case 'A':
        if (n) sync_server_relay_awareness(ss, it->room, p, n, now_ms());
        break;
    case 'Y': {
        char user[SYNCM_MAX_USER + 1], disp[SYNCM_MAX_USER + 1];
        if (n < 3 || (size_t)2 + p[1] + 1 > n) break;
        size_t ul = p[1], dl = p[2 + ul];
        if (3 + ul + dl != n) break;
        memcpy(user, p + 2, ul), user[ul] = '\0';
        memcpy(disp, p + 3 + ul, dl), disp[dl] = '\0';
        if (strlen(user) == ul && strlen(disp) == dl)
            sync_server_relay_typing(ss, it->room, user, disp, p[0] != 0);
        break;
    }
    case 'S':
        sv_in(r, it->room, p, n);
        break;
    case 'Q':
        if (n == 8) chat_answer(r, it->room, get64(p));
        break;
    case 'C':
        it->mine = false;
        chat_in(r, it);
        return; /* it is owned by chat_in */
    default:
        break;
    }
    free(it);
}

/* ------------------------------------------------------------ host wrappers */

static srv_redis *R(void *ctx)
{
    return ((srv *)ctx)->redis;
}

static tdm_err w_persist_update(void *ctx, const char *name, const uint8_t *p, size_t n,
                                uint64_t token)
{
    srv_redis *r = R(ctx);
    tdm_err e = r->orig.persist_update(ctx, name, p, n, token);
    if (!e && !sync_server_relaying(r->s->sync)) publish(r, name, 'U', p, n);
    return e;
}

static tdm_err w_persist_chat(void *ctx, const char *name, const sync_chat_rec *rec, uint64_t token)
{
    srv_redis *r = R(ctx);
    rroom *x = room_get(r, name);
    if (!x) return TDM_ENOMEM;
    item *it = chat_msg(r, name, rec, 0);
    if (!it) return TDM_ENOMEM;
    it->kind = IT_CHAT;
    it->token = token;
    it->id = x->next_id - 1; /* the counter's floor */
    return push_out(r, it) ? TDM_OK : TDM_ETOOBIG;
}

static sync_load_result w_load_room(void *ctx, const char *name, const crdt_doc_opts *opts,
                                    crdt_doc **doc, sync_room_info *info)
{
    srv_redis *r = R(ctx);
    sync_load_result res = r->orig.load_room(ctx, name, opts, doc, info);
    if (res == SYNC_LOAD_OK || res == SYNC_LOAD_NEW) {
        /* Each node numbers the changes it applies itself (they arrive in
         * different orders), so an OT version of one node means nothing on
         * another: every run of a node puts its versions in a space of its
         * own (stored OT history mapped in and out by w_persist_ot /
         * w_ot_history). An OT client that moves to another node then has a
         * version outside its history and is resynchronized from a
         * snapshot (ERROR TOO_FAR_BEHIND) instead of being sent operations
         * that do not apply to its text. */
        info->version += r->ot_off;
        rroom *x = room_get(r, name);
        if (x && x->next_id - 1 > info->last_chat_id) info->last_chat_id = x->next_id - 1;
        push_in(r, item_new(IT_OPENED, name, NULL, 0));
    }
    return res;
}

static tdm_err w_persist_ot(void *ctx, const char *name, uint64_t version, const uint8_t *op,
                            size_t n, uint64_t src, uint64_t op_id)
{
    srv_redis *r = R(ctx);
    if (version < r->ot_off) return TDM_ERANGE; /* not of this run's space */
    return r->orig.persist_ot(ctx, name, version - r->ot_off, op, n, src, op_id);
}

typedef struct ot_shift {
    sync_ot_emit emit;
    void *arg;
    uint64_t off;
} ot_shift;

static tdm_err ot_shift_one(void *arg, uint64_t version, const uint8_t *op, size_t n, uint64_t src,
                            uint64_t op_id)
{
    ot_shift *w = arg;
    return w->emit(w->arg, version + w->off, op, n, src, op_id);
}

static tdm_err w_ot_history(void *ctx, const char *name, uint64_t from, sync_ot_emit emit,
                            void *arg)
{
    srv_redis *r = R(ctx);
    if (from < r->ot_off) return TDM_ERANGE; /* another node's (or run's) version */
    ot_shift w = {emit, arg, r->ot_off};
    return r->orig.ot_history(ctx, name, from - r->ot_off, ot_shift_one, &w);
}

static void w_room_event(void *ctx, const char *name, const sync_room_event *ev)
{
    srv_redis *r = R(ctx);
    if (r->orig.room_event) r->orig.room_event(ctx, name, ev);
    if (ev->kind != SYNC_ROOM_TYPING || sync_server_relaying(r->s->sync)) return;
    size_t ul = strlen(ev->user), dl = strlen(ev->display);
    if (ul == 0 || ul > 255 || dl > 255) return;
    uint8_t b[3 + 255 + 255];
    b[0] = ev->on ? 1 : 0;
    b[1] = (uint8_t)ul;
    memcpy(b + 2, ev->user, ul);
    b[2 + ul] = (uint8_t)dl;
    memcpy(b + 3 + ul, ev->display, dl);
    publish(r, name, 'Y', b, 3 + ul + dl);
}

static void w_relay(void *ctx, const char *name, sync_relay_kind kind, const uint8_t *p, size_t n)
{
    if (kind == SYNC_RELAY_AWARENESS) publish(R(ctx), name, 'A', p, n);
}

/* ------------------------------------------------------------ public */

/* zero a secret in a way the compiler does not drop before free */
static void wipe(char *p, size_t n)
{
    volatile char *v = p;
    while (n--) *v++ = 0;
}

/* percent-decode [p, p + n) into out (cap bytes with the NUL); false for a
 * bad escape, a NUL or control byte, a raw '@' or ':' (`colon_ok` false),
 * or too long */
static bool pct_decode(const char *p, size_t n, char *out, size_t cap, bool colon_ok)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)p[i];
        if (c == '%') {
            unsigned v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = i + (size_t)k < n ? p[i + (size_t)k] : '\0';
                int d = h >= '0' && h <= '9'   ? h - '0'
                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                               : -1;
                if (d < 0) return false;
                v = v << 4 | (unsigned)d;
            }
            c = v;
            i += 2;
        } else if (c == '@' || (c == ':' && !colon_ok)) {
            return false;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= cap) return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]; USER without a password only
 * with TANDEM_REDIS_PASSWORD. The reason for a refusal goes to why (never
 * the password). */
static bool parse_url(srv_redis *r, const char *url, const char *env_pass, const char **why)
{
    const char *p = url;
    *why = "want redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
    if (strncmp(p, "rediss://", 9) == 0) {
        *why = "rediss:// (TLS) is not supported: this build's hiredis (0.14) has no TLS; "
               "see docs/SCALING.md";
        return false;
    }
    if (strncmp(p, "redis://", 8) == 0) p += 8;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *ui = p, *colon = memchr(ui, ':', (size_t)(at - ui));
        if (!colon) {
            /* USER@HOST: the password comes from the environment */
            if (!env_pass || !*env_pass) {
                *why = "a user without a password (give USER:PASSWORD@ or set "
                       "TANDEM_REDIS_PASSWORD)";
                return false;
            }
            colon = at;
        }
        if (!pct_decode(ui, (size_t)(colon - ui), r->user, sizeof r->user, false)) {
            *why = "malformed user (percent-encode '@', ':' and '/', at most 128 bytes)";
            return false;
        }
        if (colon < at) {
            if (colon + 1 == at) {
                *why = "empty password";
                return false;
            }
            if (!pct_decode(colon + 1, (size_t)(at - colon - 1), r->pass, sizeof r->pass, true)) {
                *why = "malformed password (percent-encode '@' and '/' as %40 and %2F, "
                       "no control bytes, at most 512 bytes)";
                return false;
            }
        }
        if (memchr(ui, '/', (size_t)(at - ui))) {
            *why = "malformed userinfo (percent-encode '/' as %2F)";
            return false;
        }
        p = at + 1;
    }
    if (!r->pass[0] && env_pass && *env_pass) {
        if (strlen(env_pass) > SRV_REDIS_PASS_MAX) {
            *why = "TANDEM_REDIS_PASSWORD is longer than 512 bytes";
            return false;
        }
        snprintf(r->pass, sizeof r->pass, "%s", env_pass);
    }
    *why = "want redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]";
    const char *end = p + strcspn(p, "/");
    const char *colon = memchr(p, ':', (size_t)(end - p));
    const char *hend = colon ? colon : end;
    if (hend == p || (size_t)(hend - p) >= sizeof r->host) return false;
    memcpy(r->host, p, (size_t)(hend - p));
    r->host[hend - p] = '\0';
    r->port = 6379;
    if (colon) {
        char *e = NULL;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || v < 1 || v > 65535 || colon[1] < '0' || colon[1] > '9') return false;
        r->port = (int)v;
    }
    r->db = 0;
    if (*end == '\0' || strcmp(end, "/") == 0) return true;
    char *e = NULL;
    long v = strtol(end + 1, &e, 10);
    if (*e || end[1] < '0' || end[1] > '9' || v < 0 || v > 65535) {
        *why = "the database must be a number from 0 to 65535 (redis://HOST[:PORT]/DB)";
        return false;
    }
    r->db = (int)v;
    return true;
}

/* url with anything before the last '@' (user and password) as "***" */
static void redact_url(const char *url, char *out, size_t cap)
{
    const char *at = strrchr(url, '@');
    if (!at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    const char *sch = strstr(url, "://");
    int pre = sch && sch < at ? (int)(sch + 3 - url) : 0;
    snprintf(out, cap, "%.*s***%s", pre, url, at);
}

tdm_err srv_redis_open(srv *s)
{
    const char *url = s->cfg.redis_url;
    if (!url || !*url) return TDM_OK;
    srv_redis *r = calloc(1, sizeof *r);
    if (!r) return TDM_ENOMEM;
    r->s = s;
    r->sub_fd = -1;
    const char *why = NULL;
    if (!parse_url(r, url, getenv("TANDEM_REDIS_PASSWORD"), &why)) {
        char shown[512];
        redact_url(url, shown, sizeof shown);
        fprintf(stderr, "tandem serve: bad Redis URL '%s': %s\n", shown, why);
        wipe(r->pass, sizeof r->pass);
        free(r);
        return TDM_EINVAL;
    }
    /* One connection first: a login Redis refuses (wrong or missing
     * password, a database it does not have) is a configuration error and
     * stops the start. Redis not reachable yet is not: the threads retry. */
    login_res lr;
    char lwhy[320];
    redisContext *probe = connect_login(r, &lr, lwhy, sizeof lwhy);
    if (probe) redisFree(probe);
    if (lr == LOGIN_REFUSED) {
        fprintf(stderr, "tandem serve: Redis at %s:%d refused the login: %s\n", r->host, r->port,
                lwhy);
        wipe(r->pass, sizeof r->pass);
        free(r);
        return TDM_EINVAL;
    }
    if (lr == LOGIN_IO && !s->cfg.quiet)
        fprintf(stderr, "tandem serve: Redis at %s:%d not reachable yet (%s); retrying\n", r->host,
                r->port, lwhy);
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &r->node, sizeof r->node) != (ssize_t)sizeof r->node) r->node = 0;
        close(fd);
    }
    r->node ^= srv_now_ms() ^ ((uint64_t)getpid() << 40);
    /* 1..2047 times 2^40: below 2^51, so versions stay exact in JavaScript */
    r->ot_off = ((r->node >> 17) % 2047 + 1) << 40;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    s->redis = r;
    r->sub_started = pthread_create(&r->sub_th, NULL, sub_main, r) == 0;
    r->pub_started = pthread_create(&r->pub_th, NULL, pub_main, r) == 0;
    if (!r->sub_started || !r->pub_started) {
        srv_redis_close(s);
        return TDM_ENOMEM;
    }
    if (!s->cfg.quiet)
        fprintf(stderr,
                "tandem serve: relaying rooms through redis://%s:%d/%d%s%s (node %016llx)\n",
                r->host, r->port, r->db, r->pass[0] ? " with a password" : "",
                r->user[0] ? " as a named user" : "", (unsigned long long)r->node);
    return TDM_OK;
}

void srv_redis_host(srv *s, sync_host *h)
{
    srv_redis *r = s->redis;
    if (!r) return;
    r->orig = *h;
    h->persist_update = w_persist_update;
    h->persist_chat = w_persist_chat;
    h->load_room = w_load_room;
    if (h->persist_ot) h->persist_ot = w_persist_ot;
    if (h->ot_history) h->ot_history = w_ot_history;
    h->room_event = w_room_event;
    h->relay = w_relay;
}

static void announce_one(void *arg, const char *name, size_t members)
{
    (void)members;
    announce(arg, name, true);
}

void srv_redis_drain(srv *s)
{
    srv_redis *r = s->redis;
    if (!r || !s->sync) return;
    pthread_mutex_lock(&r->mu);
    item *list = q_take_all(&r->in);
    pthread_mutex_unlock(&r->mu);
    while (list) {
        item *it = list;
        list = it->next;
        switch (it->kind) {
        case IT_MSG:
            msg_in(r, it);
            continue;
        case IT_CHAT: /* our own record, with its id */
            chat_in(r, it);
            continue;
        case IT_CHAT_STORED:
            chat_stored(r, it);
            continue;
        case IT_CHAT_FAIL:
            sync_server_durable(s->sync, it->token, TDM_EIO, 0, false);
            break;
        case IT_CONNECTED:
            sync_server_active_rooms(s->sync, announce_one, r);
            break;
        case IT_OPENED:
            announce(r, it->room, true);
            break;
        default:
            break;
        }
        free(it);
    }
    /* what this queued for sessions goes out at the end of the loop's turn
     * (srv_ws_flush in srv_service) */
}

static void tick_one(void *arg, const char *name, size_t members)
{
    srv_redis *r = arg;
    rroom *x = room_get(r, name);
    if (members && (!x || now_ms() - x->last_s_ms >= SRV_REDIS_SV_MS)) announce(r, name, false);
}

void srv_redis_tick(srv *s, uint64_t now)
{
    srv_redis *r = s->redis;
    if (!r || !s->sync) return;
    if (now - r->last_tick_ms < 250) return;
    r->last_tick_ms = now;
    sync_server_active_rooms(s->sync, tick_one, r);
    skip_gaps(r, now);
}

void srv_redis_counters_get(const srv *s, srv_redis_counters *c)
{
    memset(c, 0, sizeof *c);
    srv_redis *r = s->redis;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    c->connected = r->connected;
    c->dropped = r->in.dropped + r->out.dropped + r->dropped_pub;
    pthread_mutex_unlock(&r->mu);
    c->relayed_in = r->relayed_in;
    c->relayed_out = r->relayed_out;
    c->chat_gaps = r->chat_gaps;
    c->chat_id_shifts = r->chat_mismatch;
}

bool srv_redis_connected(const srv *s)
{
    srv_redis *r = s->redis;
    if (!r) return false;
    pthread_mutex_lock(&r->mu);
    bool c = r->connected;
    pthread_mutex_unlock(&r->mu);
    return c;
}

void srv_redis_close(srv *s)
{
    srv_redis *r = s->redis;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    if (r->sub_fd >= 0) shutdown(r->sub_fd, SHUT_RDWR);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->pub_started) pthread_join(r->pub_th, NULL);
    if (r->sub_started) pthread_join(r->sub_th, NULL);
    q_free_list(q_take_all(&r->out));
    q_free_list(q_take_all(&r->in));
    for (size_t b = 0; b < NBUCKETS; b++)
        while (r->buckets[b]) {
            rroom *x = r->buckets[b];
            r->buckets[b] = x->next;
            while (x->held) {
                held *h = x->held;
                x->held = h->next;
                free(h->it);
                free(h);
            }
            free(x);
        }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    wipe(r->pass, sizeof r->pass);
    free(r);
    s->redis = NULL;
}
