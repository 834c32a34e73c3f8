/* push_crypto.c - Web Push cryptography on OpenSSL 3 (push_crypto.h).
 * OpenSSL errors are mapped to TDM_EIO here, once; the OpenSSL error queue
 * is cleared after a failure so it never leaks into another caller. */
#include "push_crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define KEY_FILE_MAX 16384u

struct push_key {
    EVP_PKEY *pk;
    uint8_t pub[PUSH_P256_PUB_LEN];
};

static tdm_err ossl_fail(void)
{
    ERR_clear_error();
    return TDM_EIO;
}

bool push_p256_point_ok(const uint8_t *p, size_t n)
{
    if (!p || n != PUSH_P256_PUB_LEN || p[0] != 0x04) return false;
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    bool ok = pt && EC_POINT_oct2point(g, pt, p, n, NULL) == 1 &&
              EC_POINT_is_on_curve(g, pt, NULL) == 1 && !EC_POINT_is_at_infinity(g, pt);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    ERR_clear_error();
    return ok;
}

/* Fill k->pub from k->pk. */
static tdm_err key_fill_public(push_key *k)
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(k->pk, OSSL_PKEY_PARAM_PUB_KEY, k->pub, sizeof k->pub,
                                        &len) != 1 ||
        len != PUSH_P256_PUB_LEN || k->pub[0] != 0x04)
        return ossl_fail();
    return TDM_OK;
}

/* Is pk an EC key on P-256 with a private part? */
static bool key_is_p256(EVP_PKEY *pk)
{
    char grp[64];
    size_t gl = 0;
    if (!EVP_PKEY_is_a(pk, "EC")) return false;
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof grp, &gl) != 1)
        return false;
    return strcmp(grp, "prime256v1") == 0 || strcmp(grp, "P-256") == 0;
}

static tdm_err key_wrap(EVP_PKEY *pk, push_key **out)
{
    push_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pk);
        return TDM_ENOMEM;
    }
    k->pk = pk;
    tdm_err e = key_fill_public(k);
    if (e) {
        push_key_free(k);
        return e;
    }
    *out = k;
    return TDM_OK;
}

tdm_err push_key_generate(push_key **out)
{
    *out = NULL;
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!pk) return ossl_fail();
    return key_wrap(pk, out);
}

/* An EVP_PKEY from params: the private scalar (may be NULL) and the point. */
static EVP_PKEY *key_fromdata(const uint8_t *d, const uint8_t *pub, size_t pub_len)
{
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *bn = d ? BN_bin2bn(d, PUSH_P256_PRIV_LEN, NULL) : NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    if (!b || (d && !bn)) goto done;
    if (!OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len) ||
        (bn && !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn)))
        goto done;
    params = OSSL_PARAM_BLD_to_param(b);
    ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL) : NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    BN_clear_free(bn);
    OSSL_PARAM_BLD_free(b);
    if (!pk) ERR_clear_error();
    return pk;
}

tdm_err push_key_from_private(const uint8_t d[PUSH_P256_PRIV_LEN], push_key **out)
{
    *out = NULL;
    /* OpenSSL 3.0 derives no public key from a bare scalar: pub = d * G. */
    EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pt = g ? EC_POINT_new(g) : NULL;
    BIGNUM *bn = BN_bin2bn(d, PUSH_P256_PRIV_LEN, NULL);
    uint8_t pub[PUSH_P256_PUB_LEN];
    tdm_err e = TDM_OK;
    if (!g || !pt || !bn) {
        e = ossl_fail();
        goto done;
    }
    if (BN_is_zero(bn) || BN_cmp(bn, EC_GROUP_get0_order(g)) >= 0) {
        e = TDM_EMALFORMED;
        goto done;
    }
    if (EC_POINT_mul(g, pt, bn, NULL, NULL, NULL) != 1 ||
        EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof pub, NULL) !=
            sizeof pub) {
        e = ossl_fail();
        goto done;
    }
    EVP_PKEY *pk = key_fromdata(d, pub, sizeof pub);
    e = pk ? key_wrap(pk, out) : TDM_EIO;
done:
    BN_clear_free(bn);
    EC_POINT_free(pt);
    EC_GROUP_free(g);
    return e;
}

tdm_err push_key_load(const char *path, push_key **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? TDM_ENOTFOUND : TDM_EIO;
    char *buf = malloc(KEY_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return TDM_ENOMEM;
    }
    size_t n = fread(buf, 1, KEY_FILE_MAX + 1, f);
    bool err = ferror(f);
    fclose(f);
    tdm_err e = TDM_OK;
    if (err)
        e = TDM_EIO;
    else if (n > KEY_FILE_MAX)
        e = TDM_ETOOBIG;
    if (e) goto done;
    buf[n] = '\0';
    if (strstr(buf, "-----BEGIN")) {
        BIO *bio = BIO_new_mem_buf(buf, (int)n);
        EVP_PKEY *pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pk || !key_is_p256(pk)) {
            EVP_PKEY_free(pk);
            ERR_clear_error();
            e = TDM_EMALFORMED;
            goto done;
        }
        e = key_wrap(pk, out);
        goto done;
    }
    /* One base64url line: the private scalar. */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
    uint8_t d[PUSH_P256_PRIV_LEN];
    size_t dl = 0;
    e = b64url_decode(buf, n, d, sizeof d, &dl);
    if (!e && dl != sizeof d) e = TDM_EMALFORMED;
    if (e == TDM_ETOOBIG) e = TDM_EMALFORMED;
    if (!e) e = push_key_from_private(d, out);
    OPENSSL_cleanse(d, sizeof d);
done:
    OPENSSL_cleanse(buf, n < KEY_FILE_MAX ? n : KEY_FILE_MAX);
    free(buf);
    return e;
}

tdm_err push_key_pem(const push_key *k, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return ossl_fail();
    tdm_err e = TDM_OK;
    if (PEM_write_bio_PrivateKey(bio, k->pk, NULL, NULL, 0, NULL, NULL) != 1) {
        e = ossl_fail();
    } else {
        char *p;
        long n = BIO_get_mem_data(bio, &p);
        if (n <= 0)
            e = ossl_fail();
        else if ((size_t)n + 1 > cap)
            e = TDM_ETOOBIG;
        else {
            memcpy(out, p, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(bio);
    return e;
}

tdm_err push_key_save(const push_key *k, const char *path, bool replace)
{
    char pem[1024];
    tdm_err e = push_key_pem(k, pem, sizeof pem);
    if (e) return e;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return TDM_ETOOBIG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = TDM_EIO;
        goto wipe;
    }
    size_t n = strlen(pem), off = 0;
    while (off < n) {
        ssize_t w = write(fd, pem + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    bool ok = off == n && fsync(fd) == 0;
    if (close(fd) != 0) ok = false;
    if (!ok)
        e = TDM_EIO;
    else if (replace) {
        if (rename(tmp, path) != 0) e = TDM_EIO;
    } else if (link(tmp, path) != 0) {
        e = errno == EEXIST ? TDM_ECONFLICT : TDM_EIO;
    }
    if (e || !replace) unlink(tmp);
wipe:
    OPENSSL_cleanse(pem, sizeof pem);
    return e;
}

void push_key_public(const push_key *k, uint8_t out[PUSH_P256_PUB_LEN])
{
    memcpy(out, k->pub, PUSH_P256_PUB_LEN);
}

tdm_err push_key_private(const push_key *k, uint8_t out[PUSH_P256_PRIV_LEN])
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(k->pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn) != 1) return ossl_fail();
    int r = BN_bn2binpad(bn, out, PUSH_P256_PRIV_LEN);
    BN_clear_free(bn);
    return r == (int)PUSH_P256_PRIV_LEN ? TDM_OK : ossl_fail();
}

void push_key_free(push_key *k)
{
    if (!k) return;
    EVP_PKEY_free(k->pk);
    free(k);
}

tdm_err push_origin(const char *url, size_t n, char *out, size_t cap)
{
    size_t skip;
    if (n > 8 && strncmp(url, "https://", 8) == 0)
        skip = 8;
    else if (n > 7 && strncmp(url, "http://", 7) == 0)
        skip = 7;
    else
        return TDM_EMALFORMED;
    size_t e = skip;
    while (e < n && url[e] != '/' && url[e] != '?' && url[e] != '#') {
        unsigned char c = (unsigned char)url[e];
        if (c <= 0x20 || c >= 0x7f || c == '@' || c == '"' || c == '\\') return TDM_EMALFORMED;
        e++;
    }
    if (e == skip) return TDM_EMALFORMED;
    if (e + 1 > cap || e > PUSH_AUD_MAX) return TDM_ETOOBIG;
    memcpy(out, url, e);
    out[e] = '\0';
    return TDM_OK;
}

/* ---- VAPID ---- */

static bool json_safe(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '"' || s[i] == '\\' || (unsigned char)s[i] < 0x20) return false;
    return true;
}

tdm_err push_vapid_jwt(const push_key *k, const char *aud, uint64_t exp_s, const char *sub,
                       char *out, size_t cap)
{
    if (!k || !aud || !json_safe(aud, PUSH_AUD_MAX) || (sub && !json_safe(sub, PUSH_SUB_MAX)))
        return TDM_EINVAL;
    static const char hdr[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
    char claims[PUSH_AUD_MAX + PUSH_SUB_MAX + 64];
    int cn;
    if (sub)
        cn = snprintf(claims, sizeof claims, "{\"aud\":\"%s\",\"exp\":%llu,\"sub\":\"%s\"}", aud,
                      (unsigned long long)exp_s, sub);
    else
        cn = snprintf(claims, sizeof claims, "{\"aud\":\"%s\",\"exp\":%llu}", aud,
                      (unsigned long long)exp_s);
    if (cn < 0 || (size_t)cn >= sizeof claims) return TDM_EINVAL;
    size_t o = b64url_encode((const uint8_t *)hdr, sizeof hdr - 1, out, cap);
    if (!o || o + 2 > cap) return TDM_ETOOBIG;
    out[o++] = '.';
    size_t c = b64url_encode((const uint8_t *)claims, (size_t)cn, out + o, cap - o);
    if (!c) return TDM_ETOOBIG;
    size_t signed_len = o + c;
    /* ES256: ECDSA P-256 over SHA-256; OpenSSL gives DER, JOSE wants r||s. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[128];
    size_t dl = sizeof der;
    tdm_err e = TDM_OK;
    if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k->pk, NULL) != 1 ||
        EVP_DigestSign(md, der, &dl, (const uint8_t *)out, signed_len) != 1) {
        EVP_MD_CTX_free(md);
        return ossl_fail();
    }
    EVP_MD_CTX_free(md);
    const uint8_t *dp = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
    uint8_t rs[64];
    if (!sig || BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) != 32)
        e = ossl_fail();
    ECDSA_SIG_free(sig);
    if (e) return e;
    if (signed_len + 2 > cap) return TDM_ETOOBIG;
    out[signed_len] = '.';
    if (!b64url_encode(rs, sizeof rs, out + signed_len + 1, cap - signed_len - 1))
        return TDM_ETOOBIG;
    return TDM_OK;
}

/* ---- aes128gcm (RFC 8291, RFC 8188) ---- */

static bool hmac256(const uint8_t *key, size_t kn, const uint8_t *d, size_t n, uint8_t out[32])
{
    size_t ol = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kn, d, n, out, 32, &ol) && ol == 32;
}

/* HKDF-Expand for one block (len <= 32): T(1) = HMAC(prk, info || 0x01). */
static bool hkdf_expand1(const uint8_t prk[32], const uint8_t *info, size_t in, uint8_t *out,
                         size_t len)
{
    uint8_t buf[160], t[32];
    if (in + 1 > sizeof buf || len > 32) return false;
    memcpy(buf, info, in);
    buf[in] = 1;
    if (!hmac256(prk, 32, buf, in + 1, t)) return false;
    memcpy(out, t, len);
    OPENSSL_cleanse(t, sizeof t);
    return true;
}

tdm_err push_encrypt(const uint8_t ua_pub[PUSH_P256_PUB_LEN], const uint8_t auth[PUSH_AUTH_LEN],
                     const uint8_t *plain, size_t n, const uint8_t *salt, const push_key *sender,
                     uint8_t *out, size_t cap, size_t *out_len)
{
    if (!ua_pub || !auth || (!plain && n) || !out || !out_len) return TDM_EINVAL;
    if (n > PUSH_PLAINTEXT_MAX || cap < n + PUSH_ECE_OVERHEAD) return TDM_ETOOBIG;
    if (!push_p256_point_ok(ua_pub, PUSH_P256_PUB_LEN)) return TDM_EMALFORMED;
    tdm_err e = TDM_OK;
    push_key *eph = NULL;
    const push_key *as = sender;
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *dctx = NULL;
    EVP_CIPHER_CTX *cctx = NULL;
    uint8_t secret[32], prk_key[32], ikm[32], prk[32], cek[16], nonce[12], sl[PUSH_SALT_LEN];
    size_t sn = sizeof secret;
    if (!as) {
        e = push_key_generate(&eph);
        if (e) goto done;
        as = eph;
    }
    if (salt)
        memcpy(sl, salt, sizeof sl);
    else if (RAND_bytes(sl, sizeof sl) != 1) {
        e = ossl_fail();
        goto done;
    }
    peer = key_fromdata(NULL, ua_pub, PUSH_P256_PUB_LEN);
    dctx = peer ? EVP_PKEY_CTX_new_from_pkey(NULL, as->pk, NULL) : NULL;
    if (!dctx || EVP_PKEY_derive_init(dctx) != 1 || EVP_PKEY_derive_set_peer(dctx, peer) != 1 ||
        EVP_PKEY_derive(dctx, secret, &sn) != 1 || sn != sizeof secret) {
        e = ossl_fail();
        goto done;
    }
    /* PRK_key = HKDF-Extract(auth, ecdh); IKM = HKDF-Expand(PRK_key,
     * "WebPush: info" 0x00 ua_public as_public, 32). */
    uint8_t key_info[14 + 2 * PUSH_P256_PUB_LEN];
    memcpy(key_info, "WebPush: info", 14); /* with its NUL */
    memcpy(key_info + 14, ua_pub, PUSH_P256_PUB_LEN);
    memcpy(key_info + 14 + PUSH_P256_PUB_LEN, as->pub, PUSH_P256_PUB_LEN);
    static const char cek_info[] = "Content-Encoding: aes128gcm";
    static const char nonce_info[] = "Content-Encoding: nonce";
    if (!hmac256(auth, PUSH_AUTH_LEN, secret, sizeof secret, prk_key) ||
        !hkdf_expand1(prk_key, key_info, sizeof key_info, ikm, sizeof ikm) ||
        !hmac256(sl, sizeof sl, ikm, sizeof ikm, prk) ||
        !hkdf_expand1(prk, (const uint8_t *)cek_info, sizeof cek_info, cek, sizeof cek) ||
        !hkdf_expand1(prk, (const uint8_t *)nonce_info, sizeof nonce_info, nonce, sizeof nonce)) {
        e = ossl_fail();
        goto done;
    }
    /* Header: salt | rs (u32 BE) | idlen | keyid. */
    uint8_t *p = out;
    memcpy(p, sl, sizeof sl);
    p += sizeof sl;
    *p++ = (uint8_t)(PUSH_RECORD_SIZE >> 24);
    *p++ = (uint8_t)(PUSH_RECORD_SIZE >> 16);
    *p++ = (uint8_t)(PUSH_RECORD_SIZE >> 8);
    *p++ = (uint8_t)PUSH_RECORD_SIZE;
    *p++ = PUSH_P256_PUB_LEN;
    memcpy(p, as->pub, PUSH_P256_PUB_LEN);
    p += PUSH_P256_PUB_LEN;
    static const uint8_t delim = 0x02; /* the last (only) record */
    int l1 = 0, l2 = 0, l3 = 0;
    cctx = EVP_CIPHER_CTX_new();
    if (!cctx || EVP_EncryptInit_ex2(cctx, EVP_aes_128_gcm(), cek, nonce, NULL) != 1 ||
        (n && EVP_EncryptUpdate(cctx, p, &l1, plain, (int)n) != 1) ||
        EVP_EncryptUpdate(cctx, p + l1, &l2, &delim, 1) != 1 ||
        EVP_EncryptFinal_ex(cctx, p + l1 + l2, &l3) != 1 || (size_t)(l1 + l2 + l3) != n + 1 ||
        EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, 16, p + n + 1) != 1) {
        e = ossl_fail();
        goto done;
    }
    *out_len = PUSH_ECE_HEADER_LEN + n + 1 + 16;
done:
    EVP_CIPHER_CTX_free(cctx);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(peer);
    push_key_free(eph);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(prk_key, sizeof prk_key);
    OPENSSL_cleanse(ikm, sizeof ikm);
    OPENSSL_cleanse(prk, sizeof prk);
    OPENSSL_cleanse(cek, sizeof cek);
    return e;
}
