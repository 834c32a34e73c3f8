/* test_cli_token.c - the real `tandem token` (TANDEM_BIN, from CMake) run
 * with posix_spawn and a controlled environment: HS256 tokens from
 * TANDEM_JWT_SECRET and from --secret-file, ES256 from a P-256 private key
 * made here with OpenSSL, --aud, --ttl and repeated --rooms; every printed
 * token is verified with srv_auth_verify (and refused under another key).
 * Usage errors, missing or bad keys and the help texts are checked with
 * their exit statuses. */
#include "auth.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TANDEM_BIN
#error "TANDEM_BIN must name the built tandem binary"
#endif

static const char SECRET[] = "cli-test-secret-0123456789abcdef-0123456789";

typedef struct run_res {
    int status;
    char out[16384], err[16384];
} run_res;

static void drain(int fd, char *buf, size_t cap, size_t *len, bool *open)
{
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
        *open = false;
        return;
    }
    *len += (size_t)n;
    buf[*len] = '\0';
    ck_assert_uint_lt(*len, cap - 1);
}

/* Run TANDEM_BIN with args (NULL-terminated) and environment env (NULL-terminated). */
static void run_env(run_res *r, const char *const *env, const char *const *args)
{
    const char *argv[160] = {TANDEM_BIN};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        ck_assert_uint_lt(n, 159);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    int po[2], pe[2];
    ck_assert_int_eq(pipe(po), 0);
    ck_assert_int_eq(pipe(pe), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, TANDEM_BIN, &fa, NULL, (char *const *)argv, (char *const *)env);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_int_eq(rc, 0);
    close(po[1]);
    close(pe[1]);
    memset(r, 0, sizeof *r);
    size_t ol = 0, el = 0;
    bool oo = true, eo = true;
    while (oo || eo) {
        struct pollfd pf[2] = {{oo ? po[0] : -1, POLLIN, 0}, {eo ? pe[0] : -1, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            ck_assert_int_eq(errno, EINTR);
            continue;
        }
        if (oo && pf[0].revents) drain(po[0], r->out, sizeof r->out, &ol, &oo);
        if (eo && pf[1].revents) drain(pe[0], r->err, sizeof r->err, &el, &eo);
    }
    close(po[0]);
    close(pe[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0) ck_assert_int_eq(errno, EINTR);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *const ENV_NONE[] = {"PATH=/usr/bin:/bin", NULL};
static const char *const ENV_SECRET[] = {
    "PATH=/usr/bin:/bin", "TANDEM_JWT_SECRET=cli-test-secret-0123456789abcdef-0123456789", NULL};

#define RUN(r, env, ...)                                                                           \
    do {                                                                                           \
        const char *const a_[] = {__VA_ARGS__, NULL};                                              \
        run_env((r), (env), a_);                                                                   \
    } while (0)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The printed token: one line, nothing else on stdout. */
static const char *token_of(run_res *r)
{
    ck_assert_msg(r->status == 0, "status %d, stderr: %s", r->status, r->err);
    size_t n = strlen(r->out);
    ck_assert_uint_gt(n, 10);
    ck_assert_int_eq(r->out[n - 1], '\n');
    r->out[n - 1] = '\0';
    ck_assert_ptr_null(strchr(r->out, '\n'));
    ck_assert_str_eq(r->err, "");
    return r->out;
}

static srv_auth *hs_with(const char *secret, const char *aud)
{
    srv_auth_config c = {.alg = SRV_AUTH_HS256,
                         .secret = (const uint8_t *)secret,
                         .secret_len = strlen(secret),
                         .audience = aud};
    srv_auth *a = NULL;
    ck_assert_int_eq(srv_auth_new(&c, &a), TDM_OK);
    return a;
}

static char tmpdir[64];

static void setup(void)
{
    strcpy(tmpdir, "/tmp/test_cli_token_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(hs256_from_env)
{
    run_res r;
    RUN(&r, ENV_SECRET, "token", "--user", "alice", "--name", "Alice A.", "--rooms", "*:r",
        "--rooms", "team/*:rw", "--rooms", "team/secret:none");
    const char *tok = token_of(&r);
    srv_auth *a = hs_with(SECRET, NULL);
    srv_auth_claims c;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), t0, &c), TDM_OK);
    ck_assert_str_eq(c.user, "alice");
    ck_assert_str_eq(c.name, "Alice A.");
    ck_assert_int_eq(c.exp - c.iat, 3600); /* default ttl */
    ck_assert_int_le(c.iat, (int64_t)(t0 / 1000));
    ck_assert_int_ge(c.iat, (int64_t)(t0 / 1000) - 60);
    ck_assert_uint_eq(c.nrules, 3);
    ck_assert_int_eq(srv_auth_access(&c, "notes", 5), SRV_AUTH_READ);
    ck_assert_int_eq(srv_auth_access(&c, "team/x", 6), SRV_AUTH_WRITE);
    ck_assert_int_eq(srv_auth_access(&c, "team/secret", 11), SRV_AUTH_NONE);
    /* it expires after the ttl (plus the leeway) */
    uint64_t after = (uint64_t)(c.exp + SRV_AUTH_LEEWAY_DEF) * 1000u;
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), after, &c),
                     TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_EXPIRED);
    srv_auth_free(a);
    /* another secret refuses it */
    a = hs_with("another-secret-another-secret-another-secret", NULL);
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), t0, &c), TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_BAD_SIGNATURE);
    srv_auth_free(a);
}
END_TEST

START_TEST(hs256_from_file_ttl_aud)
{
    char path[128];
    snprintf(path, sizeof path, "%s/secret", tmpdir);
    char text[128];
    snprintf(text, sizeof text, "%s\n", SECRET);
    write_file(path, text);
    run_res r;
    /* the file wins over the environment; --opt=value works too */
    const char *const env[] = {"TANDEM_JWT_SECRET=this-one-is-not-used-this-one-is-not-used", NULL};
    RUN(&r, env, "token", "--user=bob", "--rooms=doc-?:rw", "--ttl", "60", "--aud", "tandem-test",
        "--secret-file", path);
    const char *tok = token_of(&r);
    srv_auth *a = hs_with(SECRET, "tandem-test");
    srv_auth_claims c;
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), now_ms(), &c), TDM_OK);
    ck_assert_str_eq(c.user, "bob");
    ck_assert_str_eq(c.name, "bob");
    ck_assert_int_eq(c.exp - c.iat, 60);
    ck_assert_int_eq(srv_auth_access(&c, "doc-1", 5), SRV_AUTH_WRITE);
    ck_assert_int_eq(srv_auth_access(&c, "doc-12", 6), SRV_AUTH_NONE);
    srv_auth_free(a);
    a = hs_with(SECRET, "other");
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), now_ms(), &c),
                     TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_WRONG_AUDIENCE);
    srv_auth_free(a);
}
END_TEST

static void pem_file(EVP_PKEY *k, bool priv, const char *path)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(
        priv ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_PUBKEY(f, k), 1);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(es256_key)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert_ptr_nonnull(k);
    char priv[128], pub[128];
    snprintf(priv, sizeof priv, "%s/key.pem", tmpdir);
    snprintf(pub, sizeof pub, "%s/pub.pem", tmpdir);
    pem_file(k, true, priv);
    pem_file(k, false, pub);
    run_res r;
    RUN(&r, ENV_SECRET, "token", "--user", "carol", "--rooms", "*:rw", "--es256-key", priv);
    const char *tok = token_of(&r);
    ck_assert(strncmp(tok, "eyJhbGciOiJFUzI1NiIs", 20) == 0); /* {"alg":"ES256", */
    srv_auth_config vc = {.alg = SRV_AUTH_ES256, .public_key_file = pub};
    srv_auth *a = NULL;
    ck_assert_int_eq(srv_auth_new(&vc, &a), TDM_OK);
    srv_auth_claims c;
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), now_ms(), &c), TDM_OK);
    ck_assert_str_eq(c.user, "carol");
    ck_assert_int_eq(srv_auth_access(&c, "anything", 8), SRV_AUTH_WRITE);
    srv_auth_free(a);
    /* an HS256 server does not take it */
    a = hs_with(SECRET, NULL);
    ck_assert_int_eq(srv_auth_verify(a, (const uint8_t *)tok, strlen(tok), now_ms(), &c),
                     TDM_EMALFORMED);
    ck_assert_int_eq(c.reason, SRV_AUTH_WRONG_ALG);
    srv_auth_free(a);
    /* a public key where the private key belongs; a P-384 key; not PEM */
    RUN(&r, ENV_NONE, "token", "--user", "carol", "--rooms", "*:rw", "--es256-key", pub);
    ck_assert_int_eq(r.status, 4);
    ck_assert_ptr_nonnull(strstr(r.err, "not a PEM private key"));
    EVP_PKEY *k384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    pem_file(k384, true, priv);
    RUN(&r, ENV_NONE, "token", "--user", "carol", "--rooms", "*:rw", "--es256-key", priv);
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "P-256"));
    ck_assert_str_eq(r.out, "");
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.pem", tmpdir);
    RUN(&r, ENV_NONE, "token", "--user", "carol", "--rooms", "*:rw", "--es256-key", missing);
    ck_assert_int_eq(r.status, 3);
    EVP_PKEY_free(k384);
    EVP_PKEY_free(k);
}
END_TEST

START_TEST(errors_and_usage)
{
    run_res r;
    struct {
        const char *const *env;
        const char *args[12];
        int status;
        const char *err;
    } rows[] = {
        {ENV_SECRET, {"token", "--rooms", "*:r"}, 2, "--user is required"},
        {ENV_SECRET, {"token", "--user", "u"}, 2, "--rooms"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:w"}, 2, "PATTERN:rw"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*"}, 2, "PATTERN:rw"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", ":rw"}, 2, "PATTERN:rw"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:r", "--ttl", "0"}, 2, "--ttl"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:r", "--ttl", "1h"}, 2, "--ttl"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:r", "--ttl", "99999999"}, 2, "--ttl"},
        {ENV_SECRET, {"token", "--user", "", "--rooms", "*:r"}, 2, "--user"},
        {ENV_SECRET, {"token", "--user", "u", "--user", "v", "--rooms", "*:r"}, 2, "twice"},
        {ENV_SECRET,
         {"token", "--user", "u", "--rooms", "*:r", "--bogus", "1"},
         2,
         "unknown option"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:r", "extra"}, 2, "unexpected"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms"}, 2, "needs a value"},
        {ENV_SECRET, {"token", "--user", "u", "--rooms", "*:r", "--aud", ""}, 2, "--aud"},
        {ENV_SECRET,
         {"token", "--user", "u", "--rooms", "*:r", "--secret-file", "f", "--es256-key", "k"},
         2,
         "exclude"},
        {ENV_NONE, {"token", "--user", "u", "--rooms", "*:r"}, 2, "TANDEM_JWT_SECRET"},
        {ENV_NONE,
         {"token", "--user", "u", "--rooms", "*:r", "--secret-file", "/nonexistent/s"},
         3,
         "no such file"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        run_env(&r, rows[i].env, rows[i].args);
        ck_assert_msg(r.status == rows[i].status, "row %zu: status %d, stderr %s", i, r.status,
                      r.err);
        ck_assert_msg(strstr(r.err, rows[i].err) != NULL, "row %zu: stderr %s", i, r.err);
        ck_assert_msg(strncmp(r.err, "tandem token: ", 14) == 0, "row %zu: %s", i, r.err);
        ck_assert_str_eq(r.out, "");
    }
    /* a short secret is refused (exit 1), from the environment and from a file */
    const char *const short_env[] = {"TANDEM_JWT_SECRET=only-31-bytes-only-31-bytes-123", NULL};
    RUN(&r, short_env, "token", "--user", "u", "--rooms", "*:r");
    ck_assert_int_eq(r.status, 1);
    ck_assert_ptr_nonnull(strstr(r.err, "32"));
    char path[128];
    snprintf(path, sizeof path, "%s/short", tmpdir);
    write_file(path, "short\n");
    RUN(&r, ENV_NONE, "token", "--user", "u", "--rooms", "*:r", "--secret-file", path);
    ck_assert_int_eq(r.status, 1);
    ck_assert_str_eq(r.out, "");
    /* exactly 32 bytes is enough */
    const char *const env32[] = {"TANDEM_JWT_SECRET=0123456789abcdef0123456789abcdef", NULL};
    RUN(&r, env32, "token", "--user", "u", "--rooms", "*:r");
    token_of(&r);
    /* 64 rooms entries are fine, 65 are a usage error */
    const char *args[2 + 2 * 65 + 4] = {"token", "--user", "u"};
    size_t n = 3;
    for (int i = 0; i < 65; i++) args[n++] = "--rooms", args[n++] = "x:r";
    args[n] = NULL;
    run_env(&r, ENV_SECRET, args);
    ck_assert_int_eq(r.status, 2);
    args[n - 2] = NULL;
    run_env(&r, ENV_SECRET, args);
    token_of(&r);
}
END_TEST

START_TEST(help_and_listing)
{
    run_res r;
    RUN(&r, ENV_NONE, "token", "--help");
    ck_assert_int_eq(r.status, 0);
    ck_assert(strncmp(r.out, "usage: tandem token --user U", 28) == 0);
    ck_assert_ptr_nonnull(strstr(r.out, "TANDEM_JWT_SECRET"));
    RUN(&r, ENV_NONE, "help", "token");
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "--es256-key PEM"));
    RUN(&r, ENV_NONE, "--help");
    ck_assert_int_eq(r.status, 0);
    const char *t = strstr(r.out, "\n  token ");
    ck_assert_ptr_nonnull(t);
    const char *later = strstr(r.out, "Not yet available");
    ck_assert(later == NULL || later > t);
    if (later) ck_assert_ptr_null(strstr(later, "token"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cli_token");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, hs256_from_env);
    tcase_add_test(tc, hs256_from_file_ttl_aud);
    tcase_add_test(tc, es256_key);
    tcase_add_test(tc, errors_and_usage);
    tcase_add_test(tc, help_and_listing);
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
