/* fuzz_token.c - libFuzzer harness for the server's untrusted request inputs
 * that need no socket: bearer tokens (server/auth.h) and static-file path
 * resolution (srv_static_resolve in server/srv_static.c).
 *
 * Fixed keys: an HS256 verifier/minter with a 32-byte secret, an ES256
 * verifier/minter with a fixed P-256 key, and a second HS256 verifier with
 * another secret. Known-good tokens are minted once per process (both
 * algorithms). Byte 0 % 5 picks the mode; the rest is the input:
 *   0: the bytes as a token, verified by all three verifiers at a fixed
 *      time. Refusals are TDM_EMALFORMED (reason set, claims zeroed) or
 *      TDM_ETOOBIG (over SRV_AUTH_TOKEN_MAX). An accepted token must be
 *      three base64url parts; for HS256 its signature must equal the
 *      HMAC-SHA256 of "HEADER.PAYLOAD" recomputed here with OpenSSL
 *      (independently of libjwt); for ES256 its "HEADER.PAYLOAD" must be
 *      that of a token we minted (nothing else was signed with the key); the
 *      other-secret verifier must refuse it unless the HMAC matches its key;
 *      verifying again gives the same claims; rule offsets lie in the pool.
 *   1: a known-good token (bit 0 of byte 1: HS256 or ES256) mutated by
 *      (position, byte) pairs from the input, then verified: refused, or the
 *      HS256 token is byte-for-byte the original, or the ES256 token keeps
 *      the original's "HEADER.PAYLOAD" and yields the original's claims.
 *   2: the bytes as an Authorization header value (srv_auth_bearer_from_header)
 *      and as a URL query (srv_auth_token_from_query): the token found lies
 *      inside the header value and is a token68; the query value is
 *      NUL-terminated, within the cap, and only base64url characters and
 *      '.'; whatever is found is then verified as in mode 0.
 *   3: srv_auth_parse_rule and srv_auth_glob on a pattern and a name split
 *      from the input: a pattern without '*', '?' and '\\' matches exactly
 *      the equal name; "*" matches everything; a rule's pattern length is
 *      below its length; srv_auth_access of claims built from the rule.
 *   4: the bytes (up to the first NUL) as a request path for
 *      srv_static_resolve over a web root made once per process (files, a
 *      hidden file, a directory with index.html, a symlink to a file outside
 *      the root and one to a directory outside it): a resolved path lies
 *      strictly inside the root's realpath, names a regular file, never the
 *      outside file, and the request path had no "/." segment, '%', '\\',
 *      "//" or control byte; refusals are 403 or 404.
 * Nothing leaks (LeakSanitizer).
 */
#define _XOPEN_SOURCE 700
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "srv_internal.h"
#include "fuzz_util.h"

#define FT_NOW_MS 1700000000000ull

static const char ft_es_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg6o8FmqSvTMF+bkf7\n"
                                "jghwKV8wvDgbUxFSf0m32pg7SWehRANCAAQqn4yt3C2c2+bjSAZv+2RN3psMfbjt\n"
                                "hgQ5T6hhu+Qf2G+RV4vaUlgifHe7yqHL0v/OaVDrsm0IfbwPfI3xQEeq\n"
                                "-----END PRIVATE KEY-----\n";
static const uint8_t ft_secret[32] = "tandem-fuzz-secret-0123456789abc";
static const uint8_t ft_secret2[32] = "another-secret-for-the-fuzzer-xy";

static srv_auth *ft_hs, *ft_es, *ft_hs2;
#define FT_NGOOD 3
static char ft_good_hs[FT_NGOOD][SRV_AUTH_TOKEN_MAX + 1];
static char ft_good_es[FT_NGOOD][SRV_AUTH_TOKEN_MAX + 1];
static size_t ft_good_hs_len[FT_NGOOD], ft_good_es_len[FT_NGOOD];
static srv_auth_claims ft_claims_hs[FT_NGOOD], ft_claims_es[FT_NGOOD];

static srv *ft_srv;           /* only web_real is used */
static char ft_outside[4096]; /* realpath of the file outside the root */

static void ft_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fputs(text, f) >= 0);
    FZ_CHECK(fclose(f) == 0);
}

static void ft_make_root(void)
{
    char base[] = "/tmp/tandem-fuzz-web.XXXXXX";
    FZ_CHECK(mkdtemp(base) != NULL);
    char p[4200], q[4200];
    snprintf(p, sizeof p, "%s/root", base);
    FZ_CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/secret.txt", base);
    ft_write(p, "outside");
    FZ_CHECK(realpath(p, ft_outside) != NULL);
    snprintf(p, sizeof p, "%s/root/index.html", base);
    ft_write(p, "<p>hi</p>");
    snprintf(p, sizeof p, "%s/root/app.js", base);
    ft_write(p, "1");
    snprintf(p, sizeof p, "%s/root/.hidden", base);
    ft_write(p, "h");
    snprintf(p, sizeof p, "%s/root/sub", base);
    FZ_CHECK(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/root/sub/index.html", base);
    ft_write(p, "sub");
    snprintf(p, sizeof p, "%s/root/sub/a.css", base);
    ft_write(p, "a{}");
    snprintf(p, sizeof p, "%s/secret.txt", base);
    snprintf(q, sizeof q, "%s/root/link.txt", base);
    FZ_CHECK(symlink(p, q) == 0);
    snprintf(q, sizeof q, "%s/root/out", base);
    FZ_CHECK(symlink(base, q) == 0);
    ft_srv = calloc(1, sizeof *ft_srv);
    FZ_CHECK(ft_srv != NULL);
    snprintf(p, sizeof p, "%s/root", base);
    FZ_CHECK(realpath(p, ft_srv->web_real) != NULL);
    /* the directory stays for the process's lifetime (files are tiny); it
     * is removed at exit */
}

static char ft_base_dir[4096];
static void ft_cleanup(void)
{
    char cmd[4200];
    if (!ft_base_dir[0]) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ft_base_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_token: could not remove %s\n", ft_base_dir);
    free(ft_srv);
}

static void ft_mint(srv_auth *a, int i, char *out, size_t *len, srv_auth_claims *cl)
{
    static const char *const rooms0[] = {"*:r", "team/?*:rw", "team/secret:none"};
    static const char *const rooms1[] = {"doc:rw"};
    const char *const *rooms = i == 0 ? rooms0 : rooms1;
    size_t nrooms = i == 0 ? 3 : i == 1 ? 1 : 0;
    const char *user = i == 2 ? "\xc3\xa9ve" : "alice";
    FZ_OK(srv_auth_mint(a, user, i == 1 ? "Alice A." : NULL, rooms, nrooms, 3600, FT_NOW_MS, out,
                        SRV_AUTH_TOKEN_MAX + 1, len));
    FZ_OK(srv_auth_verify(a, (const uint8_t *)out, *len, FT_NOW_MS + 1000, cl));
}

/* ft_put_seed - with FUZZ_TOKEN_SEEDS=<dir> set, Initialize writes the seed
 * corpus there (the minted tokens in every mode, headers, queries, rules and
 * paths) and the process exits. */
static void ft_put_seed(const char *dir, const char *name, uint8_t mode, const void *p, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(&mode, 1, 1, f) == 1);
    FZ_CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    FZ_CHECK(fclose(f) == 0);
}

static void ft_write_seeds(const char *dir)
{
    char buf[SRV_AUTH_TOKEN_MAX + 64], name[64];
    for (int i = 0; i < FT_NGOOD; i++) {
        snprintf(name, sizeof name, "token-hs-%d", i);
        ft_put_seed(dir, name, 0, ft_good_hs[i], ft_good_hs_len[i]);
        snprintf(name, sizeof name, "token-es-%d", i);
        ft_put_seed(dir, name, 0, ft_good_es[i], ft_good_es_len[i]);
        uint8_t mut[] = {(uint8_t)(i << 1 | (i & 1)), 17, 'A', 200, 'x'};
        snprintf(name, sizeof name, "mutate-%d", i);
        ft_put_seed(dir, name, 1, mut, sizeof mut);
    }
    int k = snprintf(buf, sizeof buf, "Bearer  %s ", ft_good_hs[0]);
    ft_put_seed(dir, "header-bearer", 2, buf, (size_t)k);
    k = snprintf(buf, sizeof buf, "?room=a%%2Fb&token=%s&x", ft_good_es[1]);
    ft_put_seed(dir, "query-token", 2, buf, (size_t)k);
    ft_put_seed(dir, "query-escaped", 2, "token=ab%2Ecd%2e", 16);
    static const char team[] = "\x0bteam/?*:rwteam/\xc3\xa9", esc[] = "\x05"
                                                                      "a\\*b:nonea*b";
    ft_put_seed(dir, "rule-team", 3, team, sizeof team - 1);
    ft_put_seed(dir, "rule-escape", 3, esc, sizeof esc - 1);
    static const char *const paths[] = {"/",         "/index.html",     "/sub/", "/sub/a.css",
                                        "/link.txt", "/out/secret.txt", "/../x", "/.hidden"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(name, sizeof name, "path-%zu", i);
        ft_put_seed(dir, name, 4, paths[i], strlen(paths[i]));
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    srv_auth_config hs = {.alg = SRV_AUTH_HS256, .secret = ft_secret, .secret_len = 32};
    srv_auth_config hs2 = {.alg = SRV_AUTH_HS256, .secret = ft_secret2, .secret_len = 32};
    srv_auth_config es = {.alg = SRV_AUTH_ES256, .private_key_pem = ft_es_pem};
    FZ_OK(srv_auth_new(&hs, &ft_hs));
    FZ_OK(srv_auth_new(&hs2, &ft_hs2));
    FZ_OK(srv_auth_new(&es, &ft_es));
    for (int i = 0; i < FT_NGOOD; i++) {
        ft_mint(ft_hs, i, ft_good_hs[i], &ft_good_hs_len[i], &ft_claims_hs[i]);
        ft_mint(ft_es, i, ft_good_es[i], &ft_good_es_len[i], &ft_claims_es[i]);
    }
    ft_make_root();
    FZ_CHECK(strlen(ft_srv->web_real) < sizeof ft_base_dir);
    memcpy(ft_base_dir, ft_srv->web_real, strlen(ft_srv->web_real) - strlen("/root"));
    atexit(ft_cleanup);
    const char *seeds = getenv("FUZZ_TOKEN_SEEDS");
    if (seeds) {
        ft_write_seeds(seeds);
        exit(0);
    }
    return 0;
}

static bool ft_b64url(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* ft_b64url_decode - decode a base64url part without padding; -1 if not */
static long ft_b64url_decode(const uint8_t *p, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (k >= cap) return -1;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)k;
}

static bool ft_claims_eq(const srv_auth_claims *a, const srv_auth_claims *b)
{
    if (a->reason != b->reason || strcmp(a->user, b->user) || strcmp(a->name, b->name) ||
        a->exp != b->exp || a->nbf != b->nbf || a->iat != b->iat || a->nrules != b->nrules)
        return false;
    for (size_t i = 0; i < a->nrules; i++) {
        const srv_auth_rule *x = &a->rules[i], *y = &b->rules[i];
        if (x->len != y->len || x->access != y->access ||
            memcmp(a->pool + x->off, b->pool + y->off, x->len))
            return false;
    }
    return true;
}

static void ft_check_claims(const srv_auth_claims *c)
{
    FZ_CHECK(c->reason == SRV_AUTH_OK);
    size_t ul = strnlen(c->user, sizeof c->user);
    FZ_CHECK(ul >= 1 && ul <= SRV_AUTH_USER_MAX);
    FZ_CHECK(strnlen(c->name, sizeof c->name) <= SRV_AUTH_USER_MAX);
    FZ_CHECK(c->nrules <= SRV_AUTH_RULES_MAX);
    for (size_t i = 0; i < c->nrules; i++) {
        FZ_CHECK(c->rules[i].len >= 1 && c->rules[i].len <= SRV_AUTH_PATTERN_MAX);
        FZ_CHECK((size_t)c->rules[i].off + c->rules[i].len <= SRV_AUTH_POOL_MAX);
        FZ_CHECK(c->rules[i].access <= SRV_AUTH_WRITE);
    }
}

/* ft_hmac_ok - the third part of token p[0..n) is the HMAC-SHA256 of the
 * first two under `key` */
static bool ft_hmac_ok(const uint8_t *p, size_t n, const uint8_t *key)
{
    const uint8_t *dot2 = NULL;
    for (size_t i = n; i-- > 0;)
        if (p[i] == '.') {
            dot2 = p + i;
            break;
        }
    if (!dot2) return false;
    uint8_t sig[64], mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    long sl = ft_b64url_decode(dot2 + 1, n - (size_t)(dot2 + 1 - p), sig, sizeof sig);
    FZ_CHECK(HMAC(EVP_sha256(), key, 32, p, (size_t)(dot2 - p), mac, &maclen) != NULL);
    return sl == (long)maclen && memcmp(sig, mac, maclen) == 0;
}

/* ft_signing_input_len - bytes before the last '.' */
static size_t ft_signing_input_len(const uint8_t *p, size_t n)
{
    for (size_t i = n; i-- > 0;)
        if (p[i] == '.') return i;
    return 0;
}

/* ft_verify_one - verify p[0..n) with a and check the result's shape;
 * true when accepted (claims in *c) */
static bool ft_verify_one(const srv_auth *a, const uint8_t *p, size_t n, srv_auth_claims *c)
{
    tdm_err e = srv_auth_verify(a, p, n, FT_NOW_MS + 1000, c);
    if (e != TDM_OK) {
        FZ_CHECK(e == TDM_EMALFORMED || e == TDM_ETOOBIG);
        FZ_CHECK(e != TDM_ETOOBIG || n > SRV_AUTH_TOKEN_MAX);
        FZ_CHECK(c->reason != SRV_AUTH_OK && c->reason < SRV_AUTH_REASON_COUNT_);
        FZ_CHECK(c->user[0] == 0 && c->nrules == 0);
        FZ_CHECK(srv_auth_reason_str(c->reason) != NULL);
        return false;
    }
    ft_check_claims(c);
    /* three base64url parts */
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '.')
            dots++;
        else
            FZ_CHECK(ft_b64url(p[i]));
    }
    FZ_CHECK(dots == 2);
    srv_auth_claims again;
    FZ_OK(srv_auth_verify(a, p, n, FT_NOW_MS + 1000, &again));
    FZ_CHECK(ft_claims_eq(c, &again));
    return true;
}

static void ft_verify_all(const uint8_t *p, size_t n)
{
    srv_auth_claims c;
    if (ft_verify_one(ft_hs, p, n, &c)) FZ_CHECK(ft_hmac_ok(p, n, ft_secret));
    if (ft_verify_one(ft_hs2, p, n, &c)) FZ_CHECK(ft_hmac_ok(p, n, ft_secret2));
    if (ft_verify_one(ft_es, p, n, &c)) {
        size_t sl = ft_signing_input_len(p, n);
        bool ours = false;
        for (int i = 0; i < FT_NGOOD && !ours; i++) {
            size_t gl = ft_signing_input_len((const uint8_t *)ft_good_es[i], ft_good_es_len[i]);
            if (gl == sl && memcmp(ft_good_es[i], p, sl) == 0) {
                ours = true;
                FZ_CHECK(ft_claims_eq(&c, &ft_claims_es[i]));
            }
        }
        FZ_CHECK(ours);
    }
}

static void ft_mutate(const uint8_t *d, size_t n)
{
    if (n < 1) return;
    bool es = d[0] & 1;
    int which = (d[0] >> 1) % FT_NGOOD;
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    size_t len = es ? ft_good_es_len[which] : ft_good_hs_len[which];
    memcpy(tok, es ? ft_good_es[which] : ft_good_hs[which], len);
    const char *orig = es ? ft_good_es[which] : ft_good_hs[which];
    for (size_t i = 1; i + 1 < n && i < 65; i += 2) tok[d[i] % len] = (char)d[i + 1];
    srv_auth_claims c;
    const srv_auth *a = es ? ft_es : ft_hs;
    if (!ft_verify_one(a, (const uint8_t *)tok, len, &c)) return;
    if (!es) {
        FZ_CHECK(memcmp(tok, orig, len) == 0);
        FZ_CHECK(ft_claims_eq(&c, &ft_claims_hs[which]));
    } else {
        size_t sl = ft_signing_input_len((const uint8_t *)orig, len);
        FZ_CHECK(ft_signing_input_len((const uint8_t *)tok, len) == sl);
        FZ_CHECK(memcmp(tok, orig, sl) == 0);
        FZ_CHECK(ft_claims_eq(&c, &ft_claims_es[which]));
    }
}

static void ft_extract(const uint8_t *d, size_t n)
{
    const char *tok = NULL;
    size_t tl = 0;
    tdm_err e = srv_auth_bearer_from_header((const char *)d, n, &tok, &tl);
    if (e == TDM_OK) {
        FZ_CHECK(tok >= (const char *)d && tl >= 1 && tok + tl <= (const char *)d + n);
        FZ_CHECK(tl <= SRV_AUTH_TOKEN_MAX);
        for (size_t i = 0; i < tl; i++) {
            uint8_t ch = (uint8_t)tok[i];
            FZ_CHECK(ft_b64url(ch) || ch == '.' || ch == '~' || ch == '+' || ch == '/' ||
                     ch == '=');
        }
        ft_verify_all((const uint8_t *)tok, tl);
    } else {
        FZ_CHECK(e == TDM_ENOTFOUND || e == TDM_EMALFORMED || e == TDM_ETOOBIG);
    }
    static char out[SRV_AUTH_TOKEN_MAX + 1];
    size_t ol = 0;
    e = srv_auth_token_from_query((const char *)d, n, out, sizeof out, &ol);
    if (e == TDM_OK) {
        FZ_CHECK(ol >= 1 && ol <= SRV_AUTH_TOKEN_MAX && out[ol] == 0);
        for (size_t i = 0; i < ol; i++) FZ_CHECK(ft_b64url((uint8_t)out[i]) || out[i] == '.');
        ft_verify_all((const uint8_t *)out, ol);
    } else {
        FZ_CHECK(e == TDM_ENOTFOUND || e == TDM_EMALFORMED || e == TDM_ETOOBIG);
    }
    /* a small cap: never written past */
    char small[17];
    memset(small, 0x5a, sizeof small);
    e = srv_auth_token_from_query((const char *)d, n, small, 16, &ol);
    FZ_CHECK(small[16] == 0x5a);
    if (e == TDM_OK) FZ_CHECK(ol <= 15 && small[ol] == 0);
}

static void ft_rules(const uint8_t *d, size_t n)
{
    if (n < 1) return;
    size_t split = d[0] % n;
    const char *pat = (const char *)d + 1;
    size_t pn = split ? split - 1 : 0;
    if (pn > n - 1) pn = n - 1;
    const char *name = pat + pn;
    size_t nn = n - 1 - pn;
    bool plain = true;
    for (size_t i = 0; i < pn; i++)
        if (pat[i] == '*' || pat[i] == '?' || pat[i] == '\\') plain = false;
    bool m = srv_auth_glob(pat, pn, name, nn);
    if (plain) FZ_CHECK(m == (pn == nn && memcmp(pat, name, pn) == 0));
    FZ_CHECK(srv_auth_glob("*", 1, name, nn));
    FZ_CHECK(srv_auth_glob(name, 0, name, nn) == (nn == 0));

    size_t pl = 0;
    srv_auth_perm acc = SRV_AUTH_NONE;
    if (srv_auth_parse_rule((const char *)d + 1, n - 1, &pl, &acc) == TDM_OK) {
        FZ_CHECK(pl >= 1 && pl < n - 1 && pl <= SRV_AUTH_PATTERN_MAX);
        FZ_CHECK(d[1 + pl] == ':');
        FZ_CHECK(acc <= SRV_AUTH_WRITE);
        static srv_auth_claims c;
        memset(&c, 0, sizeof c);
        memcpy(c.pool, d + 1, pl);
        c.nrules = 1;
        c.rules[0].off = 0;
        c.rules[0].len = (uint16_t)pl;
        c.rules[0].access = (uint8_t)acc;
        bool match = srv_auth_glob((const char *)d + 1, pl, name, nn);
        FZ_CHECK(srv_auth_access(&c, name, nn) == (match ? acc : SRV_AUTH_NONE));
    }
}

static void ft_path(const uint8_t *d, size_t n)
{
    char path[2048];
    size_t k = 0;
    while (k < n && k + 1 < sizeof path && d[k]) {
        path[k] = (char)d[k];
        k++;
    }
    path[k] = 0;
    char real[4096];
    const char *type = NULL;
    unsigned st = srv_static_resolve(ft_srv, path, real, sizeof real, &type);
    if (st != 0) {
        FZ_CHECK(st == 403 || st == 404);
        return;
    }
    size_t rl = strlen(ft_srv->web_real);
    FZ_CHECK(strncmp(real, ft_srv->web_real, rl) == 0 && real[rl] == '/');
    FZ_CHECK(strcmp(real, ft_outside) != 0);
    FZ_CHECK(strstr(real + rl, "/.") == NULL);
    struct stat sb;
    FZ_CHECK(stat(real, &sb) == 0 && S_ISREG(sb.st_mode));
    FZ_CHECK(type != NULL);
    FZ_CHECK(path[0] == '/' && strstr(path, "/.") == NULL && strstr(path, "//") == NULL &&
             strchr(path, '%') == NULL && strchr(path, '\\') == NULL);
    for (size_t i = 0; i < k; i++) FZ_CHECK((uint8_t)path[i] >= 0x20 && path[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 5) {
    case 0:
        ft_verify_all(p, n);
        break;
    case 1:
        ft_mutate(p, n);
        break;
    case 2:
        ft_extract(p, n);
        break;
    case 3:
        ft_rules(p, n);
        break;
    default:
        ft_path(p, n);
        break;
    }
    return 0;
}
