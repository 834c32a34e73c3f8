/* srv_api.c - the HTTP JSON API (jansson):
 *   GET /healthz                                  liveness and counts
 *   GET /api/rooms                                stored rooms with sizes
 *   GET /api/rooms/{id}                           one room
 *   GET /api/rooms/{id}/messages?after=&limit=    chat history
 *   GET /api/rooms/{id}/text                      the document text
 *   GET /api/dev/token?user=&name=                a token (only with --dev; else 404)
 *   GET /api/push/public-key, /api/push/subscriptions   Web Push (srv_push.c)
 * Errors are {"error": CODE, "message": TEXT} with 400 (bad parameter),
 * 401 (no access), 404 (unknown room or path), 500 (storage). {id} is the
 * percent-decoded rest of the path (it may contain '/'; the suffixes
 * /messages and /text are matched at the end). Service thread only; store
 * reads are short read transactions. */
#include "srv_internal.h"
#include "srv_push.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utf8.h"

#define SRV_LIST_MAX 10000u /* rooms in one /api/rooms answer */

tdm_err srv_resp_bytes(srv_resp *r, unsigned status, const char *type, const void *p, size_t n)
{
    if (n > SRV_HTTP_BODY_MAX) return TDM_ETOOBIG;
    r->body = malloc(LWS_PRE + n + 1);
    if (!r->body) return TDM_ENOMEM;
    if (n) memcpy(r->body + LWS_PRE, p, n);
    r->len = n;
    r->status = status;
    r->type = type;
    return TDM_OK;
}

tdm_err srv_resp_json(srv_resp *r, unsigned status, void *json_v)
{
    json_t *v = json_v;
    if (!v) return TDM_ENOMEM;
    char *txt = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!txt) return TDM_ENOMEM;
    tdm_err e = srv_resp_bytes(r, status, "application/json", txt, strlen(txt));
    free(txt);
    return e;
}

tdm_err srv_resp_error(srv_resp *r, unsigned status, const char *code, const char *msg)
{
    return srv_resp_json(r, status, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

json_t *srv_json_str(const void *p, size_t n)
{
    if (utf8_validate(p, n, NULL, NULL)) return json_stringn(p, n);
    char *s = malloc(3 * n + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = ((const unsigned char *)p)[i];
        if (ch < 0x80)
            s[o++] = (char)ch;
        else
            memcpy(s + o, "\xef\xbf\xbd", 3), o += 3;
    }
    json_t *v = json_stringn(s, o);
    free(s);
    return v;
}

static json_t *meta_json(srv *s, const uint8_t *name, size_t n, const store_doc_meta *m)
{
    char buf[STORE_NAME_MAX + 1];
    memcpy(buf, name, n);
    buf[n] = '\0';
    bool loaded = strlen(buf) == n && sync_server_room_doc(s->sync, buf) != NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = 0;
    bad |= json_object_set_new(o, "name", srv_json_str(name, n));
    bad |= json_object_set_new(o, "bytes",
                               json_integer((json_int_t)(m->log_bytes + m->snapshot_bytes)));
    bad |= json_object_set_new(o, "log_bytes", json_integer((json_int_t)m->log_bytes));
    bad |= json_object_set_new(o, "snapshot_bytes", json_integer((json_int_t)m->snapshot_bytes));
    bad |= json_object_set_new(o, "updates", json_integer((json_int_t)m->updates));
    bad |= json_object_set_new(o, "chat_count", json_integer((json_int_t)m->chat_count));
    bad |= json_object_set_new(o, "created_ms", json_integer(m->created_ms));
    bad |= json_object_set_new(o, "updated_ms", json_integer(m->updated_ms));
    bad |= json_object_set_new(o, "loaded", json_boolean(loaded));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

typedef struct list_ctx {
    srv *s;
    json_t *arr;
    bool ok, truncated;
} list_ctx;

static int list_one(void *ctx, const uint8_t *name, size_t n, const store_doc_meta *m)
{
    list_ctx *l = ctx;
    if (json_array_size(l->arr) >= SRV_LIST_MAX) {
        l->truncated = true;
        return 1;
    }
    json_t *o = meta_json(l->s, name, n, m);
    if (!o || json_array_append_new(l->arr, o)) l->ok = false;
    return !l->ok;
}

static tdm_err api_healthz(srv *s, srv_resp *r)
{
    sync_server_stats st;
    sync_server_get_stats(s->sync, &st);
    return srv_resp_json(r, 200,
                         json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "status",
                                   "ok", "subprotocol", SRV_SUBPROTOCOL, "dev", s->cfg.dev,
                                   "uptime_ms", (json_int_t)(srv_now_ms() - s->started_ms),
                                   "connections", (json_int_t)s->nconns, "rooms",
                                   (json_int_t)st.rooms, "sessions", (json_int_t)st.sessions,
                                   "pending", (json_int_t)st.pending, "pid", (json_int_t)getpid(),
                                   "sse_streams", (json_int_t)s->nsse));
}

static tdm_err api_rooms(srv *s, srv_resp *r)
{
    list_ctx l = {s, json_array(), true, false};
    if (!l.arr) return TDM_ENOMEM;
    size_t count = 0;
    tdm_err e = store_list_docs(s->st, list_one, &l, &count);
    if (e || !l.ok) {
        json_decref(l.arr);
        return e ? e : TDM_ENOMEM;
    }
    return srv_resp_json(r, 200,
                         json_pack("{s:o, s:I, s:b}", "rooms", l.arr, "count",
                                   (json_int_t)json_array_size(l.arr), "truncated", l.truncated));
}

/* Room {id} exists when stored or loaded. *stored tells which; meta filled when stored. */
static tdm_err room_find(srv *s, const char *id, bool *stored, store_doc_meta *meta)
{
    tdm_err e = store_doc_info(s->st, id, strlen(id), meta);
    *stored = e == TDM_OK;
    if (e == TDM_ENOTFOUND) {
        memset(meta, 0, sizeof *meta);
        return sync_server_room_doc(s->sync, id) ? TDM_OK : TDM_ENOTFOUND;
    }
    return e;
}

static tdm_err api_room(srv *s, const char *id, const store_doc_meta *m, bool stored, srv_resp *r)
{
    json_t *o = meta_json(s, (const uint8_t *)id, strlen(id), m);
    if (!o) return TDM_ENOMEM;
    crdt_doc *d = sync_server_room_doc(s->sync, id);
    int bad = json_object_set_new(o, "stored", json_boolean(stored));
    bad |= json_object_set_new(
        o, "version",
        json_integer((json_int_t)(d ? sync_server_room_version(s->sync, id) : m->ot_next)));
    if (d) bad |= json_object_set_new(o, "text_length", json_integer((json_int_t)crdt_doc_len(d)));
    if (bad) {
        json_decref(o);
        return TDM_ENOMEM;
    }
    return srv_resp_json(r, 200, o);
}

static tdm_err api_text(srv *s, const char *id, bool stored, srv_resp *r)
{
    tbuf b;
    tbuf_init(&b, SRV_HTTP_BODY_MAX / 2);
    tdm_err e = sync_server_room_text(s->sync, id, &b);
    if (e == TDM_ENOTFOUND && stored) {
        crdt_doc *d = NULL;
        e = store_doc_load(s->st, id, strlen(id), NULL, &d, NULL);
        if (!e) e = crdt_doc_text(d, &b);
        crdt_doc_free(d);
    }
    if (e) {
        tbuf_fini(&b);
        return e;
    }
    json_t *o = json_pack("{s:o, s:s%}", "room", srv_json_str(id, strlen(id)), "text",
                          b.len ? (const char *)b.data : "", b.len);
    tbuf_fini(&b);
    return srv_resp_json(r, 200, o);
}

static bool parse_num(const char *v, uint64_t max, uint64_t *out)
{
    if (!*v) return false;
    uint64_t x = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9') return false;
        x = x * 10 + (uint64_t)(*v - '0');
        if (x > max) return false;
    }
    *out = x;
    return true;
}

/* 0: parsed (or absent); -1: bad value. lws_get_urlarg_by_name gives up at
 * the first argument longer than its buffer, so the buffer must hold a
 * ?token= that may come first. */
static int query_num(struct lws *wsi, const char *name, uint64_t max, uint64_t *out)
{
    char buf[8192];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) return 0;
    const char *v = lws_get_urlarg_by_name(wsi, name, buf, sizeof buf);
    if (!v) return 0;
    return parse_num(v, max, out) ? 0 : -1;
}

typedef struct chat_ctx {
    json_t *arr;
    bool ok;
} chat_ctx;

static int chat_one(void *ctx, const store_chat_msg *m)
{
    chat_ctx *c = ctx;
    json_t *o = json_pack("{s:I, s:I, s:o, s:o, s:o}", "id", (json_int_t)m->id, "time_ms",
                          (json_int_t)m->time_ms, "user", srv_json_str(m->user, m->user_len),
                          "display", srv_json_str(m->display, m->display_len), "text",
                          srv_json_str(m->text, m->text_len));
    if (!o || json_array_append_new(c->arr, o)) c->ok = false;
    return !c->ok;
}

static tdm_err api_messages(srv *s, struct lws *wsi, const char *id, bool stored, srv_resp *r)
{
    uint64_t after = 0, limit = SRV_HISTORY_DEFAULT;
    if (query_num(wsi, "after=", ((uint64_t)1 << 53) - 1, &after))
        return srv_resp_error(r, 400, "bad_request", "after must be a message id (a number)");
    if (query_num(wsi, "limit=", SRV_HISTORY_LIMIT, &limit) || limit == 0)
        return srv_resp_error(r, 400, "bad_request", "limit must be a number from 1 to 1000");
    chat_ctx c = {json_array(), true};
    if (!c.arr) return TDM_ENOMEM;
    /* One record more than asked tells whether there are more. */
    tdm_err e =
        stored ? store_chat_range(s->st, id, strlen(id), after, (size_t)limit + 1, chat_one, &c)
               : TDM_OK;
    if (e == TDM_ENOTFOUND) e = TDM_OK;
    if (e || !c.ok) {
        json_decref(c.arr);
        return e ? e : TDM_ENOMEM;
    }
    bool more = json_array_size(c.arr) > limit;
    if (more) json_array_remove(c.arr, json_array_size(c.arr) - 1);
    return srv_resp_json(r, 200,
                         json_pack("{s:o, s:o, s:b}", "room", srv_json_str(id, strlen(id)),
                                   "messages", c.arr, "more", more));
}

static tdm_err route_room(srv *s, struct lws *wsi, const char *rest, srv_resp *r)
{
    enum { INFO, TEXT, MESSAGES } what = INFO;
    char id[STORE_NAME_MAX + 16];
    size_t n = strlen(rest);
    if (n >= sizeof id) return srv_resp_error(r, 404, "not_found", "no such room");
    memcpy(id, rest, n + 1);
    if (n > 5 && strcmp(id + n - 5, "/text") == 0)
        what = TEXT, id[n - 5] = '\0';
    else if (n > 9 && strcmp(id + n - 9, "/messages") == 0)
        what = MESSAGES, id[n - 9] = '\0';
    size_t idn = strlen(id);
    if (idn == 0 || idn > STORE_NAME_MAX)
        return srv_resp_error(r, 404, "not_found", "no such room");
    unsigned deny = srv_access_http(s, wsi, id);
    if (deny)
        return srv_resp_error(r, deny, deny == 401 ? "unauthorized" : "forbidden",
                              deny == 401 ? "a valid token is required"
                                          : "the token gives no read access to this room");
    bool stored;
    store_doc_meta meta;
    tdm_err e = room_find(s, id, &stored, &meta);
    if (e == TDM_ENOTFOUND) return srv_resp_error(r, 404, "not_found", "no such room");
    if (e) return e;
    switch (what) {
    case TEXT:
        return api_text(s, id, stored, r);
    case MESSAGES:
        return api_messages(s, wsi, id, stored, r);
    default:
        return api_room(s, id, &meta, stored, r);
    }
}

bool srv_api_route(srv *s, struct lws *wsi, const char *path, srv_resp *r)
{
    tdm_err e;
    if (strcmp(path, "/healthz") == 0) {
        e = api_healthz(s, r);
    } else if (strcmp(path, "/api/rooms") == 0 || strcmp(path, "/api/rooms/") == 0) {
        e = srv_access_http(s, wsi, NULL)
                ? srv_resp_error(r, 401, "unauthorized", "a valid token is required")
                : api_rooms(s, r);
    } else if (strncmp(path, "/api/rooms/", 11) == 0) {
        e = route_room(s, wsi, path + 11, r);
    } else if (s->cfg.dev && strcmp(path, "/api/dev/token") == 0) {
        e = srv_access_dev_token(s, wsi, r);
    } else if (strncmp(path, "/api/push/", 10) == 0) {
        e = srv_push_get(s, wsi, path, r); /* Web Push (srv_push.c) */
    } else if (strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0) {
        e = srv_resp_error(r, 404, "not_found", "no such endpoint");
    } else {
        return false;
    }
    if (e) {
        free(r->body);
        memset(r, 0, sizeof *r);
        if (srv_resp_error(r, e == TDM_ETOOBIG ? 413 : 500, "internal", tdm_strerror(e)))
            memset(r, 0, sizeof *r); /* the caller answers 500 without a body */
    }
    return true;
}
