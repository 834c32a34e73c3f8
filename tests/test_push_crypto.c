/* test_push_crypto.c - server/push_crypto.h: RFC 8291 Appendix A reproduced
 * byte for byte (fixed sender key and salt), base64url against the RFC 4648
 * vectors and its strictness, P-256 point validation, key files (PEM and
 * base64url, mode 0600, refusal to overwrite), the VAPID JWT verified here
 * with OpenSSL's ECDSA verify after rebuilding the DER signature from r||s,
 * and origins. The VAPID header and fresh-key encryption are also checked by
 * an independent implementation (node crypto, http_ece) in test_push. */
#include "push_crypto.h"

#include <check.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 8291 Appendix A. */
static const char PLAIN[] = "When I grow up, I want to be a watermelon";
static const char AS_PRIV[] = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char AS_PUB[] =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char UA_PUB[] =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char SALT[] = "DGv6ra1nlYgDCS1FRnbzlw";
static const char AUTH[] = "BTBZMqHH6r4Tts7J_aSIgg";
static const char CIPHER[] =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6"
    "TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy"
    "4a-fN";

static size_t dec(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    ck_assert_int_eq(b64url_decode(s, strlen(s), out, cap, &n), TDM_OK);
    return n;
}

START_TEST(rfc8291_appendix_a)
{
    uint8_t d[32], ua[65], salt[16], auth[16], want[256], got[256], pub[65];
    ck_assert_uint_eq(dec(AS_PRIV, d, sizeof d), 32);
    ck_assert_uint_eq(dec(UA_PUB, ua, sizeof ua), 65);
    ck_assert_uint_eq(dec(SALT, salt, sizeof salt), 16);
    ck_assert_uint_eq(dec(AUTH, auth, sizeof auth), 16);
    size_t wn = dec(CIPHER, want, sizeof want);
    ck_assert_uint_eq(wn, strlen(PLAIN) + PUSH_ECE_OVERHEAD);
    push_key *as = NULL;
    ck_assert_int_eq(push_key_from_private(d, &as), TDM_OK);
    push_key_public(as, pub);
    char pubs[100];
    ck_assert_uint_eq(b64url_encode(pub, 65, pubs, sizeof pubs), strlen(AS_PUB));
    ck_assert_str_eq(pubs, AS_PUB); /* the public key derived from the scalar */
    size_t gn = 0;
    ck_assert_int_eq(push_encrypt(ua, auth, (const uint8_t *)PLAIN, strlen(PLAIN), salt, as, got,
                                  sizeof got, &gn),
                     TDM_OK);
    ck_assert_uint_eq(gn, wn);
    ck_assert_mem_eq(got, want, wn);
    char enc[400];
    b64url_encode(got, gn, enc, sizeof enc);
    ck_assert_str_eq(enc, CIPHER);
    /* Too small an output buffer and too long a plaintext are refused. */
    ck_assert_int_eq(
        push_encrypt(ua, auth, (const uint8_t *)PLAIN, strlen(PLAIN), salt, as, got, wn - 1, &gn),
        TDM_ETOOBIG);
    static uint8_t big[PUSH_PLAINTEXT_MAX + 1], bigout[PUSH_RECORD_SIZE + 200];
    ck_assert_int_eq(
        push_encrypt(ua, auth, big, sizeof big, NULL, NULL, bigout, sizeof bigout, &gn),
        TDM_ETOOBIG);
    ck_assert_int_eq(
        push_encrypt(ua, auth, big, sizeof big - 1, NULL, NULL, bigout, sizeof bigout, &gn),
        TDM_OK);
    ck_assert_uint_eq(gn, PUSH_RECORD_SIZE); /* the whole body, header included */
    /* A receiver key that is not on the curve. */
    ua[64] ^= 1;
    ck_assert_int_eq(push_encrypt(ua, auth, (const uint8_t *)PLAIN, strlen(PLAIN), salt, as, got,
                                  sizeof got, &gn),
                     TDM_EMALFORMED);
    push_key_free(as);
}
END_TEST

START_TEST(fresh_keys_differ)
{
    uint8_t ua[65], auth[16], a[200], b[200];
    dec(UA_PUB, ua, sizeof ua);
    dec(AUTH, auth, sizeof auth);
    size_t an = 0, bn = 0;
    ck_assert_int_eq(push_encrypt(ua, auth, (const uint8_t *)"hi", 2, NULL, NULL, a, sizeof a, &an),
                     TDM_OK);
    ck_assert_int_eq(push_encrypt(ua, auth, (const uint8_t *)"hi", 2, NULL, NULL, b, sizeof b, &bn),
                     TDM_OK);
    ck_assert_uint_eq(an, 2 + PUSH_ECE_OVERHEAD);
    ck_assert_uint_eq(bn, an);
    ck_assert_int_ne(memcmp(a, b, 16), 0);           /* salts */
    ck_assert_int_ne(memcmp(a + 21, b + 21, 65), 0); /* ephemeral keys */
    ck_assert(push_p256_point_ok(a + 21, 65));       /* keyid is a point */
    ck_assert_int_eq(a[16] << 24 | a[17] << 16 | a[18] << 8 | a[19], PUSH_RECORD_SIZE);
    ck_assert_int_eq(a[20], 65);
}
END_TEST

START_TEST(b64url)
{
    /* RFC 4648 section 10 vectors, unpadded. */
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *code[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        size_t n = b64url_encode((const uint8_t *)plain[i], strlen(plain[i]), out, sizeof out);
        ck_assert_uint_eq(n, strlen(code[i]));
        ck_assert_str_eq(out, code[i]);
        uint8_t back[16];
        size_t bn = 99;
        ck_assert_int_eq(b64url_decode(code[i], strlen(code[i]), back, sizeof back, &bn), TDM_OK);
        ck_assert_uint_eq(bn, strlen(plain[i]));
        ck_assert_mem_eq(back, plain[i], bn);
    }
    uint8_t ff[2] = {0xfb, 0xff};
    char o[8];
    b64url_encode(ff, 2, o, sizeof o);
    ck_assert_str_eq(o, "-_8"); /* the url-safe alphabet */
    uint8_t buf[8];
    size_t n;
    ck_assert_int_eq(b64url_decode("Zg==", 4, buf, sizeof buf, &n), TDM_EMALFORMED);
    ck_assert_int_eq(b64url_decode("Zm+v", 4, buf, sizeof buf, &n), TDM_EMALFORMED);
    ck_assert_int_eq(b64url_decode("Zm9 v", 5, buf, sizeof buf, &n), TDM_EMALFORMED);
    ck_assert_int_eq(b64url_decode("Zm9vY", 5, buf, sizeof buf, &n), TDM_EMALFORMED);
    ck_assert_int_eq(b64url_decode("Zh", 2, buf, sizeof buf, &n), TDM_EMALFORMED);
    ck_assert_int_eq(b64url_decode("Zm9vYmFy", 8, buf, 5, &n), TDM_ETOOBIG);
    ck_assert_uint_eq(b64url_encode((const uint8_t *)"foo", 3, o, 4), 0); /* no room for NUL */
}
END_TEST

START_TEST(points)
{
    uint8_t ua[65];
    dec(UA_PUB, ua, sizeof ua);
    ck_assert(push_p256_point_ok(ua, 65));
    ck_assert(!push_p256_point_ok(ua, 64));
    ck_assert(!push_p256_point_ok(NULL, 65));
    uint8_t bad[65];
    memcpy(bad, ua, 65);
    bad[0] = 0x02;
    ck_assert(!push_p256_point_ok(bad, 65)); /* compressed prefix */
    memcpy(bad, ua, 65);
    bad[40] ^= 0x80;
    ck_assert(!push_p256_point_ok(bad, 65)); /* off the curve */
    memset(bad, 0, 65);
    bad[0] = 4;
    ck_assert(!push_p256_point_ok(bad, 65));
    uint8_t zero[32] = {0};
    push_key *k = NULL;
    ck_assert_int_eq(push_key_from_private(zero, &k), TDM_EMALFORMED);
    ck_assert_ptr_null(k);
    uint8_t big[32];
    memset(big, 0xff, 32); /* above the group order */
    ck_assert_int_eq(push_key_from_private(big, &k), TDM_EMALFORMED);
}
END_TEST

START_TEST(key_files)
{
    char dir[] = "/tmp/tandem-push-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], raw[256];
    snprintf(path, sizeof path, "%s/vapid.pem", dir);
    snprintf(raw, sizeof raw, "%s/vapid.b64", dir);
    push_key *k = NULL, *l = NULL, *m = NULL, *other = NULL;
    ck_assert_int_eq(push_key_load(path, &l), TDM_ENOTFOUND);
    ck_assert_int_eq(push_key_generate(&k), TDM_OK);
    ck_assert_int_eq(push_key_save(k, path, false), TDM_OK);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(push_key_generate(&other), TDM_OK);
    ck_assert_int_eq(push_key_save(other, path, false), TDM_ECONFLICT); /* kept */
    ck_assert_int_eq(push_key_load(path, &l), TDM_OK);
    uint8_t a[65], b[65], d[32];
    push_key_public(k, a);
    push_key_public(l, b);
    ck_assert_mem_eq(a, b, 65);
    /* The base64url scalar form loads to the same key. */
    ck_assert_int_eq(push_key_private(k, d), TDM_OK);
    char line[64];
    b64url_encode(d, 32, line, sizeof line);
    FILE *f = fopen(raw, "w");
    fprintf(f, "%s\n", line);
    fclose(f);
    ck_assert_int_eq(push_key_load(raw, &m), TDM_OK);
    push_key_public(m, b);
    ck_assert_mem_eq(a, b, 65);
    /* Garbage and a key of another curve are refused. */
    f = fopen(raw, "w");
    fprintf(f, "not a key\n");
    fclose(f);
    push_key *bad = NULL;
    ck_assert_int_eq(push_key_load(raw, &bad), TDM_EMALFORMED);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    f = fopen(raw, "w");
    PEM_write_PrivateKey(f, p384, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    EVP_PKEY_free(p384);
    ck_assert_int_eq(push_key_load(raw, &bad), TDM_EMALFORMED);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(push_key_save(other, path, true), TDM_OK); /* replace */
    push_key_free(l);
    ck_assert_int_eq(push_key_load(path, &l), TDM_OK);
    push_key_public(other, a);
    push_key_public(l, b);
    ck_assert_mem_eq(a, b, 65);
    push_key_free(k);
    push_key_free(l);
    push_key_free(m);
    push_key_free(other);
    unlink(path);
    unlink(raw);
    rmdir(dir);
}
END_TEST

/* Verify a JWT with OpenSSL: r||s back to DER, ECDSA-SHA256 verify. */
static bool verify_jwt(const char *jwt, const uint8_t pub[65])
{
    const char *dot2 = strrchr(jwt, '.');
    uint8_t rs[64];
    size_t n = 0;
    if (b64url_decode(dot2 + 1, strlen(dot2 + 1), rs, sizeof rs, &n) || n != 64) return false;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(rs, 32, NULL), BN_bin2bn(rs + 32, 32, NULL));
    uint8_t *der = NULL;
    int dl = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 65);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pk = NULL;
    EVP_PKEY_fromdata_init(pc);
    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(pc);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    ck_assert_ptr_nonnull(pk);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
             EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)jwt, (size_t)(dot2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    OPENSSL_free(der);
    return ok;
}

START_TEST(vapid_jwt)
{
    push_key *k = NULL;
    ck_assert_int_eq(push_key_generate(&k), TDM_OK);
    uint8_t pub[65];
    push_key_public(k, pub);
    char jwt[PUSH_JWT_MAX];
    for (int i = 0; i < 20; i++) { /* r or s is sometimes short: padded every time */
        ck_assert_int_eq(push_vapid_jwt(k, "https://push.example.net", 1700000000u,
                                        "mailto:ops@example.org", jwt, sizeof jwt),
                         TDM_OK);
        ck_assert(verify_jwt(jwt, pub));
    }
    /* Header and claims decode to what was asked. */
    const char *dot = strchr(jwt, '.'), *dot2 = strrchr(jwt, '.');
    char claims[256];
    size_t n;
    ck_assert_int_eq(
        b64url_decode(dot + 1, (size_t)(dot2 - dot - 1), (uint8_t *)claims, sizeof claims - 1, &n),
        TDM_OK);
    claims[n] = '\0';
    ck_assert_str_eq(claims, "{\"aud\":\"https://push.example.net\",\"exp\":1700000000,\"sub\":"
                             "\"mailto:ops@example.org\"}");
    char hdr[64];
    ck_assert_int_eq(b64url_decode(jwt, (size_t)(dot - jwt), (uint8_t *)hdr, sizeof hdr - 1, &n),
                     TDM_OK);
    hdr[n] = '\0';
    ck_assert_str_eq(hdr, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");
    /* A tampered token fails; quotes in claims are refused; small buffers too. */
    jwt[dot - jwt + 3] ^= 1;
    ck_assert(!verify_jwt(jwt, pub));
    ck_assert_int_eq(push_vapid_jwt(k, "https://a\"b", 1, NULL, jwt, sizeof jwt), TDM_EINVAL);
    ck_assert_int_eq(push_vapid_jwt(k, "https://a", 1, "x\\y", jwt, sizeof jwt), TDM_EINVAL);
    ck_assert_int_eq(push_vapid_jwt(k, "https://a", 1, NULL, jwt, 60), TDM_ETOOBIG);
    push_key_free(k);
}
END_TEST

START_TEST(origins)
{
    char o[300];
    ck_assert_int_eq(push_origin("https://fcm.googleapis.com/fcm/send/abc", 39, o, sizeof o),
                     TDM_OK);
    ck_assert_str_eq(o, "https://fcm.googleapis.com");
    const char *u = "http://127.0.0.1:9000/p/1?x=2";
    ck_assert_int_eq(push_origin(u, strlen(u), o, sizeof o), TDM_OK);
    ck_assert_str_eq(o, "http://127.0.0.1:9000");
    u = "https://h.example";
    ck_assert_int_eq(push_origin(u, strlen(u), o, sizeof o), TDM_OK);
    ck_assert_str_eq(o, "https://h.example");
    ck_assert_int_eq(push_origin("ftp://x/y", 9, o, sizeof o), TDM_EMALFORMED);
    ck_assert_int_eq(push_origin("https:///y", 10, o, sizeof o), TDM_EMALFORMED);
    ck_assert_int_eq(push_origin("https://u@h/y", 13, o, sizeof o), TDM_EMALFORMED);
    ck_assert_int_eq(push_origin("https://h x/y", 13, o, sizeof o), TDM_EMALFORMED);
    ck_assert_int_eq(push_origin("https://hhhh/y", 14, o, 8), TDM_ETOOBIG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("push_crypto");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, rfc8291_appendix_a);
    tcase_add_test(tc, fresh_keys_differ);
    tcase_add_test(tc, b64url);
    tcase_add_test(tc, points);
    tcase_add_test(tc, key_files);
    tcase_add_test(tc, vapid_jwt);
    tcase_add_test(tc, origins);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
