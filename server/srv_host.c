/* srv_host.c - the sync_host of the server, on storage/:
 *   load_room       store_doc_load (synchronous read; NOTFOUND -> new room)
 *   persist_update  store_append_async      } callbacks run on the storage
 *   persist_chat    store_chat_append_async } writer thread and only push
 *   persist_ot      held until the room's next persist_update, then both go
 *                   as ONE job (store_append_ot_async: one transaction, so
 *                   a crash cannot keep the one without the other); an OT
 *                   record that no update of its room follows (rare: an
 *                   out-of-memory path) is written alone (store_ot_put_async,
 *                   no callback) before the next job of any kind, before an
 *                   ot_history read and in srv_host_drain (also at shutdown,
 *                   before the store closes)
 *   chat_history    store_chat_range, ot_history store_ot_range_rec (reads)
 *   fresh_client_id (start-up time in ms << 20) | counter
 *   room_event      srv_room_event (per-room SSE streams, srv_room_events.c)
 * The service thread applies inbox entries with sync_server_durable in
 * srv_host_drain (woken by lws_cancel_service): it never waits on a commit.
 */
#include "srv_internal.h"
#include "srv_redis.h"

#include <stdlib.h>
#include <string.h>

/* One async job in flight; freed by its callback. */
typedef struct srv_job {
    srv_inbox *inbox;
    uint64_t token;
} srv_job;

/* Writer thread. */
static void job_done(void *ctx, tdm_err err, uint64_t id, bool duplicate)
{
    srv_job *j = ctx;
    srv_done d = {j->token, err, id, duplicate};
    srv_inbox *in = j->inbox;
    free(j);
    srv_inbox_push(in, &d);
}

static srv_job *job_new(srv *s, uint64_t token)
{
    srv_job *j = malloc(sizeof *j);
    if (j) {
        j->inbox = &s->inbox;
        j->token = token;
    }
    return j;
}

static uint64_t host_fresh_client_id(void *ctx)
{
    srv *s = ctx;
    /* 2^20 ids per millisecond of start-up time: when a run uses them up,
     * move on to a later millisecond that no earlier run can have used. */
    if (s->id_count >= ((uint64_t)1 << 20)) {
        uint64_t now = srv_now_ms();
        s->id_base = now > s->id_base + 1 ? now : s->id_base + 1;
        s->id_count = 0;
    }
    return (s->id_base << 20) | s->id_count++;
}

static sync_load_result host_load_room(void *ctx, const char *name, const crdt_doc_opts *opts,
                                       crdt_doc **doc, sync_room_info *info)
{
    srv *s = ctx;
    store_doc_meta meta;
    tdm_err e = store_doc_load(s->st, name, strlen(name), opts, doc, &meta);
    if (e == TDM_ENOTFOUND) return SYNC_LOAD_NEW;
    if (e) {
        lwsl_err("tandem: loading room '%s' failed: %s\n", name, tdm_strerror(e));
        return SYNC_LOAD_ERROR;
    }
    info->version = meta.ot_next;
    info->last_chat_id = meta.chat_next_id ? meta.chat_next_id - 1 : 0;
    return SYNC_LOAD_OK;
}

/* An OT record waits in s->ot_held for its room's update (sync calls
 * persist_ot just before the persist_update of the same change). */
static void held_clear(srv *s)
{
    free(s->ot_held.op);
    s->ot_held.op = NULL;
    s->ot_held.held = false;
}

/* write a held OT record on its own (no update of its room followed it) */
static void held_flush(srv *s)
{
    if (!s->ot_held.held) return;
    store_ot_rec rec = {.version = s->ot_held.version,
                        .src = s->ot_held.src,
                        .op_id = s->ot_held.op_id,
                        .op = s->ot_held.op,
                        .op_len = s->ot_held.op_len};
    const char *name = s->ot_held.name;
    tdm_err e = store_ot_put_async(s->st, name, strlen(name), &rec, NULL, NULL);
    if (e)
        lwsl_warn("tandem: OT history of '%s' at %llu not stored: %s\n", name,
                  (unsigned long long)rec.version, tdm_strerror(e));
    held_clear(s);
}

static tdm_err host_persist_update(void *ctx, const char *name, const uint8_t *p, size_t n,
                                   uint64_t token)
{
    srv *s = ctx;
    bool with_ot = s->ot_held.held && strcmp(s->ot_held.name, name) == 0;
    if (!with_ot) held_flush(s);
    srv_job *j = job_new(s, token);
    if (!j) {
        held_flush(s);
        return TDM_ENOMEM;
    }
    tdm_err e;
    if (with_ot) {
        /* the change's update and its OT record: one job, one transaction */
        store_ot_rec rec = {.version = s->ot_held.version,
                            .src = s->ot_held.src,
                            .op_id = s->ot_held.op_id,
                            .op = s->ot_held.op,
                            .op_len = s->ot_held.op_len};
        e = store_append_ot_async(s->st, name, strlen(name), p, n, &rec, job_done, j);
        held_clear(s); /* the job holds a copy; on failure neither is stored */
    } else {
        e = store_append_async(s->st, name, strlen(name), p, n, job_done, j);
    }
    if (e)
        free(j);
    else
        s->n.updates_persisted++;
    return e;
}

static tdm_err host_persist_ot(void *ctx, const char *name, uint64_t version, const uint8_t *op,
                               size_t n, uint64_t src, uint64_t op_id)
{
    srv *s = ctx;
    held_flush(s);
    size_t nl = strlen(name);
    if (!op || n == 0 || nl >= sizeof s->ot_held.name) return TDM_EINVAL;
    uint8_t *copy = malloc(n);
    if (!copy) return TDM_ENOMEM;
    memcpy(copy, op, n);
    memcpy(s->ot_held.name, name, nl + 1);
    s->ot_held.version = version;
    s->ot_held.src = src;
    s->ot_held.op_id = op_id;
    s->ot_held.op = copy;
    s->ot_held.op_len = n;
    s->ot_held.held = true;
    return TDM_OK;
}

/* The store deduplicates chat by (user, cmid): cmid is the sender's client
 * id and message id, 8 bytes each, big-endian. */
static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static tdm_err host_persist_chat(void *ctx, const char *name, const sync_chat_rec *rec,
                                 uint64_t token)
{
    srv *s = ctx;
    held_flush(s);
    uint8_t cmid[16];
    put_be64(cmid, rec->client_id);
    put_be64(cmid + 8, rec->msg_id);
    store_chat_msg m = {0};
    m.time_ms = (int64_t)rec->time_ms;
    m.user = rec->user, m.user_len = rec->user_len;
    m.display = rec->display, m.display_len = rec->display_len;
    m.cmid = cmid, m.cmid_len = sizeof cmid;
    m.text = rec->text, m.text_len = rec->text_len;
    srv_job *j = job_new(s, token);
    if (!j) return TDM_ENOMEM;
    tdm_err e = store_chat_append_async(s->st, name, strlen(name), &m, job_done, j);
    if (e)
        free(j);
    else
        s->n.chats_persisted++;
    return e;
}

typedef struct chat_walk {
    sync_chat_emit emit;
    void *arg;
    tdm_err err;
} chat_walk;

void srv_host_chat_rec(const store_chat_msg *m, sync_chat_rec *r)
{
    memset(r, 0, sizeof *r);
    r->id = m->id;
    r->time_ms = (uint64_t)m->time_ms;
    if (m->cmid_len == 16) {
        r->client_id = get_be64(m->cmid);
        r->msg_id = get_be64(m->cmid + 8);
    }
    r->user = m->user, r->user_len = m->user_len;
    r->display = m->display, r->display_len = m->display_len;
    r->text = m->text, r->text_len = m->text_len;
}

static int chat_one(void *ctx, const store_chat_msg *m)
{
    chat_walk *w = ctx;
    sync_chat_rec r;
    srv_host_chat_rec(m, &r);
    w->err = w->emit(w->arg, &r);
    return w->err != TDM_OK;
}

static tdm_err host_chat_history(void *ctx, const char *name, uint64_t after, size_t limit,
                                 sync_chat_emit emit, void *arg)
{
    srv *s = ctx;
    chat_walk w = {emit, arg, TDM_OK};
    tdm_err e = store_chat_range(s->st, name, strlen(name), after, limit, chat_one, &w);
    if (e == TDM_ENOTFOUND) return TDM_OK;
    return e ? e : w.err;
}

typedef struct ot_walk {
    sync_ot_emit emit;
    void *arg;
    tdm_err err;
} ot_walk;

static int ot_one(void *ctx, const store_ot_rec *r)
{
    ot_walk *w = ctx;
    w->err = w->emit(w->arg, r->version, r->op, r->op_len, r->src, r->op_id);
    return w->err != TDM_OK;
}

static tdm_err host_ot_history(void *ctx, const char *name, uint64_t from, sync_ot_emit emit,
                               void *arg)
{
    srv *s = ctx;
    ot_walk w = {emit, arg, TDM_OK};
    held_flush(s); /* queued; the read sees what is committed */
    tdm_err e = store_ot_range_rec(s->st, name, strlen(name), from, ot_one, &w);
    if (e == TDM_ENOTFOUND) return TDM_ERANGE;
    return e ? e : w.err;
}

void srv_host_make(srv *s, sync_host *h)
{
    memset(h, 0, sizeof *h);
    h->ctx = s;
    h->authorize = srv_access_ws;
    h->fresh_client_id = host_fresh_client_id;
    h->load_room = host_load_room;
    h->persist_update = host_persist_update;
    h->persist_ot = host_persist_ot;
    h->persist_chat = host_persist_chat;
    h->chat_history = host_chat_history;
    h->ot_history = host_ot_history;
    h->rate_limit = srv_access_rate;
    h->room_event = srv_room_event;
}

void srv_host_drain(srv *s)
{
    held_flush(s); /* (also the last call before the store is closed) */
    srv_done batch[256];
    size_t n;
    while ((n = srv_inbox_take(&s->inbox, batch, sizeof batch / sizeof batch[0])) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (batch[i].err) s->n.storage_errors++;
            tdm_err e = sync_server_durable(s->sync, batch[i].token, batch[i].err, batch[i].id,
                                            batch[i].duplicate);
            if (e)
                lwsl_warn("tandem: durable(%llu): %s\n", (unsigned long long)batch[i].token,
                          tdm_strerror(e));
        }
    }
    srv_redis_drain(s); /* several nodes: what the Redis threads handed over */
    /* the acks and whatever else sync queued go at the end of the loop's
     * turn (srv_ws_flush in srv_service) */
}
