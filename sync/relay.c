/* relay.c - entry points for hosts that run several nodes serving the same
 * rooms (docs/SCALING.md): changes another node accepted are put into the
 * room here and reach the local sessions exactly as a local change would,
 * and the room's state vector and diffs are exposed for gap repair. The
 * host's transport between nodes is its own business (sync/ knows nothing
 * of it). While one of these calls runs, host->relay is not called (a
 * relayed change is not relayed back). */
#include "sync_internal.h"

#include <stdlib.h>
#include <string.h>

static sync_room *loaded(sync_server *srv, const char *name)
{
    if (!srv || !name) return NULL;
    size_t len = strlen(name);
    if (len == 0 || len > SYNCM_MAX_NAME) return NULL;
    return sync__room_find(srv, name, len);
}

tdm_err sync_server_apply_remote(sync_server *srv, const char *name, const uint8_t *p, size_t n,
                                 bool *changed)
{
    if (changed) *changed = false;
    if (!p || n == 0) return TDM_EINVAL;
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    if (sync__pending_full(srv)) return TDM_ETOOBIG;
    crdt_sv *before = crdt_sv_new();
    if (!before || crdt_doc_state_vector(r->doc, before)) {
        crdt_sv_free(before);
        return TDM_ENOMEM;
    }
    srv->relaying = true;
    size_t pend_before = crdt_doc_pending(r->doc);
    tdm_err e = crdt_doc_apply(r->doc, p, n);
    sync__room_commit(r, NULL, 0, 0);
    tbuf diff;
    tbuf_init(&diff, 0);
    bool grew = sync__room_publish(r, before, NULL, &diff);
    bool held = crdt_doc_pending(r->doc) != pend_before;
    if (grew || held) {
        /* stored like a local update (this node's log receives everything
         * it applies); no channel waits for the ack */
        sync_pending pr = {.kind = SYNC_P_UPDATE};
        if (e == TDM_OK)
            sync__persist(r, &pr, p, n, NULL);
        else if (grew)
            sync__persist(r, &pr, diff.data, diff.len, NULL);
    }
    tbuf_fini(&diff);
    crdt_sv_free(before);
    sync__pending_drain(srv);
    srv->relaying = false;
    if (changed) *changed = grew || held;
    return e;
}

tdm_err sync_server_room_sv(sync_server *srv, const char *name, tbuf *out)
{
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    crdt_sv *sv = crdt_sv_new();
    if (!sv) return TDM_ENOMEM;
    tdm_err e = crdt_doc_state_vector(r->doc, sv);
    if (!e) e = crdt_sv_encode(sv, out);
    crdt_sv_free(sv);
    return e;
}

tdm_err sync_server_room_compare(sync_server *srv, const char *name, const uint8_t *sv, size_t n,
                                 tbuf *diff, bool *behind)
{
    if (behind) *behind = false;
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    crdt_sv *remote = crdt_sv_new(), *own = crdt_sv_new();
    tdm_err e = remote && own ? TDM_OK : TDM_ENOMEM;
    if (!e) e = crdt_sv_decode(remote, sv, n);
    if (!e) e = crdt_doc_state_vector(r->doc, own);
    if (!e && behind) *behind = !crdt_sv_covers(own, remote);
    if (!e && !crdt_sv_covers(remote, own)) e = crdt_doc_diff(r->doc, remote, diff);
    crdt_sv_free(remote);
    crdt_sv_free(own);
    return e;
}

tdm_err sync_server_relay_awareness(sync_server *srv, const char *name, const uint8_t *p, size_t n,
                                    uint64_t now_ms)
{
    if (!p || n == 0) return TDM_EINVAL;
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    srv->relaying = true;
    tdm_err e = aw_apply(r->aw, p, n, now_ms, NULL);
    if (!e) {
        syncm m = {.type = SYNCM_AWARENESS, .data = {p, n}};
        sync__room_broadcast(r, &m, NULL, -1, SYNC_F_EPHEMERAL);
    }
    srv->relaying = false;
    return e;
}

tdm_err sync_server_awareness_local(sync_server *srv, const char *name, tbuf *out)
{
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    uint64_t ids[256];
    size_t n = 0;
    for (sync_chan *c = r->members; c && n + SYNC_AW_PER_CHAN <= 256; c = c->rnext)
        for (size_t i = 0; i < c->naw; i++) ids[n++] = c->aw_clients[i];
    if (n == 0) return TDM_OK;
    return aw_encode(r->aw, ids, n, out);
}

tdm_err sync_server_relay_typing(sync_server *srv, const char *name, const char *user,
                                 const char *display, bool on)
{
    if (!user || !display) return TDM_EINVAL;
    size_t ul = strlen(user), dl = strlen(display);
    if (ul == 0 || ul > SYNCM_MAX_USER || dl > SYNCM_MAX_USER) return TDM_EINVAL;
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    if (!(srv->o.caps & SYNC_CAP_TYPING)) return TDM_OK;
    syncm t = {.type = SYNCM_TYPING, .on = on};
    t.user.p = (const uint8_t *)user, t.user.n = ul;
    t.display.p = (const uint8_t *)display, t.display.n = dl;
    srv->relaying = true;
    sync__room_broadcast(r, &t, NULL, -1, SYNC_F_EPHEMERAL);
    sync_host *h = &srv->host;
    if (h->room_event) {
        sync_room_event ev = {.kind = SYNC_ROOM_TYPING,
                              .why = SYNC_WHY_CLIENT,
                              .user = user,
                              .display = display,
                              .on = on};
        h->room_event(h->ctx, r->name, &ev);
    }
    srv->relaying = false;
    return TDM_OK;
}

tdm_err sync_server_relay_chat(sync_server *srv, const char *name, const sync_chat_rec *rec)
{
    if (!rec || rec->id == 0 || !rec->user || rec->user_len == 0) return TDM_EINVAL;
    sync_room *r = loaded(srv, name);
    if (!r) return TDM_ENOTFOUND;
    if (rec->id <= r->last_chat_id) return TDM_OK; /* already seen here */
    r->last_chat_id = rec->id;
    if (!(srv->o.caps & SYNC_CAP_CHAT)) return TDM_OK;
    syncm b = {.type = SYNCM_CHAT_MSG, .chat_id = rec->id, .time_ms = rec->time_ms};
    b.user.p = rec->user, b.user.n = rec->user_len;
    b.display.p = rec->display, b.display.n = rec->display_len;
    b.text.p = rec->text, b.text.n = rec->text_len;
    srv->relaying = true;
    sync__room_broadcast(r, &b, NULL, -1, 0);
    sync_host *h = &srv->host;
    if (h->room_event) {
        sync_room_event ev = {.kind = SYNC_ROOM_CHAT, .chat = rec};
        h->room_event(h->ctx, r->name, &ev);
    }
    srv->relaying = false;
    return TDM_OK;
}

bool sync_server_relaying(const sync_server *srv)
{
    return srv && srv->relaying;
}

size_t sync_server_active_rooms(sync_server *srv, sync_room_fn fn, void *arg)
{
    size_t n = 0;
    if (!srv) return 0;
    for (size_t b = 0; b < srv->nbuckets; b++)
        for (sync_room *r = srv->buckets[b]; r; r = r->hnext) {
            n++;
            if (fn) fn(arg, r->name, r->nmembers);
        }
    return n;
}
