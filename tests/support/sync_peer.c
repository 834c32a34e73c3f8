/* sync_peer.c - see sync_peer.h. */
#include "sync_peer.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server_proc.h"
#include "utf8.h"

uint64_t np_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t np_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- callbacks ------------------------------------------------------------------ */

static void on_ack(void *ctx, uint32_t channel, uint64_t seq)
{
    (void)channel, (void)seq;
    ((np_peer *)ctx)->acks++;
}

static void on_error(void *ctx, const syncm *m)
{
    np_peer *p = ctx;
    p->errors++;
    p->last_err_code = m->code;
    p->last_err_retry_ms = m->retry_ms;
    p->last_err_ref = m->ref;
    if (m->code <= SYNC_ERR_CLOSING) p->err_count[m->code]++;
    size_t n = m->text.n < SYNCM_MAX_ERROR_TEXT ? m->text.n : SYNCM_MAX_ERROR_TEXT;
    if (n) memcpy(p->last_err_text, m->text.p, n);
    p->last_err_text[n] = '\0';
}

static void on_subscribed(void *ctx, uint32_t channel, const syncm *m)
{
    (void)channel;
    np_peer *p = ctx;
    p->subscribed++;
    p->access = m->access;
}

static void on_remote(void *ctx, uint32_t channel, const ot_op *op)
{
    (void)channel, (void)op;
    ((np_peer *)ctx)->remote++;
}

static void on_awareness(void *ctx, uint32_t channel, const uint8_t *b, size_t n)
{
    (void)channel;
    np_peer *p = ctx;
    ck_assert_int_eq(aw_apply(p->aw, b, n, np_mono_ms(), NULL), TDM_OK);
}

static void on_chat(void *ctx, uint32_t channel, const syncm_chat *rec)
{
    (void)channel;
    np_peer *p = ctx;
    if (p->nchat < NP_MAX_CHAT) p->chat_ids[p->nchat] = rec->id;
    p->nchat++;
}

static void on_chat_ack(void *ctx, uint32_t channel, uint64_t msg_id, uint64_t chat_id)
{
    (void)channel, (void)msg_id;
    np_peer *p = ctx;
    p->chat_acks++;
    p->last_chat_ack_id = chat_id;
}

static void on_typing(void *ctx, uint32_t channel, const syncm_str *user, const syncm_str *display,
                      bool on)
{
    (void)channel, (void)display;
    np_peer *p = ctx;
    size_t n = user->n < SYNCM_MAX_USER ? user->n : SYNCM_MAX_USER;
    memcpy(p->typing_user, user->p, n);
    p->typing_user[n] = '\0';
    if (on) {
        p->typing_on++;
        p->typing_on_ms = np_mono_ms();
    } else {
        p->typing_off++;
        p->typing_off_ms = np_mono_ms();
    }
}

/* ---- peers ---------------------------------------------------------------------- */

void np_connect(np_peer *p)
{
    p->ws = wsc_connect(p->x, "127.0.0.1", p->port, "/ws", "tandem.v1");
    ck_assert_ptr_nonnull(p->ws);
    ck_assert_int_eq(sync_client_connect(p->cl, np_now_ms()), TDM_OK);
}

void np_open(np_peer *p, wsc_ctx *x, int port, const char *room, uint64_t client_id, bool ot,
             const char *token)
{
    memset(p, 0, sizeof *p);
    p->x = x;
    p->port = port;
    p->ot = ot;
    p->client_id = client_id;
    if (!ot) ck_assert_int_eq(crdt_doc_new(client_id, &p->doc), TDM_OK);
    ck_assert_int_eq(aw_new(client_id, &p->aw), TDM_OK);
    sync_client_opts o = {0};
    o.client_id = client_id;
    if (token) {
        o.token = (const uint8_t *)token;
        o.token_len = strlen(token);
    }
    sync_client_events ev = {0};
    ev.ctx = p;
    ev.on_ack = on_ack;
    ev.on_error = on_error;
    ev.on_subscribed = on_subscribed;
    ev.on_remote = on_remote;
    ev.on_awareness = on_awareness;
    ev.on_chat = on_chat;
    ev.on_chat_ack = on_chat_ack;
    ev.on_typing = on_typing;
    ck_assert_int_eq(sync_client_new(&o, &ev, &p->cl), TDM_OK);
    if (ot)
        ck_assert_int_eq(sync_client_subscribe_ot(p->cl, room, true, &p->ch), TDM_OK);
    else
        ck_assert_int_eq(sync_client_subscribe_crdt(p->cl, room, p->doc, true, &p->ch), TDM_OK);
    np_connect(p);
}

void np_drop(np_peer *p)
{
    wsc_drop(p->ws);
    sync_client_disconnect(p->cl);
}

void np_close(np_peer *p)
{
    wsc_close(p->ws);
    sync_client_disconnect(p->cl);
}

void np_free(np_peer *p)
{
    sync_client_free(p->cl);
    crdt_doc_free(p->doc);
    aw_free(p->aw);
    memset(p, 0, sizeof *p);
}

void np_pump(np_peer *p)
{
    wsc_state st = wsc_state_of(p->ws);
    if (st == WSC_CLOSED || st == WSC_FAILED) {
        if (sync_client_connected(p->cl)) sync_client_disconnect(p->cl);
        return;
    }
    const uint8_t *f;
    size_t n;
    while (sync_client_next_out(p->cl, &f, &n)) {
        ck_assert(wsc_send(p->ws, f, n));
        sync_client_consume(p->cl);
    }
    uint8_t *m;
    while (wsc_recv(p->ws, &m, &n)) {
        sync_client_recv(p->cl, m, n, np_now_ms());
        free(m);
    }
}

char *np_text(const np_peer *p)
{
    tbuf b;
    tbuf_init(&b, 0);
    if (p->ot)
        ck_assert_int_eq(sync_client_ot_text(p->cl, p->ch, &b), TDM_OK);
    else
        ck_assert_int_eq(crdt_doc_text(p->doc, &b), TDM_OK);
    char *s = malloc(b.len + 1);
    ck_assert_ptr_nonnull(s);
    if (b.len) memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    tbuf_fini(&b);
    return s;
}

static size_t text_len(const np_peer *p)
{
    if (!p->ot) return crdt_doc_len(p->doc);
    char *t = np_text(p);
    size_t n = utf8_count((const uint8_t *)t, strlen(t));
    free(t);
    return n;
}

void np_random_edit(np_peer *p, unsigned *rng, bool at_start)
{
    static const char *const words[] = {
        "a", "bc", "def", "\xc3\xbc", "\xe6\x97\xa5\xe6\x9c\xac", " ", "xyz\n", "\xf0\x9f\x98\x80"};
    size_t len = text_len(p);
    const char *w = words[(size_t)rand_r(rng) % (sizeof words / sizeof words[0])];
    bool del = !at_start && len > 4 && rand_r(rng) % 4 == 0;
    size_t pos = at_start ? 0 : (size_t)rand_r(rng) % (len + 1);
    size_t dn = 2;
    if (del) pos = (size_t)rand_r(rng) % (len - dn);
    if (!p->ot) {
        if (del)
            ck_assert_int_eq(crdt_doc_delete(p->doc, pos, dn), TDM_OK);
        else
            ck_assert_int_eq(crdt_doc_insert(p->doc, pos, w, strlen(w)), TDM_OK);
        ck_assert_int_eq(sync_client_flush(p->cl, p->ch), TDM_OK);
        return;
    }
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, pos), TDM_OK);
    if (del) {
        ck_assert_int_eq(ot_op_delete(op, dn), TDM_OK);
        ck_assert_int_eq(ot_op_retain(op, len - pos - dn), TDM_OK);
    } else {
        ck_assert_int_eq(ot_op_insert(op, w, strlen(w)), TDM_OK);
        ck_assert_int_eq(ot_op_retain(op, len - pos), TDM_OK);
    }
    ck_assert_int_eq(sync_client_ot_edit(p->cl, p->ch, op), TDM_OK);
    ot_op_free(op);
}

void np_presence(np_peer *p, const char *state)
{
    ck_assert_int_eq(aw_set_local(p->aw, (const uint8_t *)state, strlen(state), np_mono_ms()),
                     TDM_OK);
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(aw_encode_local(p->aw, &b), TDM_OK);
    ck_assert_int_eq(sync_client_awareness(p->cl, p->ch, b.data, b.len), TDM_OK);
    tbuf_fini(&b);
    np_pump(p);
}

bool np_all_synced(void *arg)
{
    np_group *g = arg;
    bool ok = true;
    for (size_t i = 0; i < g->n; i++) {
        np_pump(g->p[i]);
        ok = ok && sync_client_synced(g->p[i]->cl, g->p[i]->ch);
    }
    return ok;
}

bool np_all_converged(void *arg)
{
    np_group *g = arg;
    for (size_t i = 0; i < g->n; i++) np_pump(g->p[i]);
    for (size_t i = 0; i < g->n; i++) {
        np_peer *p = g->p[i];
        if (!sync_client_synced(p->cl, p->ch)) return false;
        if (p->ot ? sync_client_ot_state(p->cl, p->ch) != SYNC_OT_SYNCHRONIZED
                  : sync_client_unacked(p->cl, p->ch) != 0)
            return false;
    }
    char *t0 = np_text(g->p[0]);
    bool same = true;
    for (size_t i = 1; i < g->n && same; i++) {
        char *t = np_text(g->p[i]);
        same = strcmp(t0, t) == 0;
        free(t);
    }
    free(t0);
    return same;
}

/* ---- raw frames ----------------------------------------------------------------- */

void np_raw_send(wsc_conn *c, const syncm *m)
{
    tbuf b;
    tbuf_init(&b, 0);
    ck_assert_int_eq(syncm_encode(m, &b), TDM_OK);
    ck_assert(wsc_send(c, b.data, b.len));
    tbuf_fini(&b);
}

bool np_raw_recv(wsc_ctx *x, wsc_conn *c, np_raw *r, int ms)
{
    memset(r, 0, sizeof *r);
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    size_t n;
    for (;;) {
        if (wsc_recv(c, &r->frame, &n)) {
            ck_assert_int_eq(syncm_decode(r->frame, n, SYNCM_MAX_FRAME, &r->m), TDM_OK);
            return true;
        }
        wsc_state st = wsc_state_of(c);
        if (st == WSC_CLOSED || st == WSC_FAILED || np_mono_ms() >= end) return false;
        wsc_service(x, 10);
    }
}

void np_raw_free(np_raw *r)
{
    syncm_clear(&r->m);
    free(r->frame);
    r->frame = NULL;
}

bool np_raw_until(wsc_ctx *x, wsc_conn *c, syncm_type type, np_raw *r, int ms)
{
    uint64_t end = np_mono_ms() + (uint64_t)ms;
    for (;;) {
        uint64_t now = np_mono_ms();
        if (now >= end) return false;
        if (!np_raw_recv(x, c, r, (int)(end - now))) return false;
        if (r->m.type == type) return true;
        np_raw_free(r);
    }
}

/* ---- waiting, chat and HTTP -------------------------------------------------- */

void np_wait_synced(wsc_ctx *x, np_peer **ps, size_t n, int ms)
{
    np_group g = {ps, n};
    ck_assert_msg(wsc_wait(x, np_all_synced, &g, ms), "peers did not sync");
}

void np_wait_converged(wsc_ctx *x, np_peer **ps, size_t n, int ms)
{
    np_group g = {ps, n};
    ck_assert_msg(wsc_wait(x, np_all_converged, &g, ms), "peers did not converge");
}

void np_say(np_peer *p, const char *text)
{
    ck_assert_int_eq(sync_client_chat_send(p->cl, p->ch, text, strlen(text), NULL), TDM_OK);
}

json_t *np_get_json(int port, const char *path)
{
    srvp_http r = srvp_get(port, path);
    ck_assert_msg(r.status == 200, "GET %s: %d %s", path, r.status, r.body ? r.body : "");
    json_t *v = json_loadb(r.body, r.len, 0, NULL);
    ck_assert_msg(v != NULL, "GET %s: not JSON: %s", path, r.body ? r.body : "");
    srvp_http_free(&r);
    return v;
}

char *np_get_string(int port, const char *path, const char *key)
{
    json_t *v = np_get_json(port, path);
    const char *t = json_string_value(json_object_get(v, key));
    ck_assert_ptr_nonnull(t);
    char *s = strdup(t);
    json_decref(v);
    return s;
}

char *np_server_text(int port, const char *room)
{
    char path[512];
    snprintf(path, sizeof path, "/api/rooms/%s/text", room);
    return np_get_string(port, path, "text");
}

char *np_dev_token(int port, const char *user)
{
    char path[128];
    snprintf(path, sizeof path, "/api/dev/token?user=%s", user);
    return np_get_string(port, path, "token");
}

long np_metric(int port, const char *name)
{
    srvp_http r = srvp_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    char want[128];
    snprintf(want, sizeof want, "\n%s ", name);
    const char *at = strstr(r.body, want);
    ck_assert_msg(at != NULL, "no metric %s", name);
    long v = strtol(at + strlen(want), NULL, 10);
    srvp_http_free(&r);
    return v;
}
