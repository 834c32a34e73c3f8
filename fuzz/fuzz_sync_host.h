/* fuzz_sync_host.h - an in-memory sync_host for the sync harnesses (fuzz/
 * only; the minimum of tests/test_sync_harness.h, without check.h and with
 * every buffer bounded, since names, tokens and payloads come from the fuzz
 * input).
 *
 * Documents live in memory: their accepted updates, OT operations and chat
 * records. Writes complete through fh_complete (in order); fh_fini frees
 * everything. Tokens are "user:w" / "user:r" / "user:n" (write, read, none);
 * an empty token is an anonymous writer; anything else is refused.
 */
#ifndef TANDEM_FUZZ_SYNC_HOST_H
#define TANDEM_FUZZ_SYNC_HOST_H

#include "fuzz_util.h"
#include "session.h"

#define FH_MAX_DOCS 64
#define FH_MAX_TOKS 65536

typedef struct fh_blob {
    uint8_t *p;
    size_t n;
    uint64_t src, op_id; /* OT history: the submitter persist_ot got */
} fh_blob;

typedef struct fh_chat {
    uint64_t id, time_ms, client_id, msg_id;
    char user[SYNCM_MAX_USER + 1];
} fh_chat;

typedef struct fh_doc {
    char name[SYNCM_MAX_NAME + 1];
    fh_blob *updates;
    size_t nupdates;
    fh_blob *ops; /* ops[i] turns version ot_first + i into + 1 */
    size_t nops;
    uint64_t ot_first;
    fh_chat *chats;
    size_t nchats;
    bool loaded; /* load_room was called and room_closed not since */
} fh_doc;

typedef struct fh_tok {
    uint64_t token, id;
    bool dup;
} fh_tok;

typedef struct fh_host {
    sync_server *srv;
    fh_doc docs[FH_MAX_DOCS];
    size_t ndocs;
    fh_tok *toks;
    size_t ntoks;
    uint64_t next_client;
    size_t loads, closed;
} fh_host;

static fh_doc *fh_find(fh_host *h, const char *name, bool create)
{
    for (size_t i = 0; i < h->ndocs; i++)
        if (strcmp(h->docs[i].name, name) == 0) return &h->docs[i];
    if (!create) return NULL;
    FZ_CHECK(h->ndocs < FH_MAX_DOCS);
    fh_doc *d = &h->docs[h->ndocs++];
    memset(d, 0, sizeof *d);
    FZ_CHECK(strlen(name) <= SYNCM_MAX_NAME);
    strcpy(d->name, name);
    return d;
}

static void fh_blob_push(fh_blob **v, size_t *n, const uint8_t *p, size_t len)
{
    fh_blob *nv = realloc(*v, (*n + 1) * sizeof **v);
    FZ_CHECK(nv);
    *v = nv;
    nv[*n].p = malloc(len ? len : 1);
    FZ_CHECK(nv[*n].p);
    if (len) memcpy(nv[*n].p, p, len);
    nv[*n].n = len;
    (*n)++;
}

static tdm_err fh_authorize(void *ctx, const sync_session *s, const uint8_t *token, size_t n,
                            const char *name, sync_auth *out)
{
    (void)ctx, (void)s, (void)name;
    if (n == 0) {
        out->access = SYNC_ACCESS_WRITE;
        strcpy(out->user, "anon");
        strcpy(out->display, "Anon");
        return TDM_OK;
    }
    const uint8_t *colon = memchr(token, ':', n);
    size_t ul = colon ? (size_t)(colon - token) : 0;
    if (!colon || ul == 0 || ul > SYNCM_MAX_USER || colon != token + n - 2) return TDM_EINVAL;
    if (memchr(token, '\0', ul)) return TDM_EINVAL;
    memcpy(out->user, token, ul);
    out->user[ul] = '\0';
    memcpy(out->display, token, ul);
    out->display[ul] = '\0';
    char a = (char)colon[1];
    out->access = a == 'w' ? SYNC_ACCESS_WRITE : a == 'r' ? SYNC_ACCESS_READ : SYNC_ACCESS_NONE;
    return TDM_OK;
}

static uint64_t fh_fresh(void *ctx)
{
    fh_host *h = ctx;
    return ++h->next_client;
}

static sync_load_result fh_load(void *ctx, const char *name, const crdt_doc_opts *opts,
                                crdt_doc **doc, sync_room_info *info)
{
    fh_host *h = ctx;
    h->loads++;
    FZ_CHECK(strlen(name) >= 1 && strlen(name) <= SYNCM_MAX_NAME);
    fh_doc *d = fh_find(h, name, false);
    if (!d) {
        if (h->ndocs == FH_MAX_DOCS) return SYNC_LOAD_UNKNOWN;
        d = fh_find(h, name, true);
        d->loaded = true;
        return SYNC_LOAD_NEW;
    }
    d->loaded = true;
    FZ_OK(crdt_doc_new_opts(opts, doc));
    /* every persisted update was accepted by the room: it must apply again */
    for (size_t i = 0; i < d->nupdates; i++)
        FZ_OK(crdt_doc_apply(*doc, d->updates[i].p, d->updates[i].n));
    info->version = d->ot_first + d->nops;
    info->last_chat_id = d->nchats ? d->chats[d->nchats - 1].id : 0;
    return SYNC_LOAD_OK;
}

static void fh_tok_push(fh_host *h, uint64_t token, uint64_t id, bool dup)
{
    FZ_CHECK(h->ntoks < FH_MAX_TOKS);
    h->toks[h->ntoks++] = (fh_tok){token, id, dup};
}

static tdm_err fh_persist(void *ctx, const char *name, const uint8_t *p, size_t n, uint64_t token)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, true);
    fh_blob_push(&d->updates, &d->nupdates, p, n);
    fh_tok_push(h, token, 0, false);
    return TDM_OK;
}

static tdm_err fh_persist_ot(void *ctx, const char *name, uint64_t version, const uint8_t *p,
                             size_t n, uint64_t src, uint64_t op_id)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, true);
    if (d->nops == 0) d->ot_first = version;
    FZ_CHECK(version == d->ot_first + d->nops); /* contiguous */
    fh_blob_push(&d->ops, &d->nops, p, n);
    d->ops[d->nops - 1].src = src;
    d->ops[d->nops - 1].op_id = op_id;
    return TDM_OK;
}

static tdm_err fh_persist_chat(void *ctx, const char *name, const sync_chat_rec *rec,
                               uint64_t token)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, true);
    FZ_CHECK(rec->user_len <= SYNCM_MAX_USER);
    for (size_t i = 0; i < d->nchats; i++) {
        fh_chat *c = &d->chats[i];
        if (c->client_id == rec->client_id && c->msg_id == rec->msg_id &&
            strlen(c->user) == rec->user_len && memcmp(c->user, rec->user, rec->user_len) == 0) {
            fh_tok_push(h, token, c->id, true);
            return TDM_OK;
        }
    }
    fh_chat *nc = realloc(d->chats, (d->nchats + 1) * sizeof *d->chats);
    FZ_CHECK(nc);
    d->chats = nc;
    fh_chat *c = &d->chats[d->nchats];
    memset(c, 0, sizeof *c);
    c->id = d->nchats ? d->chats[d->nchats - 1].id + 1 : 1;
    c->time_ms = rec->time_ms;
    c->client_id = rec->client_id;
    c->msg_id = rec->msg_id;
    memcpy(c->user, rec->user, rec->user_len);
    d->nchats++;
    fh_tok_push(h, token, c->id, false);
    return TDM_OK;
}

static tdm_err fh_chat_history(void *ctx, const char *name, uint64_t after, size_t limit,
                               sync_chat_emit emit, void *arg)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, false);
    if (!d) return TDM_OK;
    size_t sent = 0;
    for (size_t i = 0; i < d->nchats && sent < limit; i++) {
        fh_chat *c = &d->chats[i];
        if (c->id <= after) continue;
        sync_chat_rec r = {.id = c->id,
                           .time_ms = c->time_ms,
                           .user = (const uint8_t *)c->user,
                           .user_len = strlen(c->user),
                           .display = (const uint8_t *)c->user,
                           .display_len = strlen(c->user),
                           .text = (const uint8_t *)"x",
                           .text_len = 1};
        tdm_err e = emit(arg, &r);
        if (e) return e;
        sent++;
    }
    return TDM_OK;
}

static tdm_err fh_ot_history(void *ctx, const char *name, uint64_t from, sync_ot_emit emit,
                             void *arg)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, false);
    if (!d) return TDM_ERANGE;
    if (from < d->ot_first || from > d->ot_first + d->nops) return TDM_ERANGE;
    for (uint64_t v = from; v < d->ot_first + d->nops; v++) {
        fh_blob *b = &d->ops[v - d->ot_first];
        tdm_err e = emit(arg, v, b->p, b->n, b->src, b->op_id);
        if (e) return e;
    }
    return TDM_OK;
}

static void fh_closed(void *ctx, const char *name)
{
    fh_host *h = ctx;
    fh_doc *d = fh_find(h, name, false);
    FZ_CHECK(d != NULL); /* only rooms that were loaded close */
    d->loaded = false;
    h->closed++;
}

static void fh_init(fh_host *h, const sync_server_opts *opts)
{
    memset(h, 0, sizeof *h);
    h->next_client = 1000000;
    h->toks = malloc(FH_MAX_TOKS * sizeof *h->toks);
    FZ_CHECK(h->toks);
    sync_host host = {.ctx = h,
                      .authorize = fh_authorize,
                      .fresh_client_id = fh_fresh,
                      .load_room = fh_load,
                      .persist_update = fh_persist,
                      .persist_ot = fh_persist_ot,
                      .persist_chat = fh_persist_chat,
                      .chat_history = fh_chat_history,
                      .ot_history = fh_ot_history,
                      .rate_limit = NULL,
                      .room_closed = fh_closed};
    FZ_OK(sync_server_new(&host, opts, &h->srv));
}

/* fh_complete - report every queued write as durable, in order. */
static size_t fh_complete(fh_host *h)
{
    size_t n = h->ntoks;
    for (size_t i = 0; i < n; i++)
        FZ_OK(sync_server_durable(h->srv, h->toks[i].token, TDM_OK, h->toks[i].id, h->toks[i].dup));
    FZ_CHECK(h->ntoks == n); /* durable does not call persist_* */
    h->ntoks = 0;
    return n;
}

static void fh_fini(fh_host *h)
{
    sync_server_free(h->srv);
    for (size_t i = 0; i < h->ndocs; i++) {
        fh_doc *d = &h->docs[i];
        for (size_t k = 0; k < d->nupdates; k++) free(d->updates[k].p);
        for (size_t k = 0; k < d->nops; k++) free(d->ops[k].p);
        free(d->updates);
        free(d->ops);
        free(d->chats);
    }
    free(h->toks);
    memset(h, 0, sizeof *h);
}

#endif
