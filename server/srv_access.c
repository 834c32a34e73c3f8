/* srv_access.c - who may do what: JWT bearer tokens (auth.h) for WebSocket
 * subscriptions and the room API, and per-user rate limits (ratelimit.h).
 *
 * Tokens: from the HELLO frame (WebSocket), or the Authorization: Bearer
 * header / the ?token= query parameter (HTTP). The verifier is HS256 with
 * the secret from cfg.secret_file or TANDEM_JWT_SECRET, or ES256 with
 * cfg.es256_key_file. Without any of them the server refuses to start unless
 * cfg.dev is set.
 * Development mode (cfg.dev, only when asked for): a random HS256 secret is
 * generated for the run, and a connection or request WITHOUT a token gets
 * write access to every room as user "anon"; a token that is given is still
 * verified. Service thread only. */
#include "srv_internal.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "ratelimit.h"

static void fill_random(uint8_t *p, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY);
    size_t got = 0;
    if (fd >= 0) {
        while (got < n) {
            ssize_t r = read(fd, p + got, n - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
        close(fd);
    }
    if (got < n) abort(); /* no randomness: never run with a guessable secret */
}

tdm_err srv_access_open(srv *s)
{
    const srv_config *c = &s->cfg;
    srv_auth_config ac;
    memset(&ac, 0, sizeof ac);
    ac.audience = c->audience;
    uint8_t secret[32];
    if (c->es256_key_file) {
        ac.alg = SRV_AUTH_ES256;
        ac.public_key_file = c->es256_key_file;
    } else if (c->secret_file) {
        ac.alg = SRV_AUTH_HS256;
        ac.secret_file = c->secret_file;
    } else if (getenv(SRV_AUTH_SECRET_ENV)) {
        ac.alg = SRV_AUTH_HS256;
        ac.secret_env = SRV_AUTH_SECRET_ENV;
    } else if (c->dev) {
        fill_random(secret, sizeof secret);
        ac.alg = SRV_AUTH_HS256;
        ac.secret = secret;
        ac.secret_len = sizeof secret;
    } else {
        fprintf(stderr,
                "tandem serve: no token verification configured: give --secret-file, "
                "%s or --es256-key (or --dev for development)\n",
                SRV_AUTH_SECRET_ENV);
        return TDM_EINVAL;
    }
    tdm_err e = srv_auth_new(&ac, &s->auth);
    memset(secret, 0, sizeof secret);
    if (e) {
        fprintf(stderr, "tandem serve: token configuration: %s\n", tdm_strerror(e));
        return e;
    }
    srv_rl_opts ro;
    memset(&ro, 0, sizeof ro);
    fill_random((uint8_t *)ro.hash_seed, sizeof ro.hash_seed);
    srv_rl_rate *cr = &ro.rate[SRV_RL_CONNECT];
    if (c->connect_per_s == 0) {
        cr->off = true;
    } else {
        cr->count = c->connect_per_s;
        cr->period_ms = 1000;
        cr->burst = c->connect_burst ? c->connect_burst : c->connect_per_s;
    }
    return srv_rl_new(&ro, &s->rl);
}

void srv_access_close(srv *s)
{
    srv_auth_free(s->auth);
    srv_rl_free(s->rl);
    s->auth = NULL;
    s->rl = NULL;
}

static void copy_str(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > SYNCM_MAX_USER) n = SYNCM_MAX_USER;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

tdm_err srv_access_ws(void *ctx, const sync_session *session, const uint8_t *token,
                      size_t token_len, const char *name, sync_auth *out)
{
    srv *s = ctx;
    (void)session;
    out->access = SYNC_ACCESS_NONE;
    if (token_len == 0) {
        if (s->cfg.dev) {
            out->access = SYNC_ACCESS_WRITE;
            copy_str(out->user, "anon");
            copy_str(out->display, "anon");
        } else {
            out->why = "no token";
        }
        return TDM_OK;
    }
    srv_auth_claims c;
    if (srv_auth_verify(s->auth, token, token_len, srv_now_ms(), &c) != TDM_OK) {
        s->n.auth_refused++;
        out->why = srv_auth_reason_str(c.reason); /* "token expired", ... */
        return TDM_OK;
    }
    out->access = (unsigned)srv_auth_access(&c, name, strlen(name));
    if (out->access == SYNC_ACCESS_NONE) out->why = "no access to this document";
    copy_str(out->user, c.user);
    copy_str(out->display, c.name);
    return TDM_OK;
}

unsigned srv_access_http_claims(srv *s, struct lws *wsi, srv_auth_claims *c, bool *anon)
{
    char hdr[SRV_AUTH_TOKEN_MAX + 64];
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    const char *t = NULL;
    size_t tn = 0;
    *anon = false;
    int hl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (hl > 0) {
        if (hl >= (int)sizeof hdr ||
            lws_hdr_copy(wsi, hdr, sizeof hdr, WSI_TOKEN_HTTP_AUTHORIZATION) < 0 ||
            srv_auth_bearer_from_header(hdr, strlen(hdr), &t, &tn) != TDM_OK)
            return 401;
    } else if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0) {
        const char *v = lws_get_urlarg_by_name(wsi, "token=", tok, sizeof tok);
        if (v) t = v, tn = strlen(v);
    }
    if (!t || tn == 0) {
        if (!s->cfg.dev) return 401;
        memset(c, 0, sizeof *c);
        copy_str(c->user, "anon");
        copy_str(c->name, "anon");
        *anon = true;
        return 0;
    }
    if (srv_auth_verify(s->auth, (const uint8_t *)t, tn, srv_now_ms(), c) != TDM_OK) {
        s->n.auth_refused++;
        return 401;
    }
    return 0;
}

unsigned srv_access_http(srv *s, struct lws *wsi, const char *room)
{
    srv_auth_claims c;
    bool anon;
    unsigned st = srv_access_http_claims(s, wsi, &c, &anon);
    if (st || anon || !room) return st; /* the room list: any valid token */
    return srv_auth_access(&c, room, strlen(room)) >= SRV_AUTH_READ ? 0 : 403;
}

uint64_t srv_access_rate(void *ctx, const sync_session *session, const char *user,
                         sync_rate_kind kind, uint64_t now_ms)
{
    srv *s = ctx;
    (void)session;
    srv_rl_kind k;
    switch (kind) {
    case SYNC_RATE_UPDATE:
    case SYNC_RATE_OT:
        k = SRV_RL_UPDATE;
        break;
    case SYNC_RATE_CHAT:
        k = SRV_RL_CHAT;
        break;
    case SYNC_RATE_AWARENESS:
    case SYNC_RATE_TYPING:
        k = SRV_RL_AWARENESS;
        break;
    default:
        return 0;
    }
    return srv_rl_check(s->rl, k, user, strlen(user), now_ms);
}

/* Is peer text p a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
static bool is_loopback(const char *p)
{
    if (strncmp(p, "::ffff:", 7) == 0) p += 7;
    return strncmp(p, "127.", 4) == 0 || strcmp(p, "::1") == 0;
}

uint64_t srv_access_connect(srv *s, struct lws *wsi)
{
    if (s->cfg.connect_per_s == 0) return 0;
    char ip[64];
    const char *p = lws_get_peer_simple(wsi, ip, sizeof ip);
    if (!p || !*p) return 0; /* no peer address (not a socket): nothing to key on */
    if (!s->cfg.connect_limit_loopback && is_loopback(p)) return 0;
    uint64_t retry = srv_rl_check(s->rl, SRV_RL_CONNECT, p, strlen(p), srv_now_ms());
    if (retry) s->n.connect_limited++;
    return retry;
}

tdm_err srv_access_dev_token(srv *s, struct lws *wsi, srv_resp *r)
{
    char user[SRV_AUTH_USER_MAX + 2], name[SRV_AUTH_USER_MAX + 2];
    const char *u = lws_get_urlarg_by_name(wsi, "user=", user, sizeof user);
    const char *nm = lws_get_urlarg_by_name(wsi, "name=", name, sizeof name);
    if (!u || !*u || strlen(u) > SRV_AUTH_USER_MAX)
        return srv_resp_error(r, 400, "bad_request", "user= must be 1 to 255 bytes");
    if (nm && strlen(nm) > SRV_AUTH_USER_MAX)
        return srv_resp_error(r, 400, "bad_request", "name= must be at most 255 bytes");
    if (!nm || !*nm) nm = u;
    if (!srv_auth_can_mint(s->auth))
        return srv_resp_error(r, 501, "cannot_mint", "the configured key cannot mint tokens");
    static const char *const rooms[] = {"*:rw"};
    char *tok = malloc(SRV_AUTH_TOKEN_MAX + 1);
    if (!tok) return TDM_ENOMEM;
    uint64_t now = srv_now_ms();
    size_t tn = 0;
    tdm_err e = srv_auth_mint(s->auth, u, nm, rooms, 1, SRV_DEV_TOKEN_TTL_S, now, tok,
                              SRV_AUTH_TOKEN_MAX + 1, &tn);
    if (e == TDM_EINVAL || e == TDM_EMALFORMED) {
        free(tok);
        return srv_resp_error(r, 400, "bad_request", "user= or name= is not acceptable");
    }
    if (e) {
        free(tok);
        return e;
    }
    e = srv_resp_json(r, 200,
                      json_pack("{s:s%, s:I}", "token", tok, tn, "expires_at",
                                (json_int_t)(now / 1000u + SRV_DEV_TOKEN_TTL_S)));
    free(tok);
    return e;
}

void srv_access_tick(srv *s, uint64_t now_ms)
{
    srv_rl_sweep(s->rl, now_ms);
}
