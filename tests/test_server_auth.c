/* test_server_auth.c - authorization over the real network: `tandem serve`
 * started with an HS256 secret (TANDEM_JWT_SECRET) or an ES256 public key
 * (--es256-key), tokens minted with the `tandem token` CLI and, for the bad
 * ones, derived from those by hand (payload edited without re-signing, alg
 * none, times moved back and re-signed with the secret, an HS256 token
 * signed with the ES256 public key's PEM as the secret). Clients are
 * sync_clients over real WebSockets (support/sync_peer).
 *
 * Tokens are checked per document: HELLO is answered WELCOME whatever the
 * token, and a SUBSCRIBE the token does not open is answered ERROR
 * NOT_ALLOWED whose text says why ("token expired", ...). The connection
 * stays open; a new HELLO with a good token (refresh) lets it subscribe. */
#define _XOPEN_SOURCE 700 /* mkdtemp, popen */
#include "client.h"
#include "msg.h"
#include "server_proc.h"
#include "sync_peer.h"
#include "ws_client.h"

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

#define SECRET  "0123456789abcdef0123456789abcdef-auth-suite"
#define SECRET2 "another-secret-another-secret-another-secret"

/* ---- tokens ------------------------------------------------------------------------ */

/* `tandem token ARGS...` with TANDEM_JWT_SECRET=secret (NULL: unset); the
 * token printed, malloc'd. */
static char *cli_token(const char *secret, const char *args)
{
    if (secret)
        setenv("TANDEM_JWT_SECRET", secret, 1);
    else
        unsetenv("TANDEM_JWT_SECRET");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' token %s", TANDEM_BIN, args);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int st = pclose(f);
    unsetenv("TANDEM_JWT_SECRET");
    ck_assert_msg(st == 0, "tandem token %s: exit %d", args, st);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    ck_assert_uint_gt(n, 20);
    return strdup(buf);
}

static char *b64url(const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *o = malloc(n * 4 / 3 + 4);
    ck_assert_ptr_nonnull(o);
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        o[j++] = tab[(v >> 18) & 63];
        o[j++] = tab[(v >> 12) & 63];
        if (i + 1 < n) o[j++] = tab[(v >> 6) & 63];
        if (i + 2 < n) o[j++] = tab[v & 63];
    }
    o[j] = '\0';
    return o;
}

/* Decode base64url s[0..n) into a malloc'd, NUL-terminated string. */
static char *unb64url(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    ck_assert_ptr_nonnull(o);
    size_t j = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = s[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        ck_assert_int_ge(v, 0);
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[j++] = (char)((acc >> bits) & 0xff);
        }
    }
    o[j] = '\0';
    return o;
}

/* header.payload of a JWT from JSON texts, signed with HMAC-SHA256 (key
 * NULL: no signature, "header.payload."). */
static char *jwt_make(const char *header, const char *payload, const uint8_t *key, size_t keylen)
{
    char *h = b64url((const uint8_t *)header, strlen(header));
    char *p = b64url((const uint8_t *)payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 2;
    char *in = malloc(n);
    ck_assert_ptr_nonnull(in);
    snprintf(in, n, "%s.%s", h, p);
    char *sig = strdup("");
    if (key) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned ml = 0;
        ck_assert_ptr_nonnull(
            HMAC(EVP_sha256(), key, (int)keylen, (const uint8_t *)in, strlen(in), mac, &ml));
        free(sig);
        sig = b64url(mac, ml);
    }
    size_t tn = strlen(in) + strlen(sig) + 2;
    char *tok = malloc(tn);
    ck_assert_ptr_nonnull(tok);
    snprintf(tok, tn, "%s.%s", in, sig);
    free(h);
    free(p);
    free(in);
    free(sig);
    return tok;
}

/* The payload JSON of a token (malloc'd). */
static char *jwt_payload(const char *tok)
{
    const char *a = strchr(tok, '.');
    ck_assert_ptr_nonnull(a);
    const char *b = strchr(a + 1, '.');
    ck_assert_ptr_nonnull(b);
    return unb64url(a + 1, (size_t)(b - a - 1));
}

/* The same claims with iat/nbf/exp moved back by `back_s`, signed with key. */
static char *jwt_moved_back(const char *tok, long back_s, const char *key)
{
    char *pl = jwt_payload(tok);
    json_t *v = json_loads(pl, 0, NULL);
    ck_assert_ptr_nonnull(v);
    static const char *const fields[] = {"iat", "nbf", "exp"};
    for (size_t i = 0; i < 3; i++) {
        json_t *f = json_object_get(v, fields[i]);
        ck_assert(json_is_integer(f));
        json_object_set_new(v, fields[i], json_integer(json_integer_value(f) - back_s));
    }
    char *moved = json_dumps(v, JSON_COMPACT);
    char *out =
        jwt_make("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", moved, (const uint8_t *)key, strlen(key));
    free(moved);
    json_decref(v);
    free(pl);
    return out;
}

/* The token with its payload edited (the user renamed) and the original
 * signature kept. */
static char *jwt_tampered(const char *tok)
{
    const char *a = strchr(tok, '.'), *b = strchr(a + 1, '.');
    char *pl = jwt_payload(tok);
    char *at = strstr(pl, "alice");
    ck_assert_ptr_nonnull(at);
    memcpy(at, "admin", 5);
    char *p = b64url((const uint8_t *)pl, strlen(pl));
    size_t n = (size_t)(a - tok) + strlen(p) + strlen(b) + 2;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    snprintf(out, n, "%.*s.%s%s", (int)(a - tok), tok, p, b);
    free(p);
    free(pl);
    return out;
}

/* ---- peers ------------------------------------------------------------------------- */

static bool answered(void *arg)
{
    np_peer *p = arg;
    np_pump(p);
    return p->subscribed > 0 || p->errors > 0;
}

/* Open a CRDT peer on `room` with `token`; wait for SUBSCRIBED or an ERROR. */
static void open_wait(np_peer *p, wsc_ctx *x, int port, const char *room, uint64_t id,
                      const char *token)
{
    np_open(p, x, port, room, id, false, token);
    ck_assert_msg(wsc_wait(x, answered, p, 10000), "no answer to SUBSCRIBE %s", room);
}

static bool synced1(void *arg)
{
    np_peer *p = arg;
    np_pump(p);
    return sync_client_synced(p->cl, p->ch);
}

/* The subscription was refused with NOT_ALLOWED and `why`; the connection
 * is still open. */
static void expect_refused(wsc_ctx *x, np_peer *p, const char *why)
{
    ck_assert_msg(p->err_count[SYNC_ERR_NOT_ALLOWED] == 1, "error %llu '%s'",
                  (unsigned long long)p->last_err_code, p->last_err_text);
    ck_assert_str_eq(p->last_err_text, why);
    ck_assert_int_eq(p->subscribed, 0);
    wsc_service(x, 100);
    np_pump(p);
    ck_assert(!sync_client_synced(p->cl, p->ch));
    ck_assert_int_eq(wsc_state_of(p->ws), WSC_OPEN);
}

static void start_hs256(srvp *s)
{
    srvp_opts o = {0};
    o.secret = SECRET;
    ck_assert_msg(srvp_start_opts(s, TANDEM_BIN, &o), "could not start the server");
}

/* ---- tests ------------------------------------------------------------------------- */

START_TEST(test_bad_tokens_refused)
{
    srvp s;
    start_hs256(&s);
    char *good = cli_token(SECRET, "--user alice --rooms 'team/*:rw'");
    char *other = cli_token(SECRET2, "--user alice --rooms 'team/*:rw'");
    char *tampered = jwt_tampered(good);
    char *pl = jwt_payload(good);
    char *none = jwt_make("{\"alg\":\"none\",\"typ\":\"JWT\"}", pl, NULL, 0);
    char *expired = jwt_moved_back(good, 7200, SECRET);
    char *fresh = jwt_moved_back(good, 0, SECRET); /* the same path, not moved: accepted */
    struct {
        const char *tok, *why;
    } bad[] = {
        {tampered, "bad token signature"},  {other, "bad token signature"},
        {none, "wrong token algorithm"},    {expired, "token expired"},
        {"abc.def.ghi", "malformed token"}, {NULL, "no token"},
    };
    size_t nbad = sizeof bad / sizeof bad[0];
    long refused0 = np_metric(s.port, "tandem_auth_refused_total");
    wsc_ctx *x = wsc_new();
    np_peer ok, fr, b[8];
    open_wait(&ok, x, s.port, "team/a", 1, good);
    ck_assert(wsc_wait(x, synced1, &ok, 10000));
    ck_assert_uint_eq(ok.access, SYNC_ACCESS_WRITE);
    open_wait(&fr, x, s.port, "team/a", 2, fresh);
    ck_assert(wsc_wait(x, synced1, &fr, 10000));
    for (size_t i = 0; i < nbad; i++) {
        open_wait(&b[i], x, s.port, "team/a", 10 + i, bad[i].tok);
        expect_refused(x, &b[i], bad[i].why);
    }
    /* every verification failure is counted (the missing token is not one) */
    ck_assert_int_eq(np_metric(s.port, "tandem_auth_refused_total") - refused0, (long)nbad - 1);
    /* nothing written through a refused channel reached the room */
    ck_assert_int_eq(crdt_doc_insert(b[3].doc, 0, "expired write", 13), TDM_OK);
    ck_assert_int_eq(sync_client_flush(b[3].cl, b[3].ch), TDM_OK);
    ck_assert_int_eq(crdt_doc_insert(ok.doc, 0, "ok", 2), TDM_OK);
    ck_assert_int_eq(sync_client_flush(ok.cl, ok.ch), TDM_OK);
    np_peer *g[] = {&ok, &fr};
    np_group grp = {g, 2};
    ck_assert(wsc_wait(x, np_all_converged, &grp, 10000));
    for (size_t i = 0; i < nbad; i++) np_pump(&b[i]);
    char path[1024];
    snprintf(path, sizeof path, "/api/rooms/team%%2Fa/text?token=%s", good);
    srvp_http r = srvp_get(s.port, path);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"text\":\"ok\""));
    srvp_http_free(&r);
    /* the refused connection stays; a refreshed token (new HELLO) opens a
     * document on it without reconnecting */
    np_peer *t = &b[3];
    ck_assert_int_eq(sync_client_set_token(t->cl, (const uint8_t *)good, strlen(good)), TDM_OK);
    crdt_doc *d2;
    ck_assert_int_eq(crdt_doc_new(99, &d2), TDM_OK);
    uint32_t ch2;
    ck_assert_int_eq(sync_client_subscribe_crdt(t->cl, "team/b", d2, false, &ch2), TDM_OK);
    uint64_t end = np_mono_ms() + 10000;
    while (!sync_client_synced(t->cl, ch2) && np_mono_ms() < end) {
        np_pump(t);
        wsc_service(x, 10);
    }
    ck_assert(sync_client_synced(t->cl, ch2));
    ck_assert_int_eq(wsc_state_of(t->ws), WSC_OPEN);
    wsc_free(x);
    np_free(&ok);
    np_free(&fr);
    for (size_t i = 0; i < nbad; i++) np_free(&b[i]);
    crdt_doc_free(d2);
    free(good), free(other), free(tampered), free(pl), free(none), free(expired), free(fresh);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

/* An EC P-256 key pair as PEM files in dir: priv.pem (PKCS#8), pub.pem. */
static void make_es256(const char *dir, char *priv, char *pub, size_t cap)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    snprintf(priv, cap, "%s/priv.pem", dir);
    snprintf(pub, cap, "%s/pub.pem", dir);
    FILE *f = fopen(priv, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    f = fopen(pub, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    EVP_PKEY_free(k);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *b = calloc(1, 4096);
    ck_assert_ptr_nonnull(b);
    size_t n = fread(b, 1, 4095, f);
    fclose(f);
    b[n] = '\0';
    return b;
}

START_TEST(test_es256_server_refuses_hs256)
{
    char dir[] = "/tmp/tandem-auth-XXXXXX", priv[256], pub[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_es256(dir, priv, pub, sizeof priv);
    srvp s;
    const char *args[] = {"--es256-key", pub, NULL};
    srvp_opts o = {0};
    o.prod = true;
    o.args = args;
    ck_assert_msg(srvp_start_opts(&s, TANDEM_BIN, &o), "could not start the server");
    char targs[512];
    snprintf(targs, sizeof targs, "--user alice --rooms '*:rw' --es256-key '%s'", priv);
    char *es = cli_token(NULL, targs);
    /* algorithm confusion: HS256 with the public key's PEM as the secret */
    char *pem = read_file(pub);
    char *hs = cli_token(pem, "--user alice --rooms '*:rw'");
    char *pl = jwt_payload(es);
    char *none = jwt_make("{\"alg\":\"none\",\"typ\":\"JWT\"}", pl, NULL, 0);
    wsc_ctx *x = wsc_new();
    np_peer ok, h, n;
    open_wait(&ok, x, s.port, "doc", 1, es);
    ck_assert(wsc_wait(x, synced1, &ok, 10000));
    ck_assert_uint_eq(ok.access, SYNC_ACCESS_WRITE);
    open_wait(&h, x, s.port, "doc", 2, hs);
    expect_refused(x, &h, "wrong token algorithm");
    open_wait(&n, x, s.port, "doc", 3, none);
    expect_refused(x, &n, "wrong token algorithm");
    wsc_free(x);
    np_free(&ok);
    np_free(&h);
    np_free(&n);
    free(es), free(pem), free(hs), free(pl), free(none);
    ck_assert_int_eq(srvp_stop(&s), 0);
    unlink(priv);
    unlink(pub);
    rmdir(dir);
}
END_TEST

static bool aw_has(void *arg)
{
    np_peer **pp = arg;
    np_pump(pp[0]);
    np_pump(pp[1]);
    aw_entry e;
    return aw_get(pp[0]->aw, pp[1]->client_id, &e) == TDM_OK;
}

START_TEST(test_read_only_token)
{
    srvp s;
    start_hs256(&s);
    char *wtok = cli_token(SECRET, "--user alice --rooms 'doc:rw'");
    char *rtok = cli_token(SECRET, "--user bob --name Bob --rooms 'doc:r'");
    wsc_ctx *x = wsc_new();
    np_peer w, r, ro;
    open_wait(&w, x, s.port, "doc", 1, wtok);
    open_wait(&r, x, s.port, "doc", 2, rtok);
    np_open(&ro, x, s.port, "doc", 3, true, rtok); /* an OT reader */
    np_peer *ps[] = {&w, &r, &ro};
    np_group g = {ps, 3};
    ck_assert(wsc_wait(x, np_all_synced, &g, 10000));
    ck_assert_uint_eq(w.access, SYNC_ACCESS_WRITE);
    ck_assert_uint_eq(r.access, SYNC_ACCESS_READ);
    ck_assert_uint_eq(ro.access, SYNC_ACCESS_READ);
    /* sync works for the readers */
    ck_assert_int_eq(crdt_doc_insert(w.doc, 0, "shared", 6), TDM_OK);
    ck_assert_int_eq(sync_client_flush(w.cl, w.ch), TDM_OK);
    ck_assert(wsc_wait(x, np_all_converged, &g, 10000));
    /* presence works both ways */
    np_presence(&r, "{\"cursor\":2}");
    np_peer *wr[] = {&w, &r}, *rw[] = {&r, &w};
    ck_assert(wsc_wait(x, aw_has, wr, 10000));
    np_presence(&w, "{\"cursor\":0}");
    ck_assert(wsc_wait(x, aw_has, rw, 10000));
    /* updates from the readers are refused with an error and not applied */
    ck_assert_int_eq(crdt_doc_insert(r.doc, 0, "nope ", 5), TDM_OK);
    ck_assert_int_eq(sync_client_flush(r.cl, r.ch), TDM_OK);
    ot_op *op;
    ck_assert_int_eq(ot_op_new(&op), TDM_OK);
    ck_assert_int_eq(ot_op_insert(op, "ot nope ", 8), TDM_OK);
    ck_assert_int_eq(ot_op_retain(op, 6), TDM_OK);
    ck_assert_int_eq(sync_client_ot_edit(ro.cl, ro.ch, op), TDM_OK);
    ot_op_free(op);
    uint64_t end = np_mono_ms() + 10000;
    while ((r.errors == 0 || ro.errors == 0) && np_mono_ms() < end) {
        for (size_t i = 0; i < 3; i++) np_pump(ps[i]);
        wsc_service(x, 10);
    }
    ck_assert_uint_eq(r.err_count[SYNC_ERR_NOT_ALLOWED], 1);
    ck_assert_str_eq(r.last_err_text, "read-only");
    ck_assert_uint_eq(r.last_err_ref, 1); /* names the refused update's seq */
    ck_assert_uint_eq(ro.err_count[SYNC_ERR_NOT_ALLOWED], 1);
    ck_assert_str_eq(ro.last_err_text, "read-only");
    /* the writer's edit after that still reaches everyone; the text never had
     * the readers' edits */
    ck_assert_int_eq(crdt_doc_insert(w.doc, 6, "!", 1), TDM_OK);
    ck_assert_int_eq(sync_client_flush(w.cl, w.ch), TDM_OK);
    np_peer *wo[] = {&w, &ro};
    np_group g2 = {wo, 2};
    ck_assert(wsc_wait(x, np_all_converged, &g2, 10000));
    char *t = np_text(&w);
    ck_assert_str_eq(t, "shared!");
    free(t);
    char path[1024];
    snprintf(path, sizeof path, "/api/rooms/doc/text?token=%s", rtok);
    srvp_http h = srvp_get(s.port, path);
    ck_assert_int_eq(h.status, 200);
    ck_assert_ptr_nonnull(strstr(h.body, "\"text\":\"shared!\""));
    srvp_http_free(&h);
    ck_assert_int_eq(wsc_state_of(r.ws), WSC_OPEN);
    ck_assert_int_eq(wsc_state_of(ro.ws), WSC_OPEN);
    wsc_free(x);
    for (size_t i = 0; i < 3; i++) np_free(ps[i]);
    free(wtok), free(rtok);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

START_TEST(test_room_acl_globs)
{
    srvp s;
    start_hs256(&s);
    char *tok = cli_token(SECRET, "--user carol --rooms 'team/*:rw' --rooms 'team/secret*:none' "
                                  "--rooms 'pub/?:r' --rooms 'lit\\*:rw'");
    struct {
        const char *room;
        unsigned access; /* NONE: refused */
    } want[] = {
        {"team/a", SYNC_ACCESS_WRITE},     {"team/", SYNC_ACCESS_WRITE},
        {"team/secret", SYNC_ACCESS_NONE}, {"team/secret/x", SYNC_ACCESS_NONE},
        {"pub/x", SYNC_ACCESS_READ},       {"pub/xy", SYNC_ACCESS_NONE},
        {"pub/", SYNC_ACCESS_NONE},        {"lit*", SYNC_ACCESS_WRITE},
        {"litx", SYNC_ACCESS_NONE},        {"other", SYNC_ACCESS_NONE},
        {"Team/a", SYNC_ACCESS_NONE},
    };
    size_t n = sizeof want / sizeof want[0];
    wsc_ctx *x = wsc_new();
    np_peer *ps = calloc(n, sizeof *ps);
    ck_assert_ptr_nonnull(ps);
    for (size_t i = 0; i < n; i++) {
        open_wait(&ps[i], x, s.port, want[i].room, 100 + i, tok);
        if (want[i].access == SYNC_ACCESS_NONE) {
            ck_assert_msg(ps[i].subscribed == 0, "%s opened", want[i].room);
            expect_refused(x, &ps[i], "no access to this document");
        } else {
            ck_assert_msg(ps[i].subscribed == 1, "%s refused: %s", want[i].room,
                          ps[i].last_err_text);
            ck_assert_uint_eq(ps[i].access, want[i].access);
        }
    }
    wsc_free(x);
    for (size_t i = 0; i < n; i++) np_free(&ps[i]);
    free(ps);
    free(tok);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

START_TEST(test_rate_limited_chat)
{
    srvp s;
    start_hs256(&s);
    char *atok = cli_token(SECRET, "--user alice --rooms '*:rw'");
    char *btok = cli_token(SECRET, "--user bob --rooms '*:rw'");
    wsc_ctx *x = wsc_new();
    np_peer a, b;
    open_wait(&a, x, s.port, "rl", 1, atok);
    open_wait(&b, x, s.port, "rl", 2, btok);
    np_peer *ps[] = {&a, &b};
    np_group g = {ps, 2};
    ck_assert(wsc_wait(x, np_all_synced, &g, 10000));
    /* chat is 2/s with a burst of 10 per user: 20 at once overflow it */
    for (int i = 0; i < 20; i++) {
        char t[16];
        snprintf(t, sizeof t, "m%d", i);
        ck_assert_int_eq(sync_client_chat_send(a.cl, a.ch, t, strlen(t), NULL), TDM_OK);
    }
    uint64_t end = np_mono_ms() + 10000;
    while (a.chat_acks + a.err_count[SYNC_ERR_RATE_LIMITED] < 20 && np_mono_ms() < end) {
        np_pump(&a);
        np_pump(&b);
        wsc_service(x, 10);
    }
    uint64_t limited = a.err_count[SYNC_ERR_RATE_LIMITED];
    ck_assert_uint_ge(a.chat_acks, 10);
    ck_assert_uint_ge(limited, 1);
    ck_assert_uint_eq(a.chat_acks + limited, 20);
    ck_assert_uint_gt(a.last_err_retry_ms, 0); /* retry after */
    ck_assert_uint_gt(a.last_err_ref, 0);      /* names the refused message */
    ck_assert_int_eq(wsc_state_of(a.ws), WSC_OPEN);
    /* the refused messages were dropped: only the acked ones are stored */
    char path[1024];
    snprintf(path, sizeof path, "/api/rooms/rl/messages?limit=100&token=%s", atok);
    srvp_http h = srvp_get(s.port, path);
    ck_assert_int_eq(h.status, 200);
    json_t *v = json_loadb(h.body, h.len, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(v, "messages")), a.chat_acks);
    json_decref(v);
    srvp_http_free(&h);
    /* another user's bucket is separate */
    ck_assert_int_eq(sync_client_chat_send(b.cl, b.ch, "bob", 3, NULL), TDM_OK);
    end = np_mono_ms() + 10000;
    while (b.chat_acks == 0 && np_mono_ms() < end) {
        np_pump(&b);
        wsc_service(x, 10);
    }
    ck_assert_uint_eq(b.chat_acks, 1);
    ck_assert_uint_eq(b.err_count[SYNC_ERR_RATE_LIMITED], 0);
    /* after retry_ms the client resends what was refused and it is stored */
    uint64_t wait_ms = a.last_err_retry_ms + 50;
    struct timespec nap = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
    nanosleep(&nap, NULL); /* the documented retry-after */
    uint64_t acks = a.chat_acks;
    ck_assert_int_eq(sync_client_retry(a.cl), TDM_OK);
    end = np_mono_ms() + 10000;
    while (a.chat_acks == acks && np_mono_ms() < end) {
        np_pump(&a);
        wsc_service(x, 10);
    }
    ck_assert_uint_gt(a.chat_acks, acks);
    wsc_free(x);
    np_free(&a);
    np_free(&b);
    free(atok), free(btok);
    ck_assert_int_eq(srvp_stop(&s), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("server_auth");
    TCase *tc = tcase_create("auth");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_tokens_refused);
    tcase_add_test(tc, test_es256_server_refuses_hs256);
    tcase_add_test(tc, test_read_only_token);
    tcase_add_test(tc, test_room_acl_globs);
    tcase_add_test(tc, test_rate_limited_chat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
