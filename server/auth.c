/* auth.c - JWT bearer tokens (auth.h): configuration and keys, strict
 * pre-parsing, verification through libjwt with our own algorithm pinning
 * and claim checks, room-permission globs, minting, and token extraction
 * from HTTP headers and query strings. */
#include "auth.h"
#include "b64url.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

struct srv_auth {
    srv_auth_alg alg;
    jwt_alg_t jalg;
    uint8_t *key; /* HS256: the secret; ES256: the public key PEM (verify) */
    size_t key_len;
    char *priv_pem; /* ES256: unencrypted PKCS#8 PEM for minting, or NULL */
    size_t priv_len;
    bool has_aud;
    char aud[SRV_AUTH_AUD_MAX + 1];
    int64_t leeway_s;
    bool allow_no_exp;
};

/* ---- reasons ---------------------------------------------------------------- */

static const char *const reason_str[SRV_AUTH_REASON_COUNT_] = {
    [SRV_AUTH_OK] = "ok",
    [SRV_AUTH_MISSING] = "no token",
    [SRV_AUTH_TOO_BIG] = "token too large",
    [SRV_AUTH_MALFORMED] = "malformed token",
    [SRV_AUTH_WRONG_ALG] = "wrong token algorithm",
    [SRV_AUTH_BAD_SIGNATURE] = "bad token signature",
    [SRV_AUTH_EXPIRED] = "token expired",
    [SRV_AUTH_NOT_YET_VALID] = "token not yet valid",
    [SRV_AUTH_ISSUED_FUTURE] = "token issued in the future",
    [SRV_AUTH_WRONG_AUDIENCE] = "wrong token audience",
    [SRV_AUTH_BAD_CLAIMS] = "bad token claims",
};

const char *srv_auth_reason_str(srv_auth_reason r)
{
    if ((unsigned)r >= SRV_AUTH_REASON_COUNT_) return "unknown token problem";
    return reason_str[r];
}

/* ---- files and keys -------------------------------------------------------- */

/* Read file `path` (at most `max` bytes) into a new NUL-terminated buffer. */
static tdm_err read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? TDM_ENOTFOUND : TDM_EIO;
    tdm_err e = TDM_OK;
    char *buf = malloc(max + 2);
    size_t n = 0;
    if (!buf) {
        e = TDM_ENOMEM;
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            e = TDM_EIO;
            goto fail;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            e = TDM_ETOOBIG;
            goto fail;
        }
    }
    buf[n] = '\0';
    close(fd);
    *out = buf;
    *out_len = n;
    return TDM_OK;
fail:
    if (buf) OPENSSL_cleanse(buf, max + 2);
    free(buf);
    close(fd);
    return e;
}

/* Drop one trailing "\n" or "\r\n". */
static size_t chomp(const char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n') n--;
    if (n > 0 && s[n - 1] == '\r') n--;
    return n;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1; /* never prompt: encrypted keys are refused */
}

/* True when pkey is an EC key on P-256. */
static bool is_p256(EVP_PKEY *pkey)
{
    char group[64];
    size_t len = 0;
    if (!EVP_PKEY_is_a(pkey, "EC")) return false;
    if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &len))
        return false;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* PEM text of pkey's public (SubjectPublicKeyInfo) or private (PKCS#8) part. */
static tdm_err pem_of(EVP_PKEY *pkey, bool priv, char **out, size_t *out_len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return TDM_ENOMEM;
    int ok = priv ? PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL)
                  : PEM_write_bio_PUBKEY(b, pkey);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    tdm_err e = TDM_OK;
    if (!ok || n <= 0) {
        e = TDM_ENOMEM;
        goto done;
    }
    *out = malloc((size_t)n + 1);
    if (!*out) {
        e = TDM_ENOMEM;
        goto done;
    }
    memcpy(*out, data, (size_t)n);
    (*out)[n] = '\0';
    *out_len = (size_t)n;
done:
    if (data && n > 0) OPENSSL_cleanse(data, (size_t)n);
    BIO_free(b);
    return e;
}

/* Load a PEM key from memory `pem` or file `file` (exactly one non-NULL). */
static tdm_err load_pem(const char *pem, const char *file, bool priv, EVP_PKEY **out)
{
    *out = NULL;
    char *buf = NULL;
    size_t n = 0;
    tdm_err e = TDM_OK;
    if (file) {
        if ((e = read_file(file, SRV_AUTH_PEM_MAX, &buf, &n)) != TDM_OK) return e;
        pem = buf;
    } else {
        n = strlen(pem);
        if (n > SRV_AUTH_PEM_MAX) return TDM_ETOOBIG;
    }
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    if (!b) {
        e = TDM_ENOMEM;
        goto done;
    }
    *out = priv ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL)
                : PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    if (!*out) e = TDM_EMALFORMED;
done:
    if (buf) {
        OPENSSL_cleanse(buf, n);
        free(buf);
    }
    return e;
}

static tdm_err setup_hs256(srv_auth *a, const srv_auth_config *cfg)
{
    int sources = (cfg->secret != NULL) + (cfg->secret_file != NULL) + (cfg->secret_env != NULL);
    if (sources != 1) return TDM_EINVAL;
    if (cfg->public_key_pem || cfg->public_key_file || cfg->private_key_pem ||
        cfg->private_key_file)
        return TDM_EINVAL;
    const char *src = NULL;
    size_t n = 0;
    char *filebuf = NULL;
    tdm_err e = TDM_OK;
    if (cfg->secret) {
        src = (const char *)cfg->secret;
        n = cfg->secret_len;
    } else if (cfg->secret_file) {
        if ((e = read_file(cfg->secret_file, SRV_AUTH_SECRET_MAX + 2, &filebuf, &n)) != TDM_OK)
            return e;
        src = filebuf;
        n = chomp(src, n);
    } else {
        src = getenv(cfg->secret_env);
        if (!src) return TDM_ENOTFOUND;
        n = chomp(src, strlen(src));
    }
    if (n > SRV_AUTH_SECRET_MAX) {
        e = TDM_ETOOBIG;
        goto done;
    }
    if (n < SRV_AUTH_SECRET_MIN) {
        e = TDM_EINVAL;
        goto done;
    }
    a->key = malloc(n);
    if (!a->key) {
        e = TDM_ENOMEM;
        goto done;
    }
    memcpy(a->key, src, n);
    a->key_len = n;
done:
    if (filebuf) {
        OPENSSL_cleanse(filebuf, SRV_AUTH_SECRET_MAX + 4);
        free(filebuf);
    }
    return e;
}

static tdm_err setup_es256(srv_auth *a, const srv_auth_config *cfg)
{
    if (cfg->secret || cfg->secret_file || cfg->secret_env) return TDM_EINVAL;
    bool has_pub = cfg->public_key_pem || cfg->public_key_file;
    bool has_priv = cfg->private_key_pem || cfg->private_key_file;
    if ((cfg->public_key_pem && cfg->public_key_file) ||
        (cfg->private_key_pem && cfg->private_key_file) || (!has_pub && !has_priv))
        return TDM_EINVAL;
    EVP_PKEY *pub = NULL, *priv = NULL;
    tdm_err e = TDM_OK;
    if (has_pub) {
        if ((e = load_pem(cfg->public_key_pem, cfg->public_key_file, false, &pub)) != TDM_OK)
            goto done;
        if (!is_p256(pub)) {
            e = TDM_EINVAL;
            goto done;
        }
    }
    if (has_priv) {
        if ((e = load_pem(cfg->private_key_pem, cfg->private_key_file, true, &priv)) != TDM_OK)
            goto done;
        if (!is_p256(priv) || (pub && EVP_PKEY_eq(pub, priv) != 1)) {
            e = TDM_EINVAL;
            goto done;
        }
        if ((e = pem_of(priv, true, &a->priv_pem, &a->priv_len)) != TDM_OK) goto done;
    }
    char *pem = NULL;
    size_t n = 0;
    if ((e = pem_of(pub ? pub : priv, false, &pem, &n)) != TDM_OK) goto done;
    a->key = (uint8_t *)pem;
    a->key_len = n;
done:
    EVP_PKEY_free(pub);
    EVP_PKEY_free(priv);
    return e;
}

tdm_err srv_auth_new(const srv_auth_config *cfg, srv_auth **out)
{
    if (!out) return TDM_EINVAL;
    *out = NULL;
    if (!cfg) return TDM_EINVAL;
    if (cfg->leeway_s > SRV_AUTH_LEEWAY_MAX) return TDM_EINVAL;
    if (cfg->audience && (cfg->audience[0] == '\0' || strlen(cfg->audience) > SRV_AUTH_AUD_MAX))
        return TDM_EINVAL;
    srv_auth *a = calloc(1, sizeof *a);
    if (!a) return TDM_ENOMEM;
    tdm_err e;
    a->alg = cfg->alg;
    if (cfg->alg == SRV_AUTH_HS256) {
        a->jalg = JWT_ALG_HS256;
        e = setup_hs256(a, cfg);
    } else if (cfg->alg == SRV_AUTH_ES256) {
        a->jalg = JWT_ALG_ES256;
        e = setup_es256(a, cfg);
    } else {
        e = TDM_EINVAL;
    }
    if (e != TDM_OK) goto fail;
    if (cfg->audience) {
        a->has_aud = true;
        strcpy(a->aud, cfg->audience);
    }
    a->leeway_s = cfg->leeway_zero ? 0 : cfg->leeway_s ? cfg->leeway_s : SRV_AUTH_LEEWAY_DEF;
    a->allow_no_exp = cfg->allow_no_exp;
    *out = a;
    return TDM_OK;
fail:
    srv_auth_free(a);
    return e;
}

void srv_auth_free(srv_auth *a)
{
    if (!a) return;
    if (a->key) OPENSSL_cleanse(a->key, a->key_len);
    if (a->priv_pem) OPENSSL_cleanse(a->priv_pem, a->priv_len);
    free(a->key);
    free(a->priv_pem);
    free(a);
}

srv_auth_alg srv_auth_alg_of(const srv_auth *a)
{
    return a->alg;
}

bool srv_auth_can_mint(const srv_auth *a)
{
    return a && (a->alg == SRV_AUTH_HS256 || a->priv_pem != NULL);
}

/* Parse base64url text s[0..n) as a JSON object (duplicate keys refused);
 * scratch[cap] takes the decoded bytes. */
static json_t *decode_json_part(const char *s, size_t n, uint8_t *scratch, size_t cap)
{
    size_t len;
    if (n == 0 || b64url_decode(s, n, scratch, cap, &len)) return NULL;
    json_t *j = json_loadb((const char *)scratch, len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

#define TIME_MAX ((json_int_t)1 << 40) /* larger NumericDates are refused */

/* Optional NumericDate claim `key`: *v = 0 when absent. false when present but
 * not an integer in [0, TIME_MAX]. */
static bool get_time(json_t *payload, const char *key, int64_t *v)
{
    json_t *j = json_object_get(payload, key);
    *v = 0;
    if (!j) return true;
    if (!json_is_integer(j)) return false;
    json_int_t t = json_integer_value(j);
    if (t < 0 || t > TIME_MAX) return false;
    *v = (int64_t)t;
    return true;
}

/* Copy a string claim of at most max bytes into dst (NUL-terminated). */
static bool get_str(json_t *j, size_t min, size_t max, char *dst)
{
    if (!json_is_string(j)) return false;
    size_t n = json_string_length(j);
    if (n < min || n > max) return false;
    memcpy(dst, json_string_value(j), n);
    dst[n] = '\0';
    return true;
}

static srv_auth_reason parse_claims(json_t *payload, srv_auth_claims *c)
{
    if (!get_str(json_object_get(payload, "sub"), 1, SRV_AUTH_USER_MAX, c->user))
        return SRV_AUTH_BAD_CLAIMS;
    json_t *name = json_object_get(payload, "name");
    if (!name)
        strcpy(c->name, c->user);
    else if (!get_str(name, 0, SRV_AUTH_USER_MAX, c->name))
        return SRV_AUTH_BAD_CLAIMS;
    if (!get_time(payload, "exp", &c->exp) || !get_time(payload, "nbf", &c->nbf) ||
        !get_time(payload, "iat", &c->iat))
        return SRV_AUTH_BAD_CLAIMS;
    json_t *rooms = json_object_get(payload, "rooms");
    if (!rooms) return SRV_AUTH_OK;
    if (!json_is_array(rooms) || json_array_size(rooms) > SRV_AUTH_RULES_MAX)
        return SRV_AUTH_BAD_CLAIMS;
    size_t pool = 0, i;
    json_t *r;
    json_array_foreach(rooms, i, r)
    {
        if (!json_is_string(r)) return SRV_AUTH_BAD_CLAIMS;
        const char *s = json_string_value(r);
        size_t pl;
        srv_auth_perm acc;
        if (srv_auth_parse_rule(s, json_string_length(r), &pl, &acc) != TDM_OK)
            return SRV_AUTH_BAD_CLAIMS;
        if (pl > SRV_AUTH_POOL_MAX - pool) return SRV_AUTH_BAD_CLAIMS;
        memcpy(c->pool + pool, s, pl);
        c->rules[c->nrules++] = (srv_auth_rule){(uint16_t)pool, (uint16_t)pl, (uint8_t)acc};
        pool += pl;
    }
    return SRV_AUTH_OK;
}

static bool aud_ok(const srv_auth *a, json_t *payload)
{
    json_t *aud = json_object_get(payload, "aud");
    if (json_is_string(aud)) return strcmp(json_string_value(aud), a->aud) == 0;
    if (!json_is_array(aud)) return false;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), a->aud) == 0) return true;
    return false;
}

/* The time checks; times in ms so that a token is expired at exactly exp. */
static srv_auth_reason check_times(const srv_auth *a, const srv_auth_claims *c, uint64_t now_ms)
{
    int64_t now = now_ms > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)now_ms;
    int64_t lw = a->leeway_s * 1000;
    if (c->exp == 0 && !a->allow_no_exp) return SRV_AUTH_BAD_CLAIMS;
    if (c->exp != 0 && now >= c->exp * 1000 + lw) return SRV_AUTH_EXPIRED;
    if (c->nbf != 0 && now + lw < c->nbf * 1000) return SRV_AUTH_NOT_YET_VALID;
    if (c->iat != 0 && (now + lw < c->iat * 1000 || (c->exp != 0 && c->iat > c->exp)))
        return SRV_AUTH_ISSUED_FUTURE;
    return SRV_AUTH_OK;
}

tdm_err srv_auth_verify(const srv_auth *a, const uint8_t *p, size_t n, uint64_t now_ms,
                        srv_auth_claims *out)
{
    if (!out) return TDM_EINVAL;
    memset(out, 0, sizeof *out);
    if (!a || (!p && n)) {
        out->reason = SRV_AUTH_MISSING;
        return TDM_EINVAL;
    }
    if (n == 0) {
        out->reason = SRV_AUTH_MISSING;
        return TDM_EMALFORMED;
    }
    if (n > SRV_AUTH_TOKEN_MAX) {
        out->reason = SRV_AUTH_TOO_BIG;
        return TDM_ETOOBIG;
    }
    const char *s = (const char *)p;
    const char *d1 = memchr(s, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - s)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - s))) {
        out->reason = SRV_AUTH_MALFORMED;
        return TDM_EMALFORMED;
    }
    size_t hn = (size_t)(d1 - s), pn = (size_t)(d2 - d1 - 1), sn = n - (size_t)(d2 + 1 - s);

    srv_auth_reason why = SRV_AUTH_MALFORMED;
    tdm_err e = TDM_EMALFORMED;
    json_t *hdr = NULL, *payload = NULL;
    jwt_t *jwt = NULL;
    /* one buffer: decoded parts (at most 3/4 of the token) and the NUL-terminated copy */
    uint8_t *buf = malloc(2 * n + 2);
    if (!buf) {
        e = TDM_ENOMEM;
        goto fail;
    }
    if (!(hdr = decode_json_part(s, hn, buf, n))) goto fail;
    json_t *alg = json_object_get(hdr, "alg");
    if (!json_is_string(alg) || json_object_get(hdr, "crit")) goto fail;
    if (jwt_str_alg(json_string_value(alg)) != a->jalg ||
        strcmp(json_string_value(alg), jwt_alg_str(a->jalg)) != 0) {
        why = SRV_AUTH_WRONG_ALG;
        goto fail;
    }
    if (!(payload = decode_json_part(d1 + 1, pn, buf, n))) goto fail;
    size_t siglen;
    if (sn == 0 || b64url_decode(d2 + 1, sn, buf, n, &siglen)) goto fail;
    if (siglen != (a->alg == SRV_AUTH_HS256 ? 32u : 64u)) {
        why = SRV_AUTH_BAD_SIGNATURE;
        goto fail;
    }

    char *tok = (char *)buf + n + 1;
    memcpy(tok, s, n);
    tok[n] = '\0';
    /* a->key is never NULL and key_len > 0 (srv_auth_new): no alg-none path */
    int rc = jwt_decode(&jwt, tok, a->key, (int)a->key_len);
    if (rc != 0) {
        jwt = NULL;
        if (rc == ENOMEM) e = TDM_ENOMEM;
        why = SRV_AUTH_BAD_SIGNATURE;
        goto fail;
    }
    if (jwt_get_alg(jwt) != a->jalg) { /* pinned again, after libjwt */
        why = SRV_AUTH_WRONG_ALG;
        goto fail;
    }
    /* the signature covers HEADER.PAYLOAD exactly: `payload` is authentic */
    if ((why = parse_claims(payload, out)) != SRV_AUTH_OK) goto fail;
    if ((why = check_times(a, out, now_ms)) != SRV_AUTH_OK) goto fail;
    if (a->has_aud && !aud_ok(a, payload)) {
        why = SRV_AUTH_WRONG_AUDIENCE;
        goto fail;
    }
    jwt_free(jwt);
    json_decref(hdr);
    json_decref(payload);
    free(buf);
    out->reason = SRV_AUTH_OK;
    return TDM_OK;
fail:
    jwt_free(jwt);
    json_decref(hdr);
    json_decref(payload);
    free(buf);
    memset(out, 0, sizeof *out);
    out->reason = why;
    return e;
}

/* ---- permissions ----------------------------------------------------------- */

/* Bytes of the UTF-8 character at s[0..n) (n >= 1); 1 for an invalid byte. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80                    ? 1
                 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2
                 : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                : 1;
    if (len > n) return 1;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return len;
}

bool srv_auth_glob(const char *pat, size_t pn, const char *name, size_t nn)
{
    const unsigned char *P = (const unsigned char *)pat, *S = (const unsigned char *)name;
    size_t p = 0, s = 0, star_p = 0, star_s = 0;
    bool star = false;
    while (s < nn) {
        if (p < pn && P[p] == '*') {
            while (p < pn && P[p] == '*') p++;
            star = true;
            star_p = p;
            star_s = s;
            continue;
        }
        if (p < pn && P[p] == '?') {
            s += utf8_len(S + s, nn - s);
            p++;
            continue;
        }
        if (p < pn) {
            size_t adv = (P[p] == '\\' && p + 1 < pn) ? 2 : 1;
            if (P[p + adv - 1] == S[s]) {
                p += adv;
                s++;
                continue;
            }
        }
        if (!star) return false;
        /* let the last star take one more character and retry from there */
        star_s += utf8_len(S + star_s, nn - star_s);
        s = star_s;
        p = star_p;
    }
    while (p < pn && P[p] == '*') p++;
    return p == pn;
}

tdm_err srv_auth_parse_rule(const char *s, size_t n, size_t *pat_len, srv_auth_perm *access)
{
    if (!s || !pat_len || !access) return TDM_EINVAL;
    size_t c = n;
    while (c > 0 && s[c - 1] != ':') c--;
    if (c == 0) return TDM_EMALFORMED;
    size_t pl = c - 1, ml = n - c;
    const char *m = s + c;
    if (pl == 0 || pl > SRV_AUTH_PATTERN_MAX || memchr(s, '\0', pl)) return TDM_EMALFORMED;
    if (ml == 2 && memcmp(m, "rw", 2) == 0)
        *access = SRV_AUTH_WRITE;
    else if (ml == 1 && m[0] == 'r')
        *access = SRV_AUTH_READ;
    else if (ml == 4 && memcmp(m, "none", 4) == 0)
        *access = SRV_AUTH_NONE;
    else
        return TDM_EMALFORMED;
    *pat_len = pl;
    return TDM_OK;
}

srv_auth_perm srv_auth_access(const srv_auth_claims *c, const char *doc, size_t doc_len)
{
    if (!c || !doc || c->reason != SRV_AUTH_OK) return SRV_AUTH_NONE;
    for (size_t i = c->nrules; i-- > 0;) {
        const srv_auth_rule *r = &c->rules[i];
        if (srv_auth_glob(c->pool + r->off, r->len, doc, doc_len)) return (srv_auth_perm)r->access;
    }
    return SRV_AUTH_NONE;
}

/* ---- minting --------------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n); /* jansson validates UTF-8 */
    bool ok = j != NULL;
    json_decref(j);
    return ok;
}

tdm_err srv_auth_mint(const srv_auth *a, const char *user, const char *name,
                      const char *const *rooms, size_t nrooms, uint64_t ttl_s, uint64_t now_ms,
                      char *out, size_t cap, size_t *out_len)
{
    if (!a || !user || !out || cap == 0 || (nrooms && !rooms)) return TDM_EINVAL;
    if (!srv_auth_can_mint(a)) return TDM_EINVAL;
    size_t ul = strlen(user), nl = name ? strlen(name) : 0;
    if (ul == 0 || ul > SRV_AUTH_USER_MAX || nl > SRV_AUTH_USER_MAX || !valid_utf8(user, ul) ||
        (name && !valid_utf8(name, nl)))
        return TDM_EINVAL;
    if (ttl_s == 0 || ttl_s > SRV_AUTH_TTL_MAX || nrooms > SRV_AUTH_RULES_MAX) return TDM_EINVAL;
    uint64_t now_s = now_ms / 1000;
    if (now_s + ttl_s > (uint64_t)TIME_MAX) return TDM_EINVAL;
    size_t pool = 0;
    for (size_t i = 0; i < nrooms; i++) {
        size_t pl;
        srv_auth_perm acc;
        if (!rooms[i] || srv_auth_parse_rule(rooms[i], strlen(rooms[i]), &pl, &acc) != TDM_OK ||
            !valid_utf8(rooms[i], strlen(rooms[i])))
            return TDM_EMALFORMED;
        pool += pl;
    }
    if (pool > SRV_AUTH_POOL_MAX) return TDM_ETOOBIG;

    tdm_err e = TDM_ENOMEM;
    jwt_t *jwt = NULL;
    char *grants = NULL, *tok = NULL;
    json_t *o = json_object(), *arr = json_array();
    if (!o || !arr) goto done;
    for (size_t i = 0; i < nrooms; i++)
        if (json_array_append_new(arr, json_string(rooms[i])) != 0) goto done;
    if (json_object_set_new(o, "sub", json_string(user)) != 0 ||
        (name && json_object_set_new(o, "name", json_string(name)) != 0) ||
        json_object_set(o, "rooms", arr) != 0 ||
        json_object_set_new(o, "iat", json_integer((json_int_t)now_s)) != 0 ||
        json_object_set_new(o, "nbf", json_integer((json_int_t)now_s)) != 0 ||
        json_object_set_new(o, "exp", json_integer((json_int_t)(now_s + ttl_s))) != 0 ||
        (a->has_aud && json_object_set_new(o, "aud", json_string(a->aud)) != 0))
        goto done;
    if (!(grants = json_dumps(o, JSON_COMPACT))) goto done;
    if (jwt_new(&jwt) != 0) {
        jwt = NULL;
        goto done;
    }
    const unsigned char *key =
        a->alg == SRV_AUTH_HS256 ? a->key : (const unsigned char *)a->priv_pem;
    int klen = (int)(a->alg == SRV_AUTH_HS256 ? a->key_len : a->priv_len);
    if (jwt_add_grants_json(jwt, grants) != 0 || jwt_set_alg(jwt, a->jalg, key, klen) != 0)
        goto done;
    if (!(tok = jwt_encode_str(jwt))) goto done;
    size_t tl = strlen(tok);
    if (tl > SRV_AUTH_TOKEN_MAX || tl + 1 > cap) {
        e = TDM_ETOOBIG;
        goto done;
    }
    memcpy(out, tok, tl + 1);
    if (out_len) *out_len = tl;
    e = TDM_OK;
done:
    free(tok);
    free(grants);
    jwt_free(jwt);
    json_decref(arr);
    json_decref(o);
    return e;
}

/* ---- extraction ------------------------------------------------------------ */

static bool is_token68(unsigned char c)
{
    return b64url_value(c) >= 0 || c == '.' || c == '~' || c == '+' || c == '/';
}

tdm_err srv_auth_bearer_from_header(const char *v, size_t n, const char **tok, size_t *tok_len)
{
    if (!tok || !tok_len || (!v && n)) return TDM_EINVAL;
    *tok = NULL;
    *tok_len = 0;
    if (n > SRV_AUTH_TOKEN_MAX + 64) return TDM_ETOOBIG;
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    if (i == n) return TDM_ENOTFOUND;
    static const char scheme[] = "bearer";
    for (size_t k = 0; k < 6; k++) {
        char c = i + k < n ? v[i + k] : '\0';
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != scheme[k]) return TDM_ENOTFOUND;
    }
    i += 6;
    if (i < n && v[i] != ' ' && v[i] != '\t') return TDM_ENOTFOUND; /* e.g. "Bearerx" */
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    size_t start = i;
    while (i < n && is_token68((unsigned char)v[i])) i++;
    while (i < n && v[i] == '=') i++;
    size_t end = i;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) i++;
    if (end == start || i != n) return TDM_EMALFORMED;
    if (end - start > SRV_AUTH_TOKEN_MAX) return TDM_ETOOBIG;
    *tok = v + start;
    *tok_len = end - start;
    return TDM_OK;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static tdm_err query_token(const char *q, size_t n, char *out, size_t cap, size_t *out_len)
{
    if (n > 4 * SRV_AUTH_TOKEN_MAX) return TDM_ETOOBIG;
    size_t i = (n > 0 && q[0] == '?') ? 1 : 0;
    size_t limit = cap - 1 < SRV_AUTH_TOKEN_MAX ? cap - 1 : SRV_AUTH_TOKEN_MAX;
    bool found = false;
    size_t len = 0;
    while (i <= n) {
        size_t end = i;
        while (end < n && q[end] != '&') end++;
        const char *eq = memchr(q + i, '=', end - i);
        size_t kl = eq ? (size_t)(eq - (q + i)) : end - i;
        if (kl == 5 && memcmp(q + i, "token", 5) == 0) {
            if (found || !eq) return TDM_EMALFORMED;
            found = true;
            for (const char *c = eq + 1; c < q + end; c++) {
                int ch = (unsigned char)*c;
                if (ch == '%') {
                    int h = c + 2 < q + end ? hexv(c[1]) : -1, l = h >= 0 ? hexv(c[2]) : -1;
                    if (l < 0) return TDM_EMALFORMED;
                    ch = h * 16 + l;
                    c += 2;
                }
                if (b64url_value((unsigned char)ch) < 0 && ch != '.') return TDM_EMALFORMED;
                if (len >= limit) return TDM_ETOOBIG;
                out[len++] = (char)ch;
            }
            if (len == 0) return TDM_EMALFORMED;
        }
        i = end + 1;
    }
    if (!found) return TDM_ENOTFOUND;
    out[len] = '\0';
    *out_len = len;
    return TDM_OK;
}

tdm_err srv_auth_token_from_query(const char *q, size_t n, char *out, size_t cap, size_t *out_len)
{
    if (!out || cap == 0 || (!q && n)) return TDM_EINVAL;
    size_t len = 0;
    tdm_err e = query_token(q, n, out, cap, &len);
    if (e != TDM_OK) {
        out[0] = '\0';
        len = 0;
    }
    if (out_len) *out_len = len;
    return e;
}
