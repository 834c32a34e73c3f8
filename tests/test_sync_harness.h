/* test_sync_harness.h - an in-memory host for sync_server and an in-process
 * network of sync_clients for tests/test_sync.c (header-only: static
 * functions, included by that one suite). */
#ifndef TANDEM_TEST_SYNC_HARNESS_H
#define TANDEM_TEST_SYNC_HARNESS_H

#include "session.h"
#include "client.h"
#include "awareness.h"
#include "doc.h"
#include "ot.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ host */

typedef struct hblob {
    uint8_t *p;
    size_t n;
    uint64_t src, op_id; /* OT history: the submitter persist_ot got */
} hblob;

typedef struct hchat {
    uint64_t id, time_ms, client_id, msg_id;
    char user[64], display[64], text[512];
} hchat;

typedef struct hdoc {
    char name[256];
    hblob *updates;
    size_t nupdates;
    hblob *ops; /* ops[i] turns version ot_first + i into + 1 */
    size_t nops;
    uint64_t ot_first;
    hchat *chats;
    size_t nchats;
} hdoc;

typedef struct htok {
    uint64_t token;
    uint64_t id;
    bool dup;
} htok;

typedef struct th {
    sync_server *srv;
    hdoc docs[32];
    size_t ndocs;
    htok toks[4096];
    size_t ntoks;
    bool hold;            /* keep durability pending */
    int fail_persist;     /* fail the next N persist calls at once */
    int fail_durable;     /* the next N completions report an error */
    bool strict;          /* unknown documents may not be created */
    const char *broken;   /* this document fails to load */
    uint64_t next_client; /* fresh_client_id */
    int limit_kind;       /* rate-limit this kind (-1: none) */
    uint64_t limit_retry;
    size_t loads, persists, closed;
    uint64_t ot_trim; /* stored OT history starts here (older: too far behind) */
} th;

static hdoc *th_doc(th *h, const char *name, bool create)
{
    for (size_t i = 0; i < h->ndocs; i++)
        if (strcmp(h->docs[i].name, name) == 0) return &h->docs[i];
    if (!create) return NULL;
    ck_assert_uint_lt(h->ndocs, 32);
    hdoc *d = &h->docs[h->ndocs++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    return d;
}

static void blob_push(hblob **v, size_t *n, const uint8_t *p, size_t len)
{
    *v = realloc(*v, (*n + 1) * sizeof **v);
    (*v)[*n].p = malloc(len ? len : 1);
    memcpy((*v)[*n].p, p, len);
    (*v)[*n].n = len;
    (*n)++;
}

static tdm_err h_authorize(void *ctx, const sync_session *s, const uint8_t *token, size_t n,
                           const char *name, sync_auth *out)
{
    (void)ctx, (void)s, (void)name;
    /* token "user:r" / "user:w" / "user:n"; empty: anonymous writer */
    if (n == 0) {
        out->access = SYNC_ACCESS_WRITE;
        strcpy(out->user, "anon");
        return TDM_OK;
    }
    const uint8_t *colon = memchr(token, ':', n);
    if (!colon || colon == token + n - 1) return TDM_EINVAL;
    size_t ul = (size_t)(colon - token);
    if (ul >= sizeof out->user) return TDM_EINVAL; /* a user id past the field */
    memcpy(out->user, token, ul);
    out->user[ul] = '\0';
    for (size_t i = 0; i < ul; i++)
        out->display[i] =
            (char)(out->user[i] >= 'a' && out->user[i] <= 'z' ? out->user[i] - 32 : out->user[i]);
    char a = (char)colon[1];
    out->access = a == 'w' ? SYNC_ACCESS_WRITE : a == 'r' ? SYNC_ACCESS_READ : SYNC_ACCESS_NONE;
    return TDM_OK;
}

static uint64_t h_fresh(void *ctx)
{
    th *h = ctx;
    return ++h->next_client;
}

static sync_load_result h_load(void *ctx, const char *name, const crdt_doc_opts *opts,
                               crdt_doc **doc, sync_room_info *info)
{
    th *h = ctx;
    h->loads++;
    if (h->broken && strcmp(name, h->broken) == 0) return SYNC_LOAD_ERROR;
    hdoc *d = th_doc(h, name, false);
    if (!d) return h->strict ? SYNC_LOAD_UNKNOWN : SYNC_LOAD_NEW;
    ck_assert_int_eq(crdt_doc_new_opts(opts, doc), TDM_OK);
    for (size_t i = 0; i < d->nupdates; i++)
        ck_assert_int_eq(crdt_doc_apply(*doc, d->updates[i].p, d->updates[i].n), TDM_OK);
    info->version = d->ot_first + d->nops;
    info->last_chat_id = d->nchats ? d->chats[d->nchats - 1].id : 0;
    return SYNC_LOAD_OK;
}

static void tok_push(th *h, uint64_t token, uint64_t id, bool dup)
{
    ck_assert_uint_lt(h->ntoks, 4096);
    h->toks[h->ntoks++] = (htok){token, id, dup};
}

static tdm_err h_persist(void *ctx, const char *name, const uint8_t *p, size_t n, uint64_t token)
{
    th *h = ctx;
    if (h->fail_persist > 0) {
        h->fail_persist--;
        return TDM_EIO;
    }
    hdoc *d = th_doc(h, name, true);
    blob_push(&d->updates, &d->nupdates, p, n);
    h->persists++;
    tok_push(h, token, 0, false);
    return TDM_OK;
}

static tdm_err h_persist_ot(void *ctx, const char *name, uint64_t version, const uint8_t *p,
                            size_t n, uint64_t src, uint64_t op_id)
{
    th *h = ctx;
    hdoc *d = th_doc(h, name, true);
    if (d->nops == 0) d->ot_first = version;
    ck_assert_uint_eq(version, d->ot_first + d->nops); /* contiguous */
    blob_push(&d->ops, &d->nops, p, n);
    d->ops[d->nops - 1].src = src;
    d->ops[d->nops - 1].op_id = op_id;
    return TDM_OK;
}

static tdm_err h_persist_chat(void *ctx, const char *name, const sync_chat_rec *rec, uint64_t token)
{
    th *h = ctx;
    if (h->fail_persist > 0) {
        h->fail_persist--;
        return TDM_EIO;
    }
    hdoc *d = th_doc(h, name, true);
    for (size_t i = 0; i < d->nchats; i++) {
        hchat *c = &d->chats[i];
        if (c->client_id == rec->client_id && c->msg_id == rec->msg_id &&
            strlen(c->user) == rec->user_len && memcmp(c->user, rec->user, rec->user_len) == 0) {
            tok_push(h, token, c->id, true);
            return TDM_OK;
        }
    }
    d->chats = realloc(d->chats, (d->nchats + 1) * sizeof *d->chats);
    hchat *c = &d->chats[d->nchats];
    memset(c, 0, sizeof *c);
    c->id = d->nchats ? d->chats[d->nchats - 1].id + 1 : 1;
    c->time_ms = rec->time_ms;
    c->client_id = rec->client_id;
    c->msg_id = rec->msg_id;
    memcpy(c->user, rec->user, rec->user_len < 63 ? rec->user_len : 63);
    memcpy(c->display, rec->display, rec->display_len < 63 ? rec->display_len : 63);
    memcpy(c->text, rec->text, rec->text_len < 511 ? rec->text_len : 511);
    d->nchats++;
    tok_push(h, token, c->id, false);
    return TDM_OK;
}

static tdm_err h_chat_history(void *ctx, const char *name, uint64_t after, size_t limit,
                              sync_chat_emit emit, void *arg)
{
    th *h = ctx;
    hdoc *d = th_doc(h, name, false);
    if (!d) return TDM_OK;
    size_t sent = 0;
    for (size_t i = 0; i < d->nchats && sent < limit; i++) {
        hchat *c = &d->chats[i];
        if (c->id <= after) continue;
        sync_chat_rec r = {.id = c->id,
                           .time_ms = c->time_ms,
                           .user = (const uint8_t *)c->user,
                           .user_len = strlen(c->user),
                           .display = (const uint8_t *)c->display,
                           .display_len = strlen(c->display),
                           .text = (const uint8_t *)c->text,
                           .text_len = strlen(c->text)};
        tdm_err e = emit(arg, &r);
        if (e) return e;
        sent++;
    }
    return TDM_OK;
}

static tdm_err h_ot_history(void *ctx, const char *name, uint64_t from, sync_ot_emit emit,
                            void *arg)
{
    th *h = ctx;
    hdoc *d = th_doc(h, name, false);
    if (!d) return TDM_ERANGE;
    if (from < d->ot_first || from < h->ot_trim || from > d->ot_first + d->nops) return TDM_ERANGE;
    for (uint64_t v = from; v < d->ot_first + d->nops; v++) {
        hblob *b = &d->ops[v - d->ot_first];
        tdm_err e = emit(arg, v, b->p, b->n, b->src, b->op_id);
        if (e) return e;
    }
    return TDM_OK;
}

static uint64_t h_rate(void *ctx, const sync_session *s, const char *user, sync_rate_kind kind,
                       uint64_t now)
{
    (void)s, (void)user, (void)now;
    th *h = ctx;
    return (int)kind == h->limit_kind ? h->limit_retry : 0;
}

static void h_closed(void *ctx, const char *name)
{
    (void)name;
    th *h = ctx;
    h->closed++;
}

/* th_host - the harness's host functions with context ctx (a th, or a
 * struct whose first member is one); callers add optional hooks. */
static sync_host th_host(void *ctx)
{
    sync_host host = {.ctx = ctx,
                      .authorize = h_authorize,
                      .fresh_client_id = h_fresh,
                      .load_room = h_load,
                      .persist_update = h_persist,
                      .persist_ot = h_persist_ot,
                      .persist_chat = h_persist_chat,
                      .chat_history = h_chat_history,
                      .ot_history = h_ot_history,
                      .rate_limit = h_rate,
                      .room_closed = h_closed};
    return host;
}

static void th_init(th *h, const sync_server_opts *opts)
{
    memset(h, 0, sizeof *h);
    h->limit_kind = -1;
    h->next_client = 1000000;
    sync_host host = th_host(h);
    sync_server_opts o = {.hash_seed = 42};
    if (opts) o = *opts;
    ck_assert_int_eq(sync_server_new(&host, &o, &h->srv), TDM_OK);
}

/* report every queued write as durable (unless held), in order */
static size_t th_complete(th *h)
{
    if (h->hold) return 0;
    size_t n = h->ntoks;
    for (size_t i = 0; i < n; i++) {
        tdm_err st = TDM_OK;
        if (h->fail_durable > 0) {
            h->fail_durable--;
            st = TDM_EIO;
        }
        ck_assert_int_eq(
            sync_server_durable(h->srv, h->toks[i].token, st, h->toks[i].id, h->toks[i].dup),
            TDM_OK);
    }
    h->ntoks = 0;
    return n;
}

static void th_fini(th *h)
{
    sync_server_free(h->srv);
    for (size_t i = 0; i < h->ndocs; i++) {
        hdoc *d = &h->docs[i];
        for (size_t k = 0; k < d->nupdates; k++) free(d->updates[k].p);
        for (size_t k = 0; k < d->nops; k++) free(d->ops[k].p);
        free(d->updates);
        free(d->ops);
        free(d->chats);
    }
}

/* ------------------------------------------------------------ peers */

#define MAXERR 64

typedef struct peer {
    sync_client *cl;
    sync_session *ss;
    uint64_t client_id;
    crdt_doc *doc;
    aw_state *aw;
    uint32_t ch;
    /* events */
    uint64_t errs[MAXERR];
    uint64_t err_refs[MAXERR];
    ot_op *err_op; /* the last operation an error gave back */
    size_t nerr;
    size_t acks, synced, remote, welcome;
    uint64_t progress_done, progress_total;
    size_t progress_calls, progress_restarts;
    uint64_t chat_ids[256];
    char chat_texts[256][32];
    size_t nchat;
    uint64_t chat_max;
    uint64_t chat_acks[64][2];
    size_t nchat_acks;
    int typing_on, typing_off;
    char typing_user[64];
} peer;

static void ev_error(void *ctx, const syncm *m)
{
    peer *p = ctx;
    if (p->nerr < MAXERR) {
        p->errs[p->nerr] = m->code;
        p->err_refs[p->nerr] = m->ref;
    }
    p->nerr++;
    if (m->op) {
        ot_op_free(p->err_op);
        p->err_op = NULL;
        ck_assert_int_eq(ot_op_clone(m->op, &p->err_op), TDM_OK);
    }
}

static void ev_ack(void *ctx, uint32_t ch, uint64_t seq)
{
    (void)ch, (void)seq;
    ((peer *)ctx)->acks++;
}

static void ev_synced(void *ctx, uint32_t ch)
{
    (void)ch;
    ((peer *)ctx)->synced++;
}

static void ev_remote(void *ctx, uint32_t ch, const ot_op *op)
{
    (void)ch, (void)op;
    ((peer *)ctx)->remote++;
}

static void ev_welcome(void *ctx, const syncm *m)
{
    (void)m;
    ((peer *)ctx)->welcome++;
}

static void ev_progress(void *ctx, uint32_t ch, uint64_t done, uint64_t total)
{
    (void)ch;
    peer *p = ctx;
    ck_assert_uint_le(done, total);
    /* within one transfer progress only grows; a smaller value starts anew */
    if (done <= p->progress_done || total != p->progress_total) p->progress_restarts++;
    p->progress_done = done;
    p->progress_total = total;
    p->progress_calls++;
}

static void ev_awareness(void *ctx, uint32_t ch, const uint8_t *b, size_t n)
{
    (void)ch;
    peer *p = ctx;
    if (p->aw) ck_assert_int_eq(aw_apply(p->aw, b, n, 0, NULL), TDM_OK);
}

static void ev_chat(void *ctx, uint32_t ch, const syncm_chat *r)
{
    (void)ch;
    peer *p = ctx;
    ck_assert_uint_gt(r->id, p->chat_max); /* each id once, in order */
    p->chat_max = r->id;
    if (p->nchat < 256) {
        p->chat_ids[p->nchat] = r->id;
        size_t n = r->text.n < 31 ? r->text.n : 31;
        memcpy(p->chat_texts[p->nchat], r->text.p, n);
        p->chat_texts[p->nchat][n] = '\0';
    }
    p->nchat++;
}

static void ev_chat_ack(void *ctx, uint32_t ch, uint64_t msg_id, uint64_t chat_id)
{
    (void)ch;
    peer *p = ctx;
    if (p->nchat_acks < 64) {
        p->chat_acks[p->nchat_acks][0] = msg_id;
        p->chat_acks[p->nchat_acks][1] = chat_id;
    }
    p->nchat_acks++;
}

static void ev_typing(void *ctx, uint32_t ch, const syncm_str *user, const syncm_str *disp, bool on)
{
    (void)ch, (void)disp;
    peer *p = ctx;
    if (on)
        p->typing_on++;
    else
        p->typing_off++;
    size_t n = user->n < 63 ? user->n : 63;
    memcpy(p->typing_user, user->p, n);
    p->typing_user[n] = '\0';
}

/* a peer with its own document (client id) and token */
static void peer_init(peer *p, uint64_t client_id, const char *token)
{
    memset(p, 0, sizeof *p);
    p->client_id = client_id;
    ck_assert_int_eq(crdt_doc_new(client_id, &p->doc), TDM_OK);
    sync_client_opts o = {.client_id = client_id};
    if (token) {
        o.token = (const uint8_t *)token;
        o.token_len = strlen(token);
    }
    sync_client_events ev = {.ctx = p,
                             .on_welcome = ev_welcome,
                             .on_error = ev_error,
                             .on_ack = ev_ack,
                             .on_synced = ev_synced,
                             .on_remote = ev_remote,
                             .on_progress = ev_progress,
                             .on_awareness = ev_awareness,
                             .on_chat = ev_chat,
                             .on_chat_ack = ev_chat_ack,
                             .on_typing = ev_typing};
    ck_assert_int_eq(sync_client_new(&o, &ev, &p->cl), TDM_OK);
}

static void peer_fini(peer *p)
{
    sync_client_free(p->cl);
    crdt_doc_free(p->doc);
    aw_free(p->aw);
    ot_op_free(p->err_op);
}

static void peer_connect(th *h, peer *p, uint64_t now)
{
    ck_assert_ptr_null(p->ss);
    ck_assert_int_eq(sync_session_new(h->srv, now, &p->ss), TDM_OK);
    ck_assert_int_eq(sync_client_connect(p->cl, now), TDM_OK);
}

static void peer_disconnect(peer *p, uint64_t now)
{
    if (p->ss) sync_session_close(p->ss, now);
    p->ss = NULL;
    sync_client_disconnect(p->cl);
}

static bool peer_has_error(const peer *p, uint64_t code)
{
    for (size_t i = 0; i < p->nerr && i < MAXERR; i++)
        if (p->errs[i] == code) return true;
    return false;
}

/* ------------------------------------------------------------ network */

/* fault injection for one direction of one delivery round */
typedef struct faults {
    unsigned drop, dup, reorder; /* per mille */
    uint64_t rng;
} faults;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

typedef struct fbuf {
    uint8_t *p;
    size_t n;
} fbuf;

/* deliver a batch with faults; returns frames delivered */
static size_t deliver(fbuf *v, size_t n, faults *f, th *h, peer *p, bool to_server, uint64_t now)
{
    if (f && f->reorder)
        for (size_t i = n; i > 1; i--) {
            if (rnd(&f->rng) % 1000 >= f->reorder) continue;
            size_t j = rnd(&f->rng) % i;
            fbuf t = v[i - 1];
            v[i - 1] = v[j];
            v[j] = t;
        }
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
        int copies = 1;
        if (f && rnd(&f->rng) % 1000 < f->drop) copies = 0;
        if (f && rnd(&f->rng) % 1000 < f->dup) copies = 2;
        for (int k = 0; k < copies; k++) {
            if (to_server) {
                if (p->ss) sync_session_recv(p->ss, v[i].p, v[i].n, now);
            } else {
                if (getenv("SYNC_TRACE")) {
                    syncm m;
                    if (syncm_decode(v[i].p, v[i].n, SYNCM_MAX_FRAME, &m) == TDM_OK)
                        fprintf(stderr, "-> %llu %s ch %u v %llu code %llu\n",
                                (unsigned long long)p->client_id, syncm_type_name(m.type),
                                m.channel, (unsigned long long)m.version,
                                (unsigned long long)m.code);
                    syncm_clear(&m);
                }
                tdm_err e = sync_client_recv(p->cl, v[i].p, v[i].n, now);
                if (e && getenv("SYNC_DEBUG")) {
                    syncm m;
                    syncm_decode(v[i].p, v[i].n, SYNCM_MAX_FRAME, &m);
                    fprintf(stderr, "client %llu recv %s: %s\n", (unsigned long long)p->client_id,
                            syncm_type_name(m.type), tdm_err_name(e));
                    syncm_clear(&m);
                }
            }
            moved++;
        }
        free(v[i].p);
    }
    (void)h;
    return moved;
}

/* move every frame between the peers and the server until nothing moves */
static void net_run(th *h, peer **ps, size_t np, faults *f, uint64_t now)
{
    for (int round = 0; round < 100000; round++) {
        size_t moved = 0;
        for (size_t i = 0; i < np; i++) {
            peer *p = ps[i];
            if (!p->ss) continue;
            fbuf v[512];
            size_t n = 0;
            const uint8_t *b;
            size_t len;
            while (n < 512 && sync_client_next_out(p->cl, &b, &len)) {
                v[n].p = malloc(len);
                memcpy(v[n].p, b, len);
                v[n++].n = len;
                sync_client_consume(p->cl);
            }
            moved += deliver(v, n, f, h, p, true, now);
            n = 0;
            while (p->ss && n < 512 && sync_session_next_out(p->ss, &b, &len)) {
                v[n].p = malloc(len);
                memcpy(v[n].p, b, len);
                v[n++].n = len;
                sync_session_consume(p->ss);
            }
            moved += deliver(v, n, f, h, p, false, now);
        }
        moved += th_complete(h);
        if (!moved) return;
    }
    ck_abort_msg("network did not settle");
}

static char *doc_text(crdt_doc *d)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(crdt_doc_text(d, &b), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "", 1), TDM_OK);
    return (char *)b.data;
}

static char *room_text(th *h, const char *name)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(sync_server_room_text(h->srv, name, &b), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "", 1), TDM_OK);
    return (char *)b.data;
}

static inline char *ot_text(peer *p, uint32_t ch)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(sync_client_ot_text(p->cl, ch, &b), TDM_OK);
    ck_assert_int_eq(tbuf_append(&b, "", 1), TDM_OK);
    return (char *)b.data;
}

#endif
