/* srv_push.c - Web Push on the service thread (srv_push.h): the VAPID key,
 * the HTTP endpoints
 *   GET  /api/push/public-key      {"public_key": base64url point}
 *   GET  /api/push/subscriptions   the caller's subscriptions
 *   POST /api/push/subscribe       PushSubscription JSON + "rooms"
 *   POST /api/push/unsubscribe     {"endpoint"}
 * and the hand-off of durable chat messages (with the users in the room) to
 * the worker (srv_push_worker.c). docs/PUSH.md. */
#include "srv_push_int.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "utf8.h"

uint64_t srv_push__hash(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t env_num(const char *name, uint64_t lo, uint64_t hi, uint64_t dflt)
{
    const char *v = getenv(name);
    if (!v || *v < '0' || *v > '9') return dflt;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    return *end == '\0' && x >= lo && x <= hi ? (uint64_t)x : dflt;
}

/* The key: TANDEM_VAPID_KEY_FILE, else DATA/vapid.pem (made in --dev). */
static tdm_err load_key(srv *s, struct srv_push *p)
{
    const char *file = getenv("TANDEM_VAPID_KEY_FILE");
    char path[4096];
    if (!file || !*file) {
        if (snprintf(path, sizeof path, "%s/%s", s->cfg.data_dir, SRV_PUSH_KEY_FILE) >=
            (int)sizeof path)
            return TDM_ETOOBIG;
        file = path;
    }
    tdm_err e = push_key_load(file, &p->key);
    if (e == TDM_ENOTFOUND && s->cfg.dev && file == path) {
        push_key *k = NULL;
        e = push_key_generate(&k);
        if (!e) e = push_key_save(k, path, false);
        push_key_free(k);
        if (!e || e == TDM_ECONFLICT) e = push_key_load(path, &p->key);
        if (!e && !s->cfg.quiet)
            fprintf(stderr, "tandem serve: generated a VAPID key in %s\n", path);
    }
    if (e == TDM_ENOTFOUND) {
        if (!s->cfg.quiet)
            fprintf(stderr,
                    "tandem serve: no VAPID key (%s): Web Push is off; create one with "
                    "`tandem vapid-keys --data %s` or set TANDEM_VAPID_KEY_FILE\n",
                    file, s->cfg.data_dir);
        return TDM_OK;
    }
    if (e) {
        fprintf(stderr, "tandem serve: VAPID key %s: %s\n", file, tdm_strerror(e));
        return e;
    }
    uint8_t pub[PUSH_P256_PUB_LEN];
    push_key_public(p->key, pub);
    b64url_encode(pub, sizeof pub, p->public_b64, sizeof p->public_b64);
    p->enabled = true;
    return TDM_OK;
}

tdm_err srv_push_open(srv *s)
{
    struct srv_push *p = calloc(1, sizeof *p);
    if (!p) return TDM_ENOMEM;
    p->s = s;
    p->st = s->st;
    p->allow_local_http = s->cfg.dev;
    p->attempts = (unsigned)env_num("TANDEM_PUSH_ATTEMPTS", 1, 20, SRV_PUSH_ATTEMPTS);
    p->backoff_ms = env_num("TANDEM_PUSH_BACKOFF_MS", 1, 600000, SRV_PUSH_BACKOFF_MS);
    p->user_rate = (uint32_t)env_num("TANDEM_PUSH_USER_RATE", 1, 10000, SRV_PUSH_USER_RATE);
    p->user_window_ms =
        env_num("TANDEM_PUSH_USER_WINDOW_MS", 100, 3600000, SRV_PUSH_USER_WINDOW_MS);
    const char *sub = getenv("TANDEM_VAPID_SUBJECT");
    if (!sub || !*sub) sub = SRV_PUSH_SUBJECT;
    if (strlen(sub) > PUSH_SUB_MAX || strchr(sub, '"') || strchr(sub, '\\') ||
        (strncmp(sub, "mailto:", 7) != 0 && strncmp(sub, "https://", 8) != 0)) {
        fprintf(stderr, "tandem serve: TANDEM_VAPID_SUBJECT must be a mailto: or https: URL\n");
        free(p);
        return TDM_EINVAL;
    }
    memcpy(p->subject, sub, strlen(sub) + 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    s->push = p;
    tdm_err e = load_key(s, p);
    if (e || !p->enabled) return e;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "tandem serve: libcurl initialisation failed; Web Push is off\n");
        p->enabled = false;
        return TDM_OK;
    }
    if (pthread_create(&p->thread, NULL, srv_push__worker, p) != 0) {
        curl_global_cleanup();
        return TDM_ENOMEM;
    }
    p->started = true;
    return TDM_OK;
}

void srv_push_set_context(srv *s, struct lws_context *ctx)
{
    struct srv_push *p = s->push;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->ctx = ctx;
    pthread_mutex_unlock(&p->mu);
}

void srv_push__ev_free(srv_push_ev *ev)
{
    if (!ev) return;
    free(ev->full_text);
    free(ev->skip);
    free(ev);
}

void srv_push_close(srv *s)
{
    struct srv_push *p = s->push;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    p->ctx = NULL;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->started) {
        pthread_join(p->thread, NULL);
        curl_global_cleanup();
    }
    while (p->events) {
        srv_push_ev *ev = p->events;
        p->events = ev->next;
        srv_push__ev_free(ev);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    push_key_free(p->key);
    free(p);
    s->push = NULL;
}

void srv_push_drain(srv *s)
{
    struct srv_push *p = s->push;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    if (p->inbox_dirty) {
        srv_push_counters *a = &p->n, *d = &p->inbox;
        a->sent += d->sent, a->retried += d->retried, a->failed += d->failed;
        a->removed += d->removed, a->capped += d->capped, a->coalesced += d->coalesced;
        a->dropped += d->dropped, a->skipped += d->skipped;
        a->queued = d->queued;
        uint64_t q = d->queued;
        memset(d, 0, sizeof *d);
        d->queued = q;
        p->inbox_dirty = false;
    }
    pthread_mutex_unlock(&p->mu);
}

void srv_push_counters_get(const srv *s, srv_push_counters *out)
{
    if (s->push)
        *out = s->push->n;
    else
        memset(out, 0, sizeof *out);
}

/* ---- the users in a room ---- */

/* The room's member users as hashes: counted first (v NULL), then filled. */
typedef struct user_set {
    uint64_t *v;
    size_t n, cap;
} user_set;

static void add_user(void *arg, const char *user, const char *display)
{
    (void)display;
    user_set *u = arg;
    if (u->v && u->n < u->cap) u->v[u->n] = srv_push__hash(user, strlen(user));
    u->n++;
}

/* Copy at most max bytes of whole UTF-8 characters; returns bytes copied. */
static size_t utf8_prefix(char *dst, const uint8_t *src, size_t n, size_t max)
{
    size_t k = n < max ? n : max;
    if (k < n)
        while (k > 0 && (src[k] & 0xc0) == 0x80) k--; /* do not split a character */
    memcpy(dst, src, k);
    dst[k] = '\0';
    return k;
}

void srv_push_chat(srv *s, const char *room, const sync_chat_rec *rec)
{
    struct srv_push *p = s->push;
    if (!p || !p->enabled || !rec || !room) return;
    srv_push_ev *ev = calloc(1, sizeof *ev);
    if (!ev) goto lost;
    size_t rn = strlen(room);
    if (rn > SYNCM_MAX_NAME) goto lost;
    memcpy(ev->room, room, rn + 1);
    ev->chat_id = rec->id;
    utf8_prefix(ev->user, rec->user, rec->user_len, SYNCM_MAX_USER);
    utf8_prefix(ev->display, rec->display, rec->display_len, SYNCM_MAX_USER);
    size_t tn = utf8_prefix(ev->text, rec->text, rec->text_len, SRV_PUSH_TEXT_MAX);
    ev->text_cut = tn < rec->text_len;
    ev->full_text = malloc(rec->text_len + 1);
    if (!ev->full_text) goto lost;
    memcpy(ev->full_text, rec->text, rec->text_len);
    ev->full_text[rec->text_len] = '\0';
    /* Users connected to the room now: its members in sync. */
    user_set u = {0};
    (void)sync_server_room_users(s->sync, room, add_user, &u); /* not loaded: nobody */
    u.cap = u.n;
    u.n = 0;
    if (!(u.v = malloc((u.cap + 1) * sizeof *u.v))) goto lost;
    (void)sync_server_room_users(s->sync, room, add_user, &u);
    ev->skip = u.v;
    ev->nskip = u.n < u.cap ? u.n : u.cap;
    pthread_mutex_lock(&p->mu);
    if (p->nevents >= SRV_PUSH_EVENTS_MAX || p->stop) {
        pthread_mutex_unlock(&p->mu);
        goto lost;
    }
    if (p->events_tail)
        p->events_tail->next = ev;
    else
        p->events = ev;
    p->events_tail = ev;
    p->nevents++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->n.events++;
    return;
lost:
    srv_push__ev_free(ev);
    p->n.events_lost++;
}

/* ---- HTTP ---- */

/* A JSON string of stored bytes (invalid UTF-8 shows as "?"). */
static json_t *jstrn(const void *p, size_t n)
{
    json_t *v = json_stringn(p, n);
    return v ? v : json_string("?");
}

static tdm_err off_503(srv_resp *r)
{
    return srv_resp_error(r, 503, "push_disabled",
                          "Web Push is not configured on this server (no VAPID key)");
}

/* The caller's claims: 0, or the status to answer (with r filled). */
static tdm_err caller(srv *s, struct lws *wsi, srv_auth_claims *c, bool *anon, srv_resp *r,
                      bool *ok)
{
    *ok = false;
    if (srv_access_http_claims(s, wsi, c, anon))
        return srv_resp_error(r, 401, "unauthorized", "a valid token is required");
    if (!c->user[0]) return srv_resp_error(r, 401, "unauthorized", "the token names no user");
    *ok = true;
    return TDM_OK;
}

typedef struct list_ctx {
    json_t *arr;
    bool ok;
    size_t count;
    const char *endpoint; /* counting: is this endpoint among them? */
    bool found;
} list_ctx;

static int list_one(void *ctx, const uint8_t *user, size_t ulen, const store_push_sub *sub)
{
    list_ctx *l = ctx;
    (void)user, (void)ulen;
    l->count++;
    if (l->endpoint && strlen(l->endpoint) == sub->endpoint_len &&
        memcmp(l->endpoint, sub->endpoint, sub->endpoint_len) == 0)
        l->found = true;
    if (!l->arr) return 0;
    json_t *rooms = json_array();
    for (size_t i = 0; rooms && i < sub->nrooms; i++)
        if (json_array_append_new(rooms, jstrn(sub->rooms[i].p, sub->rooms[i].n))) l->ok = false;
    json_t *o =
        json_pack("{s:o, s:o, s:I}", "endpoint", jstrn(sub->endpoint, sub->endpoint_len), "rooms",
                  rooms ? rooms : json_null(), "created_ms", (json_int_t)sub->created_ms);
    if (!o || json_array_append_new(l->arr, o)) l->ok = false;
    return !l->ok;
}

tdm_err srv_push_get(srv *s, struct lws *wsi, const char *path, srv_resp *r)
{
    struct srv_push *p = s->push;
    if (strcmp(path, "/api/push/public-key") == 0) {
        if (!p || !p->enabled) return off_503(r);
        return srv_resp_json(r, 200, json_pack("{s:s}", "public_key", p->public_b64));
    }
    if (strcmp(path, "/api/push/subscriptions") == 0) {
        if (!p || !p->enabled) return off_503(r);
        srv_auth_claims c;
        bool anon, ok;
        tdm_err e = caller(s, wsi, &c, &anon, r, &ok);
        if (!ok) return e;
        list_ctx l = {json_array(), true, 0, NULL, false};
        if (!l.arr) return TDM_ENOMEM;
        e = store_push_list(p->st, c.user, strlen(c.user), list_one, &l);
        if (e || !l.ok) {
            json_decref(l.arr);
            return e ? e : TDM_ENOMEM;
        }
        return srv_resp_json(r, 200,
                             json_pack("{s:s, s:o}", "user", c.user, "subscriptions", l.arr));
    }
    if (strcmp(path, "/api/push/subscribe") == 0 || strcmp(path, "/api/push/unsubscribe") == 0)
        return srv_resp_error(r, 405, "method_not_allowed", "use POST");
    return srv_resp_error(r, 404, "not_found", "no such endpoint");
}

bool srv_push_is_post(const char *path)
{
    return strcmp(path, "/api/push/subscribe") == 0 || strcmp(path, "/api/push/unsubscribe") == 0;
}

static tdm_err bad(srv_resp *r, const char *msg)
{
    return srv_resp_error(r, 400, "bad_request", msg);
}

/* Is endpoint e acceptable: https (or, in --dev, http://127.0.0.1), no
 * spaces or control bytes, a host, at most SRV_PUSH_ENDPOINT_MAX bytes?
 * NULL or the reason. */
static const char *endpoint_problem(const struct srv_push *p, const char *e, size_t n)
{
    if (n == 0) return "endpoint is empty";
    if (n > SRV_PUSH_ENDPOINT_MAX) return "endpoint is too long (at most 1024 bytes)";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)e[i] <= 0x20 || (unsigned char)e[i] >= 0x7f)
            return "endpoint holds spaces, control or non-ASCII bytes";
    bool https = strncmp(e, "https://", 8) == 0;
    bool local = p->allow_local_http && (strncmp(e, "http://127.0.0.1:", 17) == 0 ||
                                         strncmp(e, "http://127.0.0.1/", 17) == 0);
    if (!https && !local)
        return p->allow_local_http ? "endpoint must be an https URL (or http://127.0.0.1 in "
                                     "development mode)"
                                   : "endpoint must be an https URL";
    char origin[PUSH_AUD_MAX + 1];
    if (push_origin(e, n, origin, sizeof origin)) return "endpoint has no valid host";
    if (https) {
        /* Push services have DNS names: an IP literal or localhost would
         * only aim the server's requests at hosts of the operator's network. */
        const char *h = origin + 8;
        size_t hn = strcspn(h, ":");
        bool ip = h[0] == '[' || strspn(h, "0123456789.") == hn;
        if (ip || (hn == 9 && strncasecmp(h, "localhost", 9) == 0) || memchr(h, '.', hn) == NULL)
            return "endpoint host must be a DNS name with a dot (no IP address or localhost)";
    }
    return NULL;
}

/* A base64url key field of exactly `want` bytes (trailing '=' tolerated). */
static bool key_field(json_t *v, uint8_t *out, size_t want)
{
    if (!json_is_string(v)) return false;
    const char *t = json_string_value(v);
    size_t n = json_string_length(v);
    while (n > 0 && t[n - 1] == '=') n--;
    size_t got = 0;
    return b64url_decode(t, n, out, want, &got) == TDM_OK && got == want;
}

static tdm_err post_subscribe(srv *s, struct srv_push *p, const srv_auth_claims *c, bool anon,
                              json_t *root, srv_resp *r)
{
    json_t *ep = json_object_get(root, "endpoint");
    json_t *keys = json_object_get(root, "keys");
    json_t *rooms = json_object_get(root, "rooms");
    json_t *exp = json_object_get(root, "expirationTime");
    if (!json_is_string(ep)) return bad(r, "endpoint must be a string");
    const char *why = endpoint_problem(p, json_string_value(ep), json_string_length(ep));
    if (why) return bad(r, why);
    if (exp && !json_is_null(exp) && !json_is_integer(exp) && !json_is_real(exp))
        return bad(r, "expirationTime must be null or a number");
    if (!json_is_object(keys)) return bad(r, "keys must be an object with p256dh and auth");
    uint8_t pub[PUSH_P256_PUB_LEN], auth[PUSH_AUTH_LEN];
    if (!key_field(json_object_get(keys, "p256dh"), pub, sizeof pub) ||
        !push_p256_point_ok(pub, sizeof pub))
        return bad(r, "keys.p256dh must be a base64url P-256 public key (65-byte uncompressed "
                      "point on the curve)");
    if (!key_field(json_object_get(keys, "auth"), auth, sizeof auth))
        return bad(r, "keys.auth must be 16 bytes of base64url");
    if (!json_is_array(rooms) || json_array_size(rooms) == 0 ||
        json_array_size(rooms) > SRV_PUSH_ROOMS_MAX)
        return bad(r, "rooms must be an array of 1 to 64 room names");
    store_bytes rb[SRV_PUSH_ROOMS_MAX];
    size_t nr = 0;
    for (size_t i = 0; i < json_array_size(rooms); i++) {
        json_t *v = json_array_get(rooms, i);
        if (!json_is_string(v)) return bad(r, "rooms must hold strings");
        const char *name = json_string_value(v);
        size_t n = json_string_length(v);
        if (n == 0 || n > SYNCM_MAX_NAME || strlen(name) != n ||
            !utf8_validate((const uint8_t *)name, n, NULL, NULL))
            return bad(r, "a room name must be 1 to 255 bytes of UTF-8 without NUL");
        if (!anon && srv_auth_access(c, name, n) < SRV_AUTH_READ)
            return srv_resp_error(r, 403, "forbidden",
                                  "the token gives no read access to a room in rooms");
        bool dup = false;
        for (size_t j = 0; j < nr; j++) dup |= rb[j].n == n && memcmp(rb[j].p, name, n) == 0;
        if (!dup) rb[nr].p = (const uint8_t *)name, rb[nr++].n = n;
    }
    const char *endpoint = json_string_value(ep);
    list_ctx l = {NULL, true, 0, endpoint, false};
    tdm_err e = store_push_list(p->st, c->user, strlen(c->user), list_one, &l);
    if (e) return e;
    if (!l.found && l.count >= SRV_PUSH_SUBS_MAX)
        return srv_resp_error(r, 409, "too_many_subscriptions",
                              "this user has 16 subscriptions; unsubscribe one first");
    store_push_sub sub;
    memset(&sub, 0, sizeof sub);
    sub.endpoint = (const uint8_t *)endpoint;
    sub.endpoint_len = json_string_length(ep);
    sub.p256dh = pub, sub.p256dh_len = sizeof pub;
    sub.auth = auth, sub.auth_len = sizeof auth;
    sub.rooms = rb, sub.nrooms = nr;
    size_t dn = strlen(c->name);
    if (dn > 0 && dn <= STORE_PUSH_USER_MAX)
        sub.display = (const uint8_t *)c->name, sub.display_len = dn;
    /* Synchronous: one small commit; subscriptions change rarely. */
    e = store_push_put(p->st, c->user, strlen(c->user), &sub);
    if (e == TDM_ECONFLICT)
        return srv_resp_error(r, 409, "conflict", "another endpoint of this user collides");
    if (e) return e;
    p->n.subscribed++;
    (void)s;
    return srv_resp_json(
        r, 201,
        json_pack("{s:b, s:s, s:I}", "subscribed", 1, "user", c->user, "rooms", (json_int_t)nr));
}

static tdm_err post_unsubscribe(struct srv_push *p, const srv_auth_claims *c, json_t *root,
                                srv_resp *r)
{
    json_t *ep = json_object_get(root, "endpoint");
    if (!json_is_string(ep) || json_string_length(ep) == 0 ||
        json_string_length(ep) > SRV_PUSH_ENDPOINT_MAX)
        return bad(r, "endpoint must be a string of 1 to 1024 bytes");
    tdm_err e = store_push_del(p->st, c->user, strlen(c->user), json_string_value(ep),
                               json_string_length(ep));
    if (e == TDM_ENOTFOUND)
        return srv_resp_error(r, 404, "not_found",
                              "no subscription of this user has that endpoint");
    if (e) return e;
    p->n.unsubscribed++;
    return srv_resp_json(r, 200, json_pack("{s:b}", "removed", 1));
}

tdm_err srv_push_post(srv *s, struct lws *wsi, const char *path, const uint8_t *body, size_t n,
                      srv_resp *r)
{
    struct srv_push *p = s->push;
    if (!p || !p->enabled) return off_503(r);
    srv_auth_claims c;
    bool anon, ok;
    tdm_err e = caller(s, wsi, &c, &anon, r, &ok);
    if (!ok) return e;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[200];
        snprintf(msg, sizeof msg, "malformed JSON: %s (at byte %d)", jerr.text, jerr.position);
        return bad(r, msg);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return bad(r, "the body must be a JSON object");
    }
    if (strcmp(path, "/api/push/subscribe") == 0)
        e = post_subscribe(s, p, &c, anon, root, r);
    else
        e = post_unsubscribe(p, &c, root, r);
    json_decref(root);
    return e;
}
