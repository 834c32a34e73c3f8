/* room.c - one document shared by the sessions subscribed to it: loading
 * (before anything is answered), membership, broadcasts, the change
 * observer that numbers versions, awareness with per-channel ownership, and
 * per-room timers. */
#include "sync_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ observers */

static void on_doc_change(void *ctx, const ot_op *delta, tdm_err err, bool local)
{
    (void)err;
    (void)local;
    sync_room *r = ctx;
    r->delta_seen = true;
    if (r->delta_lost) return;
    if (!delta) {
        r->delta_lost = true;
        return;
    }
    ot_op *next = NULL;
    tdm_err e = r->delta ? ot_op_compose(r->delta, delta, &next) : ot_op_clone(delta, &next);
    if (e) {
        r->delta_lost = true;
        return;
    }
    ot_op_free(r->delta);
    r->delta = next;
}

static bool chan_owns(const sync_chan *c, uint64_t client, size_t *at)
{
    for (size_t i = 0; i < c->naw; i++)
        if (c->aw_clients[i] == client) {
            if (at) *at = i;
            return true;
        }
    return false;
}

/* the member that introduced awareness client `client`, else NULL */
static sync_chan *aw_owner(sync_room *r, uint64_t client)
{
    for (sync_chan *c = r->members; c; c = c->rnext)
        if (chan_owns(c, client, NULL)) return c;
    return NULL;
}

/* host->room_event for awareness client `client` (present: its state) */
static void aw_event(sync_room *r, uint64_t client, const sync_chan *owner, bool left,
                     sync_room_event_why why)
{
    sync_host *h = &r->srv->host;
    sync_room_event ev = {.kind = left ? SYNC_ROOM_PRESENCE_LEFT : SYNC_ROOM_PRESENCE,
                          .why = why,
                          .client = client,
                          .user = owner ? owner->auth.user : "",
                          .display = owner ? owner->auth.display : ""};
    aw_entry e;
    if (!left) {
        if (aw_get(r->aw, client, &e) != TDM_OK) return;
        ev.state = e.state;
        ev.state_len = e.len;
    }
    h->room_event(h->ctx, r->name, &ev);
}

/* Tell every member that awareness clients ids[0..n) are gone: their
 * remembered clocks with a null state (the equal-clock null rule removes
 * them everywhere). */
static void aw_broadcast_removed(sync_room *r, const uint64_t *ids, size_t n)
{
    tbuf b;
    tbuf_init(&b, SYNCM_MAX_FRAME);
    if (aw_encode(r->aw, ids, n, &b) == TDM_OK) {
        syncm m = {.type = SYNCM_AWARENESS, .data = {b.data, b.len}};
        sync__room_broadcast(r, &m, NULL, -1, 0);
    }
    tbuf_fini(&b);
}

static void relay_removed(sync_room *r, const uint64_t *ids, size_t n);

static void on_aw_change(void *ud, const aw_change *ch)
{
    sync_room *r = ud;
    bool report = r->srv->host.room_event != NULL;
    sync_room_event_why why = ch->origin == AW_ORIGIN_TIMEOUT  ? SYNC_WHY_EXPIRED
                              : ch->origin == AW_ORIGIN_REMOVE ? SYNC_WHY_LEFT
                                                               : SYNC_WHY_CLIENT;
    for (size_t k = 0; k < ch->n_removed; k++) {
        sync_chan *owner = NULL;
        for (sync_chan *c = r->members; c; c = c->rnext) {
            size_t i;
            if (chan_owns(c, ch->removed[k], &i)) {
                c->aw_clients[i] = c->aw_clients[--c->naw];
                owner = c;
            }
        }
        /* a leaving channel is no longer a member: it is the origin */
        if (report) aw_event(r, ch->removed[k], owner ? owner : r->aw_origin, true, why);
    }
    /* expired entries: the others drop them now (no ghost cursors of a tab
     * that stopped renewing) */
    if (ch->origin == AW_ORIGIN_TIMEOUT && ch->n_removed)
        aw_broadcast_removed(r, ch->removed, ch->n_removed);
    sync_chan *o = r->aw_origin;
    if (ch->origin == AW_ORIGIN_REMOTE && o)
        for (size_t k = 0; k < ch->n_added; k++)
            if (!chan_owns(o, ch->added[k], NULL) && o->naw < SYNC_AW_PER_CHAN)
                o->aw_clients[o->naw++] = ch->added[k];
    if (!report) return;
    for (size_t k = 0; k < ch->n_added; k++) {
        sync_chan *w = aw_owner(r, ch->added[k]);
        aw_event(r, ch->added[k], w ? w : o, false, why);
    }
    for (size_t k = 0; k < ch->n_updated; k++) {
        sync_chan *w = aw_owner(r, ch->updated[k]);
        aw_event(r, ch->updated[k], w ? w : o, false, why);
    }
}

/* ------------------------------------------------------------ lifecycle */

void sync__room_free(sync_room *r)
{
    if (!r) return;
    crdt_doc_free(r->doc);
    aw_free(r->aw);
    sync__hist_clear(r);
    free(r->hist);
    ot_op_free(r->delta);
    free(r);
}

static sync_errcode load(sync_server *srv, sync_room *r)
{
    crdt_doc_opts dopts = {.client = srv->host.fresh_client_id(srv->host.ctx),
                           .max_update_bytes = srv->o.max_doc_bytes};
    sync_room_info info = {0};
    crdt_doc *doc = NULL;
    sync_load_result res = srv->host.load_room(srv->host.ctx, r->name, &dopts, &doc, &info);
    if (res != SYNC_LOAD_OK) {
        crdt_doc_free(doc); /* never keep what a failed load left behind */
        doc = NULL;
    }
    if (res == SYNC_LOAD_UNKNOWN) return SYNC_ERR_UNKNOWN_DOCUMENT;
    if (res == SYNC_LOAD_ERROR || (res == SYNC_LOAD_OK && !doc)) return SYNC_ERR_LOAD_FAILED;
    if (res != SYNC_LOAD_OK && res != SYNC_LOAD_NEW) return SYNC_ERR_LOAD_FAILED;
    if (res == SYNC_LOAD_NEW) {
        if (crdt_doc_new_opts(&dopts, &doc)) return SYNC_ERR_INTERNAL;
        r->is_new = true; /* info.version: 0 unless the host set a first version */
    }
    r->doc = doc;
    r->version = r->hbase = info.version;
    r->last_chat_id = info.last_chat_id;
    aw_opts ao = {.client = crdt_doc_client(doc),
                  .hash_seed = srv->o.hash_seed ^ r->hash,
                  .timeout_ms = srv->o.aw_timeout_ms};
    if (aw_new_opts(&ao, &r->aw)) return SYNC_ERR_INTERNAL;
    aw_set_observer(r->aw, on_aw_change, r);
    crdt_doc_observe(doc, on_doc_change, r);
    return 0;
}

tdm_err sync__room_get(sync_server *srv, const char *name, size_t len, sync_room **out,
                       sync_errcode *code)
{
    sync_room *r = sync__room_find(srv, name, len);
    if (r) {
        *out = r;
        return TDM_OK;
    }
    if (srv->nrooms >= srv->o.max_rooms && !sync__room_evict_one(srv)) {
        *code = SYNC_ERR_SERVER_BUSY;
        return TDM_ETOOBIG;
    }
    r = calloc(1, sizeof *r);
    if (r) r->hist = calloc(srv->o.ot_history, sizeof *r->hist);
    if (!r || !r->hist) {
        free(r);
        *code = SYNC_ERR_INTERNAL;
        return TDM_ENOMEM;
    }
    r->srv = srv;
    memcpy(r->name, name, len);
    r->name[len] = '\0';
    r->name_len = len;
    r->hash = sync__hash(srv, name, len);
    r->hcap = srv->o.ot_history;
    r->empty_since = srv->now_ms;
    sync_errcode c = load(srv, r);
    if (c) {
        sync__room_free(r);
        *code = c;
        return c == SYNC_ERR_INTERNAL ? TDM_ENOMEM : TDM_ENOTFOUND;
    }
    sync__room_insert(srv, r);
    *out = r;
    return TDM_OK;
}

void sync__room_join(sync_room *r, sync_chan *c)
{
    c->room = r;
    c->rprev = NULL;
    c->rnext = r->members;
    if (r->members) r->members->rprev = c;
    r->members = c;
    r->nmembers++;
}

void sync__room_leave(sync_room *r, sync_chan *c, uint64_t now_ms)
{
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        r->members = c->rnext;
    if (c->rnext) c->rnext->rprev = c->rprev;
    c->rprev = c->rnext = NULL;
    r->nmembers--;
    if (!r->nmembers) r->empty_since = now_ms;
    c->dead = true;

    /* the connection's cursors go with it, everywhere (no ghost cursors) */
    if (c->naw) {
        uint64_t ids[SYNC_AW_PER_CHAN];
        size_t n = c->naw;
        memcpy(ids, c->aw_clients, n * sizeof ids[0]);
        c->naw = 0;
        r->aw_origin = c; /* names the owner of the removed entries (room_event) */
        tdm_err e = aw_remove_clients(r->aw, ids, n, now_ms);
        r->aw_origin = NULL;
        if (e == TDM_OK) aw_broadcast_removed(r, ids, n);
        if (e == TDM_OK) relay_removed(r, ids, n);
    }
    sync__typing_stop(c, SYNC_WHY_LEFT); /* the others see the indicator go */
}

/* host->relay of the removal of ids[0..n) (other nodes drop them too) */
static void relay_removed(sync_room *r, const uint64_t *ids, size_t n)
{
    sync_host *h = &r->srv->host;
    if (!h->relay || r->srv->relaying) return;
    tbuf b;
    tbuf_init(&b, SYNCM_MAX_FRAME);
    if (aw_encode(r->aw, ids, n, &b) == TDM_OK && b.len)
        h->relay(h->ctx, r->name, SYNC_RELAY_AWARENESS, b.data, b.len);
    tbuf_fini(&b);
}

/* ------------------------------------------------------------ broadcast */

#define BCACHE 4 /* encoded frames kept per broadcast, by channel id */

void sync__room_broadcast(sync_room *r, const syncm *m, sync_chan *skip, int mode, unsigned flags)
{
    struct {
        uint32_t ch;
        sync_blob *b;
    } cache[BCACHE];
    size_t nc = 0;
    syncm x = *m;
    for (sync_chan *c = r->members; c; c = c->rnext) {
        if (c == skip || c->dead || !c->sess || c->sess->closing) continue;
        if (mode >= 0 && c->mode != (unsigned)mode) continue;
        sync_blob *b = NULL;
        for (size_t i = 0; i < nc; i++)
            if (cache[i].ch == c->id) b = cache[i].b;
        bool own = false;
        if (!b) {
            x.channel = c->id;
            if (sync__blob(&x, &b)) continue;
            if (nc < BCACHE) {
                cache[nc].ch = c->id;
                cache[nc++].b = b;
            } else {
                own = true;
            }
        }
        sync__chan_send_blob(c, b, flags);
        if (own) sync__blob_unref(b);
    }
    for (size_t i = 0; i < nc; i++) sync__blob_unref(cache[i].b);
}

/* ------------------------------------------------------------ versions */

void sync__room_commit(sync_room *r, sync_chan *origin, uint64_t src, uint64_t op_id)
{
    if (!r->delta_seen) return;
    sync_server *srv = r->srv;
    ot_op *d = r->delta;
    bool lost = r->delta_lost || !d;
    r->delta = NULL;
    r->delta_seen = r->delta_lost = false;
    uint64_t from = r->version++;
    if (lost) {
        /* the change could not be described: history restarts here and every
         * OT member is resynchronized from a snapshot */
        ot_op_free(d);
        sync__hist_clear(r);
        r->hbase = r->version;
        r->ot_persist_failed = true;
        for (sync_chan *c = r->members; c; c = c->rnext)
            if (c->mode == SYNC_MODE_OT && !c->dead && c->sess) sync__ot_snapshot(c);
        return;
    }
    if (srv->host.persist_ot && !r->ot_persist_failed) {
        tbuf b;
        tbuf_init(&b, 0);
        tdm_err e = ot_op_encode(d, &b);
        if (!e) e = srv->host.persist_ot(srv->host.ctx, r->name, from, b.data, b.len, src, op_id);
        if (e) r->ot_persist_failed = true;
        tbuf_fini(&b);
    }
    syncm m = {.type = SYNCM_OT_REMOTE, .version = r->version, .op = d, .src = src, .op_id = op_id};
    sync__room_broadcast(r, &m, origin, SYNC_MODE_OT, SYNC_F_ORDERED);
    sync__hist_push(r, d, src, op_id);
}

/* ------------------------------------------------------------ awareness */

tdm_err sync__room_awareness(sync_room *r, sync_chan *c, const uint8_t *p, size_t n,
                             uint64_t now_ms)
{
    r->aw_origin = c;
    tdm_err e = aw_apply(r->aw, p, n, now_ms, NULL);
    r->aw_origin = NULL;
    if (e) return e;
    syncm m = {.type = SYNCM_AWARENESS, .data = {p, n}};
    sync__room_broadcast(r, &m, c, -1, SYNC_F_EPHEMERAL);
    sync_host *h = &r->srv->host;
    if (h->relay && !r->srv->relaying) h->relay(h->ctx, r->name, SYNC_RELAY_AWARENESS, p, n);
    return TDM_OK;
}

void sync__room_tick(sync_room *r, uint64_t now_ms)
{
    aw_tick(r->aw, now_ms, NULL);
    for (sync_chan *c = r->members; c; c = c->rnext)
        if (c->typing && now_ms >= c->typing_until) sync__typing_stop(c, SYNC_WHY_EXPIRED);
}
