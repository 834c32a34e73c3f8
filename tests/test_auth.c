/* test_auth.c - server/auth.h: HS256 and ES256 tokens minted by srv_auth_mint
 * and forged independently here with OpenSSL (HMAC, ECDSA with r||s), time
 * claims at their exact boundaries, audience, tampered payloads and
 * signatures, alg none, algorithm confusion (an HS256 token keyed with the
 * ES256 public key PEM, which libjwt 1.10 itself accepts), wrong secrets,
 * malformed and oversized tokens, claim types, configuration errors, glob
 * permission tables with precedence, and Bearer header / query extraction. */
#include "auth.h"

#include <check.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW_S  1700000000LL
#define NOW_MS ((uint64_t)NOW_S * 1000u)

static const char SECRET[] = "0123456789abcdef0123456789abcdef-test-secret";

/* ---- helpers ---------------------------------------------------------------- */

static void b64url(const uint8_t *p, size_t n, char *out)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = A[v >> 18], out[o++] = A[(v >> 12) & 63], out[o++] = A[(v >> 6) & 63],
        out[o++] = A[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = A[v >> 18], out[o++] = A[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = A[v >> 18], out[o++] = A[(v >> 12) & 63], out[o++] = A[(v >> 6) & 63];
    }
    out[o] = '\0';
}

static srv_auth *hs(void)
{
    srv_auth_config c = {
        .alg = SRV_AUTH_HS256, .secret = (const uint8_t *)SECRET, .secret_len = strlen(SECRET)};
    srv_auth *a = NULL;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_OK);
    return a;
}

typedef struct keypair {
    char pub[1024], priv[1024];
    EVP_PKEY *pkey;
} keypair;

static void ec_keys(keypair *k, const char *curve)
{
    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    ck_assert_ptr_nonnull(k->pkey);
    BIO *b = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PUBKEY(b, k->pkey), 1);
    int n = BIO_read(b, k->pub, sizeof k->pub - 1);
    ck_assert_int_gt(n, 0);
    k->pub[n] = '\0';
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k->pkey, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_read(b, k->priv, sizeof k->priv - 1);
    ck_assert_int_gt(n, 0);
    k->priv[n] = '\0';
    BIO_free(b);
}

/* Forge HEADER.PAYLOAD.SIG from JSON texts. sig_kind: 0 none (empty), 1 HMAC
 * with key[0..klen), 2 ECDSA P-256 with pkey (r||s). */
static char *forge(const char *hdr, const char *payload, int sig_kind, const void *key, size_t klen,
                   EVP_PKEY *pkey)
{
    char *out = malloc(3 * (strlen(hdr) + strlen(payload)) + 512);
    ck_assert_ptr_nonnull(out);
    b64url((const uint8_t *)hdr, strlen(hdr), out);
    size_t n = strlen(out);
    out[n++] = '.';
    b64url((const uint8_t *)payload, strlen(payload), out + n);
    n = strlen(out);
    uint8_t sig[128];
    size_t sl = 0;
    if (sig_kind == 1) {
        unsigned int l = 0;
        ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)klen, (const uint8_t *)out, n, sig, &l));
        sl = l;
    } else if (sig_kind == 2) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t der[128];
        size_t dl = sizeof der;
        ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
        ck_assert_int_eq(EVP_DigestSign(md, der, &dl, (const uint8_t *)out, n), 1);
        EVP_MD_CTX_free(md);
        const uint8_t *dp = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &dp, (long)dl);
        ck_assert_ptr_nonnull(es);
        memset(sig, 0, 64);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
        ECDSA_SIG_free(es);
        sl = 64;
    }
    out[n++] = '.';
    b64url(sig, sl, out + n);
    return out;
}

static char *forge_hs(const char *payload)
{
    return forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, 1, SECRET, strlen(SECRET), NULL);
}

static tdm_err verify(const srv_auth *a, const char *tok, uint64_t now, srv_auth_claims *c)
{
    return srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), now, c);
}

/* The reason a token is refused with (SRV_AUTH_OK when accepted). */
static srv_auth_reason why(const srv_auth *a, const char *tok, uint64_t now)
{
    srv_auth_claims c;
    tdm_err e = verify(a, tok, now, &c);
    ck_assert_int_eq(e == TDM_OK, c.reason == SRV_AUTH_OK);
    if (e != TDM_OK) ck_assert(e == TDM_EMALFORMED || e == TDM_ETOOBIG);
    return c.reason;
}

static srv_auth_reason why_payload(const srv_auth *a, const char *payload, uint64_t now)
{
    char *t = forge_hs(payload);
    srv_auth_reason r = why(a, t, now);
    free(t);
    return r;
}

/* ---- valid tokens ----------------------------------------------------------- */

START_TEST(hs256_mint_and_verify)
{
    srv_auth *a = hs();
    const char *rooms[] = {"*:r", "team/*:rw", "team/secret:none"};
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    size_t tl = 0;
    ck_assert_int_eq(
        srv_auth_mint(a, "u-42", "Alice Ä", rooms, 3, 3600, NOW_MS, tok, sizeof tok, &tl), TDM_OK);
    ck_assert_uint_eq(tl, strlen(tok));
    srv_auth_claims c;
    ck_assert_int_eq(verify(a, tok, NOW_MS, &c), TDM_OK);
    ck_assert_int_eq(c.reason, SRV_AUTH_OK);
    ck_assert_str_eq(c.user, "u-42");
    ck_assert_str_eq(c.name, "Alice Ä");
    ck_assert_int_eq(c.iat, NOW_S);
    ck_assert_int_eq(c.nbf, NOW_S);
    ck_assert_int_eq(c.exp, NOW_S + 3600);
    ck_assert_uint_eq(c.nrules, 3);
    ck_assert_int_eq(srv_auth_access(&c, "notes", 5), SRV_AUTH_READ);
    ck_assert_int_eq(srv_auth_access(&c, "team/plan", 9), SRV_AUTH_WRITE);
    ck_assert_int_eq(srv_auth_access(&c, "team/secret", 11), SRV_AUTH_NONE);
    /* valid until one leeway past exp */
    ck_assert_int_eq(why(a, tok, (uint64_t)(NOW_S + 3600 + SRV_AUTH_LEEWAY_DEF) * 1000 - 1),
                     SRV_AUTH_OK);
    /* independent forging with OpenSSL HMAC gives a token we accept */
    char *f = forge_hs("{\"sub\":\"bob\",\"exp\":1700000100,\"rooms\":[\"doc?:rw\"]}");
    ck_assert_int_eq(verify(a, f, NOW_MS, &c), TDM_OK);
    ck_assert_str_eq(c.user, "bob");
    ck_assert_str_eq(c.name, "bob"); /* name defaults to sub */
    ck_assert_int_eq(srv_auth_access(&c, "doc1", 4), SRV_AUTH_WRITE);
    ck_assert_int_eq(srv_auth_access(&c, "doc12", 5), SRV_AUTH_NONE);
    free(f);
    /* and libjwt reads our minted token with the same secret */
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_decode(&j, tok, (const unsigned char *)SECRET, (int)strlen(SECRET)), 0);
    ck_assert_int_eq(jwt_get_alg(j), JWT_ALG_HS256);
    ck_assert_str_eq(jwt_get_grant(j, "sub"), "u-42");
    jwt_free(j);
    srv_auth_free(a);
}
END_TEST

/* Verify a JOSE ES256 signature (r||s) over HEADER.PAYLOAD with OpenSSL. */
static bool ossl_es256_ok(const char *tok, EVP_PKEY *pkey)
{
    const char *d2 = strrchr(tok, '.');
    size_t sn = strlen(d2 + 1);
    ck_assert_uint_eq(sn, 86);
    uint8_t raw[66];
    /* decode 86 base64url characters into 64 bytes */
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < sn; i++) {
        acc = (acc << 6) | (uint32_t)(strchr(A, d2[1 + i]) - A);
        bits += 6;
        if (bits >= 8) raw[o++] = (uint8_t)(acc >> (bits -= 8));
    }
    ck_assert_uint_eq(o, 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    uint8_t der[128], *dp = der;
    int dl = i2d_ECDSA_SIG(es, &dp);
    ECDSA_SIG_free(es);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
    int ok = EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)tok, (size_t)(d2 - tok));
    EVP_MD_CTX_free(md);
    return ok == 1;
}

START_TEST(es256_mint_and_verify)
{
    keypair k;
    ec_keys(&k, "P-256");
    srv_auth_config mc = {.alg = SRV_AUTH_ES256, .private_key_pem = k.priv, .audience = "tandem"};
    srv_auth *minter = NULL, *verifier = NULL;
    ck_assert_int_eq(srv_auth_new(&mc, &minter), TDM_OK);
    ck_assert(srv_auth_can_mint(minter));
    srv_auth_config vc = {.alg = SRV_AUTH_ES256, .public_key_pem = k.pub, .audience = "tandem"};
    ck_assert_int_eq(srv_auth_new(&vc, &verifier), TDM_OK);
    ck_assert(!srv_auth_can_mint(verifier));
    ck_assert_int_eq(srv_auth_alg_of(verifier), SRV_AUTH_ES256);
    const char *rooms[] = {"proj-*:rw"};
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    ck_assert_int_eq(
        srv_auth_mint(minter, "carol", NULL, rooms, 1, 600, NOW_MS, tok, sizeof tok, NULL), TDM_OK);
    ck_assert_int_eq(
        srv_auth_mint(verifier, "carol", NULL, rooms, 1, 600, NOW_MS, tok + 0, 0, NULL),
        TDM_EINVAL);
    srv_auth_claims c;
    ck_assert_int_eq(verify(verifier, tok, NOW_MS + 5000, &c), TDM_OK);
    ck_assert_str_eq(c.user, "carol");
    ck_assert_int_eq(srv_auth_access(&c, "proj-x", 6), SRV_AUTH_WRITE);
    ck_assert_int_eq(why(minter, tok, NOW_MS),
                     SRV_AUTH_OK); /* minter verifies with the derived key */
    /* the signature is JOSE r||s: OpenSSL verifies it independently */
    ck_assert(ossl_es256_ok(tok, k.pkey));
    /* a token signed here with OpenSSL (not libjwt) is accepted too */
    char *f = forge("{\"alg\":\"ES256\"}",
                    "{\"sub\":\"dan\",\"exp\":1700000060,\"aud\":[\"x\",\"tandem\"]}", 2, NULL, 0,
                    k.pkey);
    ck_assert_int_eq(verify(verifier, f, NOW_MS, &c), TDM_OK);
    ck_assert_str_eq(c.user, "dan");
    free(f);
    /* another key pair's signature is refused */
    keypair k2;
    ec_keys(&k2, "P-256");
    f = forge("{\"alg\":\"ES256\"}", "{\"sub\":\"dan\",\"exp\":1700000060,\"aud\":\"tandem\"}", 2,
              NULL, 0, k2.pkey);
    ck_assert_int_eq(why(verifier, f, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    free(f);
    /* minting from a private key file; verifying from a public key file */
    char dir[] = "/tmp/test_auth_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char pubf[64], privf[64];
    snprintf(pubf, sizeof pubf, "%s/pub.pem", dir);
    snprintf(privf, sizeof privf, "%s/priv.pem", dir);
    FILE *fp = fopen(pubf, "w");
    fputs(k.pub, fp);
    fclose(fp);
    fp = fopen(privf, "w");
    fputs(k.priv, fp);
    fclose(fp);
    srv_auth *fa = NULL;
    srv_auth_config fc = {
        .alg = SRV_AUTH_ES256, .public_key_file = pubf, .private_key_file = privf};
    ck_assert_int_eq(srv_auth_new(&fc, &fa), TDM_OK);
    ck_assert_int_eq(srv_auth_mint(fa, "erin", "Erin", rooms, 1, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_OK);
    ck_assert_int_eq(why(fa, tok, NOW_MS), SRV_AUTH_OK);
    ck_assert_int_eq(why(verifier, tok, NOW_MS), SRV_AUTH_WRONG_AUDIENCE); /* minted without aud */
    srv_auth_free(fa);
    /* a private key that does not match the public key is a configuration error */
    srv_auth_config bad = {
        .alg = SRV_AUTH_ES256, .public_key_pem = k2.pub, .private_key_file = privf};
    ck_assert_int_eq(srv_auth_new(&bad, &fa), TDM_EINVAL);
    ck_assert_ptr_null(fa);
    unlink(pubf);
    unlink(privf);
    rmdir(dir);
    EVP_PKEY_free(k.pkey);
    EVP_PKEY_free(k2.pkey);
    srv_auth_free(minter);
    srv_auth_free(verifier);
}
END_TEST

/* ---- time claims -------------------------------------------------------------- */

START_TEST(expired_and_not_yet_valid)
{
    srv_auth *a = hs();
    const int64_t L = SRV_AUTH_LEEWAY_DEF;
    char p[256];
    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW_S);
    ck_assert_int_eq(why_payload(a, p, NOW_MS - 1), SRV_AUTH_OK);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + (uint64_t)L * 1000 - 1), SRV_AUTH_OK); /* leeway */
    ck_assert_int_eq(why_payload(a, p, NOW_MS + (uint64_t)L * 1000), SRV_AUTH_EXPIRED);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + 86400000), SRV_AUTH_EXPIRED);
    srv_auth_claims c;
    char *t = forge_hs(p);
    ck_assert_int_eq(verify(a, t, NOW_MS + 86400000, &c), TDM_EMALFORMED);
    ck_assert_str_eq(srv_auth_reason_str(c.reason), "token expired");
    ck_assert_str_eq(c.user, ""); /* nothing of a refused token is left */
    free(t);

    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", (long long)NOW_S + 600,
             (long long)NOW_S + 100);
    ck_assert_int_eq(why_payload(a, p, NOW_MS), SRV_AUTH_NOT_YET_VALID);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + (100 - L) * 1000 - 1), SRV_AUTH_NOT_YET_VALID);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + (100 - L) * 1000), SRV_AUTH_OK);

    /* iat: in the future beyond the leeway, or after exp */
    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld,\"iat\":%lld}", (long long)NOW_S + 600,
             (long long)NOW_S + 100);
    ck_assert_int_eq(why_payload(a, p, NOW_MS), SRV_AUTH_ISSUED_FUTURE);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + 70000), SRV_AUTH_OK);
    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld,\"iat\":%lld}", (long long)NOW_S + 60,
             (long long)NOW_S + 61);
    ck_assert_int_eq(why_payload(a, p, NOW_MS + 61000), SRV_AUTH_ISSUED_FUTURE);

    /* exp is required unless allowed */
    ck_assert_int_eq(why_payload(a, "{\"sub\":\"u\"}", NOW_MS), SRV_AUTH_BAD_CLAIMS);
    srv_auth_config cfg = {.alg = SRV_AUTH_HS256,
                           .secret = (const uint8_t *)SECRET,
                           .secret_len = strlen(SECRET),
                           .allow_no_exp = true,
                           .leeway_zero = true};
    srv_auth *b = NULL;
    ck_assert_int_eq(srv_auth_new(&cfg, &b), TDM_OK);
    ck_assert_int_eq(why_payload(b, "{\"sub\":\"u\"}", NOW_MS), SRV_AUTH_OK);
    /* leeway 0: expired exactly at exp */
    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld}", (long long)NOW_S);
    ck_assert_int_eq(why_payload(b, p, NOW_MS - 1), SRV_AUTH_OK);
    ck_assert_int_eq(why_payload(b, p, NOW_MS), SRV_AUTH_EXPIRED);
    srv_auth_free(b);
    /* a configured leeway */
    cfg.allow_no_exp = false, cfg.leeway_zero = false, cfg.leeway_s = 5;
    ck_assert_int_eq(srv_auth_new(&cfg, &b), TDM_OK);
    ck_assert_int_eq(why_payload(b, p, NOW_MS + 4999), SRV_AUTH_OK);
    ck_assert_int_eq(why_payload(b, p, NOW_MS + 5000), SRV_AUTH_EXPIRED);
    srv_auth_free(b);
    cfg.leeway_s = SRV_AUTH_LEEWAY_MAX + 1;
    ck_assert_int_eq(srv_auth_new(&cfg, &b), TDM_EINVAL);
    srv_auth_free(a);
}
END_TEST

START_TEST(audience)
{
    srv_auth_config cfg = {.alg = SRV_AUTH_HS256,
                           .secret = (const uint8_t *)SECRET,
                           .secret_len = strlen(SECRET),
                           .audience = "tandem-prod"};
    srv_auth *a = NULL;
    ck_assert_int_eq(srv_auth_new(&cfg, &a), TDM_OK);
    ck_assert_int_eq(
        why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":\"tandem-prod\"}", NOW_MS),
        SRV_AUTH_OK);
    ck_assert_int_eq(
        why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":\"tandem-dev\"}", NOW_MS),
        SRV_AUTH_WRONG_AUDIENCE);
    ck_assert_int_eq(why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100}", NOW_MS),
                     SRV_AUTH_WRONG_AUDIENCE);
    ck_assert_int_eq(
        why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":[\"a\",\"tandem-prod\"]}",
                    NOW_MS),
        SRV_AUTH_OK);
    ck_assert_int_eq(why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":[\"a\",1]}", NOW_MS),
                     SRV_AUTH_WRONG_AUDIENCE);
    ck_assert_int_eq(
        why_payload(a, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":\"tandem-prodx\"}", NOW_MS),
        SRV_AUTH_WRONG_AUDIENCE);
    /* minted tokens carry the audience */
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    ck_assert_int_eq(srv_auth_mint(a, "u", NULL, NULL, 0, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_OK);
    ck_assert_int_eq(why(a, tok, NOW_MS), SRV_AUTH_OK);
    /* without a configured audience, aud is not looked at */
    srv_auth *b = hs();
    ck_assert_int_eq(
        why_payload(b, "{\"sub\":\"u\",\"exp\":1700000100,\"aud\":\"anything\"}", NOW_MS),
        SRV_AUTH_OK);
    srv_auth_free(b);
    cfg.audience = "";
    ck_assert_int_eq(srv_auth_new(&cfg, &b), TDM_EINVAL);
    srv_auth_free(a);
}
END_TEST

/* ---- tampering and algorithms ---------------------------------------------------- */

START_TEST(tampered_payload_and_signature)
{
    srv_auth *a = hs();
    const char *rooms[] = {"doc:r"};
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    ck_assert_int_eq(
        srv_auth_mint(a, "mallory", NULL, rooms, 1, 600, NOW_MS, tok, sizeof tok, NULL), TDM_OK);
    ck_assert_int_eq(why(a, tok, NOW_MS), SRV_AUTH_OK);
    char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    /* payload swapped for one granting write, signature kept */
    char evil[256], *forged = malloc(strlen(tok) + 400);
    const char *p = "{\"sub\":\"mallory\",\"rooms\":[\"*:rw\"],\"exp\":1700000600}";
    b64url((const uint8_t *)p, strlen(p), evil);
    sprintf(forged, "%.*s.%s%s", (int)(d1 - tok), tok, evil, d2);
    ck_assert_int_eq(why(a, forged, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    /* one character of the payload changed */
    strcpy(forged, tok);
    size_t mid = (size_t)(d1 - tok) + 5;
    forged[mid] = forged[mid] == 'A' ? 'B' : 'A';
    srv_auth_reason r = why(a, forged, NOW_MS);
    ck_assert(r == SRV_AUTH_BAD_SIGNATURE || r == SRV_AUTH_MALFORMED);
    /* a signature character changed in the middle */
    strcpy(forged, tok);
    size_t s = (size_t)(d2 - tok) + 10;
    forged[s] = forged[s] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(why(a, forged, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    /* the last character: 43 characters carry 258 bits, the low 2 unused.
     * Changing only them leaves the decoded bytes (and the HMAC) the same; the
     * strict decoder refuses the non-canonical text before libjwt runs (libjwt
     * 1.10.2 happens to refuse it too: it compares re-encoded text). */
    strcpy(forged, tok);
    size_t last = strlen(forged) - 1;
    const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(A, forged[last]) - A);
    ck_assert_int_eq(v & 3, 0);
    forged[last] = A[v | 1];
    ck_assert_int_eq(why(a, forged, NOW_MS), SRV_AUTH_MALFORMED);
    /* signature cut short or made longer */
    strcpy(forged, tok);
    forged[strlen(forged) - 4] = '\0';
    ck_assert_int_eq(why(a, forged, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    sprintf(forged, "%sAAAA", tok);
    ck_assert_int_eq(why(a, forged, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    free(forged);
    srv_auth_free(a);
}
END_TEST

START_TEST(alg_none_and_other_algs)
{
    srv_auth *a = hs();
    const char *pl = "{\"sub\":\"root\",\"rooms\":[\"*:rw\"],\"exp\":1700000600}";
    char *t = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", pl, 0, NULL, 0, NULL);
    ck_assert_int_eq(t[strlen(t) - 1], '.'); /* HEADER.PAYLOAD. */
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_WRONG_ALG);
    /* libjwt 1.10 accepts this token when given no key - why we never pass NULL */
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_decode(&j, t, NULL, 0), 0);
    jwt_free(j);
    free(t);
    /* none with a signature attached, None, lowercase hs256, HS512, RS256, ES256, missing, number
     */
    const char *hdrs[] = {"{\"alg\":\"none\"}",  "{\"alg\":\"None\"}",  "{\"alg\":\"hs256\"}",
                          "{\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\"}",
                          "{\"alg\":\"HS256 \"}"};
    for (size_t i = 0; i < sizeof hdrs / sizeof hdrs[0]; i++) {
        t = forge(hdrs[i], pl, 1, SECRET, strlen(SECRET), NULL);
        ck_assert_msg(why(a, t, NOW_MS) == SRV_AUTH_WRONG_ALG, "%s", hdrs[i]);
        free(t);
    }
    const char *bad[] = {"{\"typ\":\"JWT\"}", "{\"alg\":256}", "{\"alg\":null}",
                         "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = forge(bad[i], pl, 1, SECRET, strlen(SECRET), NULL);
        ck_assert_msg(why(a, t, NOW_MS) == SRV_AUTH_MALFORMED, "%s", bad[i]);
        free(t);
    }
    srv_auth_free(a);
}
END_TEST

START_TEST(algorithm_confusion)
{
    keypair k;
    ec_keys(&k, "P-256");
    srv_auth_config vc = {.alg = SRV_AUTH_ES256, .public_key_pem = k.pub};
    srv_auth *a = NULL;
    ck_assert_int_eq(srv_auth_new(&vc, &a), TDM_OK);
    /* the attacker knows the public key and uses its PEM text as HMAC secret */
    const char *pl = "{\"sub\":\"attacker\",\"rooms\":[\"*:rw\"],\"exp\":1700000600}";
    char *t = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pl, 1, k.pub, strlen(k.pub), NULL);
    /* libjwt 1.10 alone accepts it with the PEM as key */
    jwt_t *j = NULL;
    ck_assert_int_eq(jwt_decode(&j, t, (const unsigned char *)k.pub, (int)strlen(k.pub)), 0);
    ck_assert_int_eq(jwt_get_alg(j), JWT_ALG_HS256);
    jwt_free(j);
    srv_auth_claims c;
    ck_assert_int_eq(verify(a, t, NOW_MS, &c), TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_WRONG_ALG);
    ck_assert_str_eq(srv_auth_reason_str(c.reason), "wrong token algorithm");
    ck_assert_int_eq(srv_auth_access(&c, "x", 1), SRV_AUTH_NONE);
    free(t);
    /* the same PEM without its final newline, too */
    size_t pl_len = strlen(k.pub) - 1;
    t = forge("{\"alg\":\"HS256\"}", pl, 1, k.pub, pl_len, NULL);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_WRONG_ALG);
    free(t);
    /* and the other way: an ES256 token presented to an HS256 server */
    srv_auth *h = hs();
    t = forge("{\"alg\":\"ES256\"}", pl, 2, NULL, 0, k.pkey);
    ck_assert_int_eq(why(h, t, NOW_MS), SRV_AUTH_WRONG_ALG);
    free(t);
    srv_auth_free(h);
    EVP_PKEY_free(k.pkey);
    srv_auth_free(a);
}
END_TEST

START_TEST(wrong_secret)
{
    srv_auth *a = hs();
    const char other[] = "ffffffffffffffffffffffffffffffff-other";
    char *t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700000100}", 1, other,
                    strlen(other), NULL);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    free(t);
    /* the secret with one byte more or less */
    t = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700000100}", 1, SECRET,
              strlen(SECRET) - 1, NULL);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_BAD_SIGNATURE);
    free(t);
    srv_auth_free(a);
}
END_TEST

/* ---- malformed ------------------------------------------------------------------- */

START_TEST(malformed_tokens)
{
    srv_auth *a = hs();
    srv_auth_claims c;
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)"", 0, NOW_MS, &c), TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_MISSING);
    ck_assert_int_eq(srv_auth_verify(a, NULL, 0, NOW_MS, &c), TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_verify(NULL, (const uint8_t *)"a", 1, NOW_MS, &c), TDM_EINVAL);
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)"a", 1, NOW_MS, NULL), TDM_EINVAL);
    char *good = forge_hs("{\"sub\":\"u\",\"exp\":1700000100}");
    ck_assert_int_eq(why(a, good, NOW_MS), SRV_AUTH_OK);
    const char *d1 = strchr(good, '.'), *d2 = strrchr(good, '.');
    char buf[1024];
    const char *cases[] = {
        "abc", "abc.def", "a.b.c.d", "...", "..", ".", "eyJhbGciOiJIUzI1NiJ9..", "x.y.z",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(why(a, cases[i], NOW_MS) == SRV_AUTH_MALFORMED, "%s", cases[i]);
    /* four parts: a valid token with ".x" appended */
    snprintf(buf, sizeof buf, "%s.x", good);
    ck_assert_int_eq(why(a, buf, NOW_MS), SRV_AUTH_MALFORMED);
    /* base64 alphabet violations in each part: '+', '/', '=' padding, space, NUL */
    const char bads[] = {'+', '/', '=', ' ', '*'};
    for (int part = 0; part < 3; part++) {
        size_t at = part == 0 ? 2 : part == 1 ? (size_t)(d1 - good) + 2 : (size_t)(d2 - good) + 2;
        for (size_t b = 0; b < sizeof bads; b++) {
            strcpy(buf, good);
            buf[at] = bads[b];
            ck_assert_msg(why(a, buf, NOW_MS) == SRV_AUTH_MALFORMED, "part %d char %c", part,
                          bads[b]);
        }
    }
    strcpy(buf, good);
    buf[3] = '\0';
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)buf, strlen(good), NOW_MS, &c),
                     TDM_EMALFORMED);
    /* padding appended to the signature */
    snprintf(buf, sizeof buf, "%s=", good);
    ck_assert_int_eq(why(a, buf, NOW_MS), SRV_AUTH_MALFORMED);
    /* header / payload that are not JSON objects, duplicate keys, invalid UTF-8 */
    const char *pls[] = {"not json",
                         "[1,2]",
                         "\"sub\"",
                         "{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1700000100}",
                         "{\"sub\":\"\xff\",\"exp\":1700000100}",
                         "{\"sub\":\"u\",\"exp\":1700000100} x",
                         ""};
    for (size_t i = 0; i < sizeof pls / sizeof pls[0]; i++) {
        char *t = forge_hs(pls[i]);
        ck_assert_msg(why(a, t, NOW_MS) == SRV_AUTH_MALFORMED, "payload %s", pls[i]);
        free(t);
    }
    char *t =
        forge("[\"HS256\"]", "{\"sub\":\"u\",\"exp\":1700000100}", 1, SECRET, strlen(SECRET), NULL);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_MALFORMED);
    free(t);
    t = forge("{\"alg\":\"HS256\",\"alg\":\"none\"}", "{\"sub\":\"u\",\"exp\":1700000100}", 1,
              SECRET, strlen(SECRET), NULL);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_MALFORMED);
    free(t);
    /* a part whose length is 1 mod 4 cannot be base64 */
    snprintf(buf, sizeof buf, "%.*sA%s", (int)(d2 - good), good, d2);
    ck_assert_int_eq(why(a, buf, NOW_MS), SRV_AUTH_MALFORMED);
    /* huge: over the cap is TOO_BIG without looking further */
    size_t hn = SRV_AUTH_TOKEN_MAX + 1;
    char *huge = malloc(hn + 1);
    memset(huge, 'A', hn);
    huge[hn] = '\0';
    ck_assert_int_eq(verify(a, huge, NOW_MS, &c), TDM_ETOOBIG);
    ck_assert_int_eq(c.reason, SRV_AUTH_TOO_BIG);
    huge[10] = huge[20] = '.';
    ck_assert_int_eq(verify(a, huge, NOW_MS, &c), TDM_ETOOBIG);
    /* exactly at the cap: parsed, and refused as malformed junk */
    huge[hn - 1] = '\0';
    ck_assert_int_eq(verify(a, huge, NOW_MS, &c), TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_MALFORMED);
    /* a genuine token near the cap (big name padding in the payload) verifies */
    size_t pad = SRV_AUTH_TOKEN_MAX * 3 / 4 - 200;
    char *pl = malloc(pad + 200);
    int off = sprintf(pl, "{\"sub\":\"u\",\"exp\":1700000100,\"x\":\"");
    memset(pl + off, 'x', pad);
    strcpy(pl + off + pad, "\"}");
    t = forge_hs(pl);
    ck_assert_uint_le(strlen(t), SRV_AUTH_TOKEN_MAX);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_OK);
    free(t);
    free(pl);
    free(huge);
    free(good);
    srv_auth_free(a);
}
END_TEST

START_TEST(claim_types)
{
    srv_auth *a = hs();
    char long_sub[400];
    memset(long_sub, 0, sizeof long_sub);
    char p[1200];
    struct {
        const char *payload;
        srv_auth_reason want;
    } rows[] = {
        {"{\"exp\":1700000100}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"\",\"exp\":1700000100}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":7,\"exp\":1700000100}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"name\":5,\"exp\":1700000100}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"name\":\"\",\"exp\":1700000100}", SRV_AUTH_OK},
        {"{\"sub\":\"u\",\"exp\":1700000100.5}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":\"1700000100\"}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":-1}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":99999999999999}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"nbf\":true}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"iat\":null}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":\"*:rw\"}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[\"*:w\"]}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[\"*\"]}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[\":rw\"]}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[\"a:RW\"]}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[1]}", SRV_AUTH_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[]}", SRV_AUTH_OK},
        {"{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[\"a:b:rw\"]}", SRV_AUTH_OK},
        {"{\"sub\":\"u\\u0000v\",\"exp\":1700000100}", SRV_AUTH_MALFORMED},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_msg(why_payload(a, rows[i].payload, NOW_MS) == rows[i].want, "row %zu: %s", i,
                      rows[i].payload);
    /* sub of 255 bytes is fine, 256 is not */
    memset(long_sub, 'u', 255);
    snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1700000100}", long_sub);
    ck_assert_int_eq(why_payload(a, p, NOW_MS), SRV_AUTH_OK);
    long_sub[255] = 'u';
    snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1700000100}", long_sub);
    ck_assert_int_eq(why_payload(a, p, NOW_MS), SRV_AUTH_BAD_CLAIMS);
    /* 64 rooms entries fine, 65 not; the patterns' total size is capped */
    char *big = malloc(65 * 300 + 100);
    for (int n = 64; n <= 65; n++) {
        int off = sprintf(big, "{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[");
        for (int i = 0; i < n; i++) off += sprintf(big + off, "%s\"d%d:r\"", i ? "," : "", i);
        strcpy(big + off, "]}");
        ck_assert_int_eq(why_payload(a, big, NOW_MS), n == 64 ? SRV_AUTH_OK : SRV_AUTH_BAD_CLAIMS);
    }
    int off = sprintf(big, "{\"sub\":\"u\",\"exp\":1700000100,\"rooms\":[");
    for (int i = 0; i < 9; i++) { /* 9 patterns of 250 bytes: 2250 > SRV_AUTH_POOL_MAX */
        off += sprintf(big + off, "%s\"", i ? "," : "");
        memset(big + off, 'p', 250);
        off += 250;
        off += sprintf(big + off, ":r\"");
    }
    strcpy(big + off, "]}");
    ck_assert_int_eq(why_payload(a, big, NOW_MS), SRV_AUTH_BAD_CLAIMS);
    free(big);
    srv_auth_free(a);
}
END_TEST

/* ---- configuration ------------------------------------------------------------- */

START_TEST(config_errors)
{
    srv_auth *a = (srv_auth *)1;
    srv_auth_config c = {
        .alg = SRV_AUTH_HS256, .secret = (const uint8_t *)SECRET, .secret_len = 31};
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL); /* 31 bytes: too short */
    ck_assert_ptr_null(a);
    c.secret_len = 32;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_OK);
    srv_auth_free(a);
    c.secret_env = "X"; /* two sources */
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    memset(&c, 0, sizeof c);
    c.alg = SRV_AUTH_HS256;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL); /* no source */
    c.alg = (srv_auth_alg)7;
    c.secret = (const uint8_t *)SECRET, c.secret_len = strlen(SECRET);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    ck_assert_int_eq(srv_auth_new(NULL, &a), TDM_EINVAL);
    /* environment: a trailing newline is dropped; unset is ENOTFOUND */
    memset(&c, 0, sizeof c);
    c.alg = SRV_AUTH_HS256;
    c.secret_env = "TEST_AUTH_SECRET";
    unsetenv("TEST_AUTH_SECRET");
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_ENOTFOUND);
    char env[128];
    snprintf(env, sizeof env, "%s\n", SECRET);
    setenv("TEST_AUTH_SECRET", env, 1);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_OK);
    char *t = forge_hs("{\"sub\":\"u\",\"exp\":1700000100}");
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_OK); /* same key as SECRET */
    srv_auth_free(a);
    setenv("TEST_AUTH_SECRET", "short", 1);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    unsetenv("TEST_AUTH_SECRET");
    /* file: missing, with CRLF, too big */
    char dir[] = "/tmp/test_auth_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/secret", dir);
    memset(&c, 0, sizeof c);
    c.alg = SRV_AUTH_HS256;
    c.secret_file = path;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_ENOTFOUND);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\r\n", SECRET);
    fclose(f);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_OK);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_OK);
    srv_auth_free(a);
    f = fopen(path, "w");
    for (int i = 0; i < 5000; i++) fputc('s', f);
    fclose(f);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_ETOOBIG);
    unlink(path);
    rmdir(dir);
    free(t);
    /* ES256: garbage PEM, a P-384 key, an HS256 secret given, both pub forms */
    keypair k384, k;
    ec_keys(&k384, "P-384");
    ec_keys(&k, "P-256");
    memset(&c, 0, sizeof c);
    c.alg = SRV_AUTH_ES256;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    c.public_key_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EMALFORMED);
    c.public_key_pem = k384.pub;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    c.public_key_pem = NULL;
    c.private_key_pem = k384.priv;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    c.private_key_pem = k.pub; /* a public key where the private key belongs */
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EMALFORMED);
    c.private_key_pem = NULL;
    c.public_key_pem = k.pub;
    c.secret = (const uint8_t *)SECRET, c.secret_len = strlen(SECRET);
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    c.secret = NULL;
    c.public_key_file = "/nonexistent";
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    c.public_key_pem = NULL;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_ENOTFOUND);
    /* HS256 with a key file given is a configuration error */
    memset(&c, 0, sizeof c);
    c.alg = SRV_AUTH_HS256;
    c.secret = (const uint8_t *)SECRET, c.secret_len = strlen(SECRET);
    c.public_key_pem = k.pub;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_EINVAL);
    EVP_PKEY_free(k.pkey);
    EVP_PKEY_free(k384.pkey);
    srv_auth_free(NULL);
}
END_TEST

START_TEST(mint_errors)
{
    srv_auth *a = hs();
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    const char *ok[] = {"a:r"};
    const char *bad[] = {"a:x"};
    ck_assert_int_eq(srv_auth_mint(a, "u", NULL, bad, 1, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_mint(a, "u", NULL, ok, 1, 0, NOW_MS, tok, sizeof tok, NULL),
                     TDM_EINVAL);
    ck_assert_int_eq(
        srv_auth_mint(a, "u", NULL, ok, 1, SRV_AUTH_TTL_MAX + 1, NOW_MS, tok, sizeof tok, NULL),
        TDM_EINVAL);
    ck_assert_int_eq(srv_auth_mint(a, "", NULL, ok, 1, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_EINVAL);
    ck_assert_int_eq(srv_auth_mint(a, "\xff", NULL, ok, 1, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_EINVAL);
    ck_assert_int_eq(srv_auth_mint(a, "u", NULL, ok, 1, 60, NOW_MS, tok, 20, NULL), TDM_ETOOBIG);
    ck_assert_int_eq(srv_auth_mint(a, "u", NULL, ok, 1, 60, NOW_MS, tok, sizeof tok, NULL), TDM_OK);
    srv_auth_free(a);
}
END_TEST

/* ---- permissions ---------------------------------------------------------------- */

START_TEST(glob_table)
{
    struct {
        const char *pat, *name;
        bool want;
    } rows[] = {
        {"*", "anything", true},
        {"*", "", true},
        {"doc", "doc", true},
        {"doc", "doc2", false},
        {"doc", "Doc", false},
        {"doc*", "doc", true},
        {"doc*", "document", true},
        {"*doc", "mydoc", true},
        {"*doc", "mydocs", false},
        {"a*b*c", "axxbyyc", true},
        {"a*b*c", "abc", true},
        {"a*b*c", "acb", false},
        {"a*b*c", "abcbc", true},
        {"team/*", "team/x/y", true}, /* '*' crosses '/' */
        {"team/*", "team", false},
        {"team/*", "team/", true},
        {"?", "a", true},
        {"?", "", false},
        {"?", "ab", false},
        {"?", "é", true}, /* one character of two bytes */
        {"?", "☕", true},
        {"??", "é", false},
        {"d?c", "doc", true},
        {"d?c", "dc", false},
        {"d?c", "dééc", false},
        {"*?", "", false},
        {"*?", "x", true},
        {"*??", "é", false},
        {"*??", "éé", true},
        {"\\*", "*", true},
        {"\\*", "x", false},
        {"a\\?", "a?", true},
        {"a\\?", "ab", false},
        {"a\\\\", "a\\", true},
        {"a\\", "a\\", true}, /* a trailing backslash is literal */
        {"***a", "ba", true},
        {"a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {"notes:2024", "notes:2024", true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_msg(srv_auth_glob(rows[i].pat, strlen(rows[i].pat), rows[i].name,
                                    strlen(rows[i].name)) == rows[i].want,
                      "row %zu: '%s' vs '%s'", i, rows[i].pat, rows[i].name);
    /* a long pathological case stays fast (no exponential backtracking) */
    char pat[256], name[256];
    for (int i = 0; i < 255; i++) pat[i] = i % 2 ? 'a' : '*';
    memset(name, 'a', sizeof name);
    ck_assert(srv_auth_glob(pat, 255, name, 255));
    pat[254] = 'b';
    ck_assert(!srv_auth_glob(pat, 255, name, 255));
}
END_TEST

/* Claims holding rules[0..n) as parsed by srv_auth_parse_rule. */
static void claims_of(srv_auth_claims *c, const char *const *rules, size_t n)
{
    memset(c, 0, sizeof *c);
    size_t pool = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        srv_auth_perm p;
        ck_assert_int_eq(srv_auth_parse_rule(rules[i], strlen(rules[i]), &pl, &p), TDM_OK);
        memcpy(c->pool + pool, rules[i], pl);
        c->rules[c->nrules++] = (srv_auth_rule){(uint16_t)pool, (uint16_t)pl, (uint8_t)p};
        pool += pl;
    }
}

START_TEST(access_precedence)
{
    srv_auth_claims c;
    const char *r1[] = {"*:r", "team/*:rw", "team/secret:none"};
    claims_of(&c, r1, 3);
    struct {
        const char *doc;
        srv_auth_perm want;
    } t1[] = {{"notes", SRV_AUTH_READ},
              {"team/plan", SRV_AUTH_WRITE},
              {"team/secret", SRV_AUTH_NONE},
              {"team/secret2", SRV_AUTH_WRITE},
              {"team", SRV_AUTH_READ}};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(srv_auth_access(&c, t1[i].doc, strlen(t1[i].doc)) == t1[i].want, "%s",
                      t1[i].doc);
    /* last match wins: a broad rule at the end overrides the specific ones */
    const char *r2[] = {"team/secret:none", "team/*:rw", "*:r"};
    claims_of(&c, r2, 3);
    ck_assert_int_eq(srv_auth_access(&c, "team/secret", 11), SRV_AUTH_READ);
    ck_assert_int_eq(srv_auth_access(&c, "team/plan", 9), SRV_AUTH_READ);
    /* none at the end revokes everything */
    const char *r3[] = {"*:rw", "*:none"};
    claims_of(&c, r3, 2);
    ck_assert_int_eq(srv_auth_access(&c, "x", 1), SRV_AUTH_NONE);
    /* no rules, no match: none */
    claims_of(&c, NULL, 0);
    ck_assert_int_eq(srv_auth_access(&c, "x", 1), SRV_AUTH_NONE);
    const char *r4[] = {"doc-?:rw", "a:b:r"};
    claims_of(&c, r4, 2);
    ck_assert_int_eq(srv_auth_access(&c, "doc-1", 5), SRV_AUTH_WRITE);
    ck_assert_int_eq(srv_auth_access(&c, "doc-12", 6), SRV_AUTH_NONE);
    ck_assert_int_eq(srv_auth_access(&c, "a:b", 3), SRV_AUTH_READ); /* split at the last ':' */
    ck_assert_int_eq(srv_auth_access(&c, "a", 1), SRV_AUTH_NONE);
    /* document names are byte strings: an embedded NUL does not cut the name */
    ck_assert_int_eq(srv_auth_access(&c, "doc-1\0x", 7), SRV_AUTH_NONE);
    /* claims of a refused token grant nothing */
    c.reason = SRV_AUTH_EXPIRED;
    ck_assert_int_eq(srv_auth_access(&c, "doc-1", 5), SRV_AUTH_NONE);
    ck_assert_int_eq(srv_auth_access(NULL, "doc-1", 5), SRV_AUTH_NONE);
    /* parse_rule edge cases */
    size_t pl;
    srv_auth_perm p;
    ck_assert_int_eq(srv_auth_parse_rule("x:rw", 4, &pl, &p), TDM_OK);
    ck_assert_int_eq(p, SRV_AUTH_WRITE);
    ck_assert_uint_eq(pl, 1);
    ck_assert_int_eq(srv_auth_parse_rule("x:none", 6, &pl, &p), TDM_OK);
    ck_assert_int_eq(p, SRV_AUTH_NONE);
    ck_assert_int_eq(srv_auth_parse_rule("x:", 2, &pl, &p), TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_parse_rule("x:rwx", 5, &pl, &p), TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_parse_rule("x:w", 3, &pl, &p), TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_parse_rule("x:r ", 4, &pl, &p), TDM_EMALFORMED);
    ck_assert_int_eq(srv_auth_parse_rule("rw", 2, &pl, &p), TDM_EMALFORMED);
    char longp[300];
    memset(longp, 'p', sizeof longp);
    memcpy(longp + 255, ":r", 2);
    ck_assert_int_eq(srv_auth_parse_rule(longp, 257, &pl, &p), TDM_OK);
    memcpy(longp + 256, ":r", 2);
    ck_assert_int_eq(srv_auth_parse_rule(longp, 258, &pl, &p), TDM_EMALFORMED);
    /* the values are the sync layer's SYNC_ACCESS_* */
    ck_assert_int_eq(SRV_AUTH_NONE, 0);
    ck_assert_int_eq(SRV_AUTH_READ, 1);
    ck_assert_int_eq(SRV_AUTH_WRITE, 2);
}
END_TEST

/* ---- extraction ---------------------------------------------------------------- */

static tdm_err hdr(const char *v, char *tok_out)
{
    const char *t = NULL;
    size_t n = 0;
    tdm_err e = srv_auth_bearer_from_header(v, strlen(v), &t, &n);
    tok_out[0] = '\0';
    if (e == TDM_OK) {
        memcpy(tok_out, t, n);
        tok_out[n] = '\0';
        ck_assert(t >= v && t + n <= v + strlen(v)); /* borrowed from v */
    } else {
        ck_assert_ptr_null(t);
    }
    return e;
}

START_TEST(bearer_header)
{
    char t[SRV_AUTH_TOKEN_MAX + 100];
    ck_assert_int_eq(hdr("Bearer abc.def.ghi", t), TDM_OK);
    ck_assert_str_eq(t, "abc.def.ghi");
    ck_assert_int_eq(hdr("bearer abc", t), TDM_OK);
    ck_assert_int_eq(hdr("BEARER\tabc  ", t), TDM_OK);
    ck_assert_str_eq(t, "abc");
    ck_assert_int_eq(hdr("  Bearer   a-b_c.d~e+f/g==", t), TDM_OK);
    ck_assert_str_eq(t, "a-b_c.d~e+f/g==");
    ck_assert_int_eq(hdr("", t), TDM_ENOTFOUND);
    ck_assert_int_eq(hdr("   ", t), TDM_ENOTFOUND);
    ck_assert_int_eq(hdr("Basic dXNlcjpwYXNz", t), TDM_ENOTFOUND);
    ck_assert_int_eq(hdr("Bearerabc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(hdr("Bear abc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(hdr("Bearer", t), TDM_EMALFORMED);
    ck_assert_int_eq(hdr("Bearer    ", t), TDM_EMALFORMED);
    ck_assert_int_eq(hdr("Bearer a b", t), TDM_EMALFORMED);
    ck_assert_int_eq(hdr("Bearer a,b", t), TDM_EMALFORMED);
    ck_assert_int_eq(hdr("Bearer a=b", t), TDM_EMALFORMED); /* '=' only at the end */
    ck_assert_int_eq(hdr("Bearer a\"b", t), TDM_EMALFORMED);
    ck_assert_int_eq(hdr("Bearer =", t), TDM_OK); /* token68 allows it; verify refuses later */
    /* length caps: exactly SRV_AUTH_TOKEN_MAX is fine, one more is not */
    char *v = malloc(SRV_AUTH_TOKEN_MAX + 200);
    strcpy(v, "Bearer ");
    memset(v + 7, 'a', SRV_AUTH_TOKEN_MAX);
    v[7 + SRV_AUTH_TOKEN_MAX] = '\0';
    ck_assert_int_eq(hdr(v, t), TDM_OK);
    ck_assert_uint_eq(strlen(t), SRV_AUTH_TOKEN_MAX);
    strcat(v, "a");
    ck_assert_int_eq(hdr(v, t), TDM_ETOOBIG);
    memset(v, ' ', SRV_AUTH_TOKEN_MAX + 100);
    v[SRV_AUTH_TOKEN_MAX + 100] = '\0';
    ck_assert_int_eq(hdr(v, t), TDM_ETOOBIG);
    free(v);
    /* not NUL-terminated: only n bytes are read */
    const char *tt = NULL;
    size_t n = 0;
    ck_assert_int_eq(srv_auth_bearer_from_header("Bearer abcXYZ", 10, &tt, &n), TDM_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(srv_auth_bearer_from_header(NULL, 0, &tt, &n), TDM_ENOTFOUND);
    ck_assert_int_eq(srv_auth_bearer_from_header("x", 1, NULL, &n), TDM_EINVAL);
}
END_TEST

static tdm_err qry(const char *q, char *out)
{
    size_t n = 99;
    tdm_err e = srv_auth_token_from_query(q, strlen(q), out, SRV_AUTH_TOKEN_MAX + 1, &n);
    ck_assert_uint_eq(n, strlen(out));
    if (e != TDM_OK) ck_assert_str_eq(out, "");
    return e;
}

START_TEST(query_token)
{
    char t[SRV_AUTH_TOKEN_MAX + 1];
    ck_assert_int_eq(qry("token=abc.def.ghi", t), TDM_OK);
    ck_assert_str_eq(t, "abc.def.ghi");
    ck_assert_int_eq(qry("?token=abc", t), TDM_OK);
    ck_assert_str_eq(t, "abc");
    ck_assert_int_eq(qry("room=x&token=a-b_c&v=1", t), TDM_OK);
    ck_assert_str_eq(t, "a-b_c");
    ck_assert_int_eq(qry("a=1&&token=x&", t), TDM_OK);
    ck_assert_str_eq(t, "x");
    ck_assert_int_eq(qry("token=ab%2Ecd%2e", t), TDM_OK); /* percent-encoded '.' */
    ck_assert_str_eq(t, "ab.cd.");
    ck_assert_int_eq(qry("", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("?", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("tokens=abc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("xtoken=abc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("Token=abc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("access_token=abc", t), TDM_ENOTFOUND);
    ck_assert_int_eq(qry("token", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a&token=a", t), TDM_EMALFORMED); /* ambiguous */
    ck_assert_int_eq(qry("token=a+b", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a%20b", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a%2", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a%zz", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a%00b", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a=b", t), TDM_EMALFORMED);
    ck_assert_int_eq(qry("token=a#frag", t), TDM_EMALFORMED);
    /* caps */
    char *q = malloc(4 * SRV_AUTH_TOKEN_MAX + 10);
    strcpy(q, "token=");
    memset(q + 6, 'a', SRV_AUTH_TOKEN_MAX);
    q[6 + SRV_AUTH_TOKEN_MAX] = '\0';
    ck_assert_int_eq(qry(q, t), TDM_OK);
    ck_assert_uint_eq(strlen(t), SRV_AUTH_TOKEN_MAX);
    strcat(q, "a");
    ck_assert_int_eq(qry(q, t), TDM_ETOOBIG);
    /* percent-encoded: counted after decoding */
    strcpy(q, "token=");
    for (unsigned i = 0; i < SRV_AUTH_TOKEN_MAX; i++) memcpy(q + 6 + 3 * i, "%41", 3);
    q[6 + 3 * SRV_AUTH_TOKEN_MAX] = '\0';
    ck_assert_int_eq(qry(q, t), TDM_OK);
    ck_assert_uint_eq(strlen(t), SRV_AUTH_TOKEN_MAX);
    memset(q, 'x', 4 * SRV_AUTH_TOKEN_MAX + 1);
    q[4 * SRV_AUTH_TOKEN_MAX + 1] = '\0';
    ck_assert_int_eq(qry(q, t), TDM_ETOOBIG);
    free(q);
    /* a small output buffer caps the value */
    char small[4];
    size_t n;
    ck_assert_int_eq(srv_auth_token_from_query("token=abc", 9, small, sizeof small, &n), TDM_OK);
    ck_assert_int_eq(srv_auth_token_from_query("token=abcd", 10, small, sizeof small, &n),
                     TDM_ETOOBIG);
    ck_assert_int_eq(srv_auth_token_from_query("token=abc", 9, NULL, 4, &n), TDM_EINVAL);
    /* a query token verifies like any other */
    srv_auth *a = hs();
    char tok[SRV_AUTH_TOKEN_MAX + 1], q2[SRV_AUTH_TOKEN_MAX + 32];
    ck_assert_int_eq(srv_auth_mint(a, "q", NULL, NULL, 0, 60, NOW_MS, tok, sizeof tok, NULL),
                     TDM_OK);
    snprintf(q2, sizeof q2, "doc=x&token=%s", tok);
    ck_assert_int_eq(qry(q2, t), TDM_OK);
    ck_assert_int_eq(why(a, t, NOW_MS), SRV_AUTH_OK);
    srv_auth_free(a);
}
END_TEST

START_TEST(reason_strings)
{
    for (int r = 0; r < SRV_AUTH_REASON_COUNT_; r++) {
        const char *s = srv_auth_reason_str((srv_auth_reason)r);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_gt(strlen(s), 1);
    }
    ck_assert_str_eq(srv_auth_reason_str((srv_auth_reason)999), "unknown token problem");
    ck_assert_str_eq(srv_auth_reason_str(SRV_AUTH_BAD_SIGNATURE), "bad token signature");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, hs256_mint_and_verify);
    tcase_add_test(tc, es256_mint_and_verify);
    tcase_add_test(tc, expired_and_not_yet_valid);
    tcase_add_test(tc, audience);
    tcase_add_test(tc, tampered_payload_and_signature);
    tcase_add_test(tc, alg_none_and_other_algs);
    tcase_add_test(tc, algorithm_confusion);
    tcase_add_test(tc, wrong_secret);
    tcase_add_test(tc, malformed_tokens);
    tcase_add_test(tc, claim_types);
    tcase_add_test(tc, config_errors);
    tcase_add_test(tc, mint_errors);
    tcase_add_test(tc, glob_table);
    tcase_add_test(tc, access_precedence);
    tcase_add_test(tc, bearer_header);
    tcase_add_test(tc, query_token);
    tcase_add_test(tc, reason_strings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
