/* server.c - the hub: options, the room table, the server-wide FIFO of
 * changes waiting for durability (released strictly in acceptance order),
 * timers, and accessors. */
#include "sync_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define DEF(x, v)                                                                                  \
    do {                                                                                           \
        if (!(x)) (x) = (v);                                                                       \
    } while (0)

tdm_err sync_server_new(const sync_host *host, const sync_server_opts *opts, sync_server **out)
{
    if (!host || !out || !host->load_room || !host->fresh_client_id) return TDM_EINVAL;
    sync_server *srv = calloc(1, sizeof *srv);
    if (!srv) return TDM_ENOMEM;
    srv->host = *host;
    if (opts) srv->o = *opts;
    sync_server_opts *o = &srv->o;
    DEF(o->max_rooms, 1000);
    DEF(o->max_sessions, 10000);
    DEF(o->max_channels, 100);
    DEF(o->max_frame, SYNCM_DEFAULT_FRAME);
    DEF(o->max_hello_frame, 8192);
    DEF(o->max_out_bytes, (size_t)4 << 20);
    DEF(o->max_pending, 65536);
    DEF(o->max_stream_bytes, (size_t)512 << 20);
    DEF(o->ot_history, 1000);
    DEF(o->ot_history_bytes, (size_t)4 << 20);
    DEF(o->max_doc_bytes, (size_t)64 << 20);
    DEF(o->room_idle_ms, 30000);
    DEF(o->hello_timeout_ms, 10000);
    DEF(o->idle_timeout_ms, 120000);
    DEF(o->aw_timeout_ms, AW_TIMEOUT_MS);
    DEF(o->caps, SYNC_CAP_ALL);
    if (o->max_out_bytes < ((size_t)256 << 10)) o->max_out_bytes = (size_t)256 << 10;
    if (o->max_frame > SYNCM_MAX_FRAME) o->max_frame = SYNCM_MAX_FRAME;
    if (o->max_channels > SYNCM_MAX_CHANNEL) o->max_channels = SYNCM_MAX_CHANNEL;
    size_t nb = 16;
    while (nb < o->max_rooms && nb < ((size_t)1 << 16)) nb <<= 1;
    srv->nbuckets = nb;
    srv->buckets = calloc(nb, sizeof *srv->buckets);
    srv->pend = calloc(o->max_pending, sizeof *srv->pend);
    if (!srv->buckets || !srv->pend) {
        free(srv->buckets);
        free(srv->pend);
        free(srv);
        return TDM_ENOMEM;
    }
    *out = srv;
    return TDM_OK;
}

static sync_pending *pat(sync_server *srv, size_t i)
{
    return &srv->pend[(srv->pstart + i) % srv->o.max_pending];
}

static void pending_drop(sync_pending *p)
{
    free(p->chat);
    p->chat = NULL;
    if (p->room) p->room->npending--;
    if (p->chan) sync__chan_unref(p->chan);
}

void sync_server_free(sync_server *srv)
{
    if (!srv) return;
    while (srv->sessions) sync__session_free(srv->sessions, false, srv->now_ms);
    while (srv->pcount) {
        pending_drop(pat(srv, 0));
        srv->pstart = (srv->pstart + 1) % srv->o.max_pending;
        srv->pcount--;
    }
    for (size_t b = 0; b < srv->nbuckets; b++) {
        while (srv->buckets[b]) {
            sync_room *r = srv->buckets[b];
            srv->buckets[b] = r->hnext;
            sync__room_free(r);
        }
    }
    free(srv->buckets);
    free(srv->pend);
    free(srv);
}

/* ------------------------------------------------------------ room table */

uint64_t sync__hash(const sync_server *srv, const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ srv->o.hash_seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)name[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

sync_room *sync__room_find(sync_server *srv, const char *name, size_t len)
{
    uint64_t h = sync__hash(srv, name, len);
    for (sync_room *r = srv->buckets[h & (srv->nbuckets - 1)]; r; r = r->hnext)
        if (r->hash == h && r->name_len == len && memcmp(r->name, name, len) == 0) return r;
    return NULL;
}

void sync__room_insert(sync_server *srv, sync_room *r)
{
    sync_room **b = &srv->buckets[r->hash & (srv->nbuckets - 1)];
    r->hnext = *b;
    *b = r;
    srv->nrooms++;
}

/* unlink and free r; tells the host */
static void room_evict(sync_server *srv, sync_room *r)
{
    sync_room **pp = &srv->buckets[r->hash & (srv->nbuckets - 1)];
    while (*pp != r) pp = &(*pp)->hnext;
    *pp = r->hnext;
    srv->nrooms--;
    char name[SYNCM_MAX_NAME + 1];
    memcpy(name, r->name, r->name_len + 1);
    sync__room_free(r);
    if (srv->host.room_closed) srv->host.room_closed(srv->host.ctx, name);
}

bool sync__room_evict_one(sync_server *srv)
{
    sync_room *best = NULL;
    for (size_t b = 0; b < srv->nbuckets; b++)
        for (sync_room *r = srv->buckets[b]; r; r = r->hnext)
            if (!r->nmembers && !r->npending && (!best || r->empty_since < best->empty_since))
                best = r;
    if (!best) return false;
    room_evict(srv, best);
    return true;
}

/* ------------------------------------------------------------ pending */

uint64_t sync__token(sync_server *srv)
{
    return ++srv->next_token;
}

bool sync__pending_full(const sync_server *srv)
{
    return srv->pcount >= srv->o.max_pending;
}

tdm_err sync__pending_add(sync_server *srv, const sync_pending *p, uint64_t *token)
{
    if (sync__pending_full(srv)) return TDM_ETOOBIG;
    sync_pending *q = pat(srv, srv->pcount);
    *q = *p;
    q->token = sync__token(srv);
    if (q->room) q->room->npending++;
    if (q->chan) q->chan->npending++;
    srv->pcount++;
    *token = q->token;
    return TDM_OK;
}

static sync_pending *pending_find(sync_server *srv, uint64_t token)
{
    size_t lo = 0, hi = srv->pcount;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t t = pat(srv, mid)->token;
        if (t == token) return pat(srv, mid);
        if (t < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void sync__pending_drain(sync_server *srv)
{
    while (srv->pcount && pat(srv, 0)->done) {
        sync_pending p = *pat(srv, 0);
        srv->pstart = (srv->pstart + 1) % srv->o.max_pending;
        srv->pcount--;
        sync__release(srv, &p);
        pending_drop(&p);
    }
}

tdm_err sync__pending_complete(sync_server *srv, uint64_t token, tdm_err status, uint64_t id,
                               bool dup)
{
    sync_pending *p = pending_find(srv, token);
    if (!p || p->done) return TDM_ENOTFOUND;
    p->done = true;
    p->status = status;
    p->id = id;
    p->dup = dup;
    sync__pending_drain(srv);
    return TDM_OK;
}

tdm_err sync_server_durable(sync_server *srv, uint64_t token, tdm_err status, uint64_t id,
                            bool duplicate)
{
    assert(srv);
    return sync__pending_complete(srv, token, status, id, duplicate);
}

/* ------------------------------------------------------------ timers */

tdm_err sync_server_tick(sync_server *srv, uint64_t now_ms)
{
    assert(srv);
    srv->now_ms = now_ms;
    for (size_t b = 0; b < srv->nbuckets; b++) {
        sync_room *r = srv->buckets[b];
        while (r) {
            sync_room *next = r->hnext;
            sync__room_tick(r, now_ms);
            if (!r->nmembers && !r->npending && now_ms - r->empty_since >= srv->o.room_idle_ms &&
                now_ms >= r->empty_since)
                room_evict(srv, r);
            r = next;
        }
    }
    for (sync_session *ss = srv->sessions; ss; ss = ss->next) {
        if (ss->closing) continue;
        if (ss->state == SYNC_S_NEW && now_ms >= ss->created_ms &&
            now_ms - ss->created_ms >= srv->o.hello_timeout_ms)
            sync__close(ss, SYNC_CLOSE_HELLO_TIMEOUT, "no HELLO");
        else if (now_ms >= ss->last_recv_ms && now_ms - ss->last_recv_ms >= srv->o.idle_timeout_ms)
            sync__close(ss, SYNC_CLOSE_IDLE, "idle");
    }
    return TDM_OK;
}

/* ------------------------------------------------------------ accessors */

void sync_server_get_stats(const sync_server *srv, sync_server_stats *st)
{
    *st = srv->st;
    st->rooms = srv->nrooms;
    st->sessions = srv->nsessions;
    st->pending = srv->pcount;
    st->stream_bytes = srv->stream_bytes;
}

crdt_doc *sync_server_room_doc(sync_server *srv, const char *name)
{
    sync_room *r = sync__room_find(srv, name, strlen(name));
    return r ? r->doc : NULL;
}

tdm_err sync_server_room_text(sync_server *srv, const char *name, tbuf *out)
{
    crdt_doc *d = sync_server_room_doc(srv, name);
    return d ? crdt_doc_text(d, out) : TDM_ENOTFOUND;
}

uint64_t sync_server_room_version(sync_server *srv, const char *name)
{
    sync_room *r = sync__room_find(srv, name, strlen(name));
    return r ? r->version : 0;
}

/* the live member that introduced awareness client `client`, else NULL */
static const sync_chan *presence_owner(const sync_room *r, uint64_t client)
{
    for (const sync_chan *c = r->members; c; c = c->rnext)
        for (size_t i = 0; i < c->naw; i++)
            if (c->aw_clients[i] == client) return c;
    return NULL;
}

tdm_err sync_server_room_presence(sync_server *srv, const char *name, sync_room_event_fn emit,
                                  void *arg)
{
    if (!srv || !name || !emit) return TDM_EINVAL;
    sync_room *r = sync__room_find(srv, name, strlen(name));
    if (!r) return TDM_ENOTFOUND;
    size_t pos = 0;
    aw_entry e;
    while (aw_next(r->aw, &pos, &e)) {
        const sync_chan *o = presence_owner(r, e.client);
        sync_room_event ev = {.kind = SYNC_ROOM_PRESENCE,
                              .client = e.client,
                              .state = e.state,
                              .state_len = e.len,
                              .user = o ? o->auth.user : "",
                              .display = o ? o->auth.display : ""};
        emit(arg, &ev);
    }
    for (const sync_chan *c = r->members; c; c = c->rnext) {
        if (!c->typing || c->dead) continue;
        sync_room_event ev = {
            .kind = SYNC_ROOM_TYPING, .user = c->auth.user, .display = c->auth.display, .on = true};
        emit(arg, &ev);
    }
    return TDM_OK;
}

tdm_err sync_server_room_users(sync_server *srv, const char *name, sync_room_user_fn emit,
                               void *arg)
{
    if (!srv || !name || !emit) return TDM_EINVAL;
    const sync_room *r = sync__room_find(srv, name, strlen(name));
    if (!r) return TDM_ENOTFOUND;
    for (const sync_chan *c = r->members; c; c = c->rnext)
        if (!c->dead) emit(arg, c->auth.user, c->auth.display);
    return TDM_OK;
}
