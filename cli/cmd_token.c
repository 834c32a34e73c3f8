/* cmd_token.c - token: mint an access token (a JWT, server/auth.h) for the
 * sync server and print it. HS256 with the secret from --secret-file or the
 * TANDEM_JWT_SECRET environment variable, or ES256 with a private key PEM. */
#include "cli.h"
#include "auth.h"

#include <string.h>
#include <time.h>

extern const cli_cmd cli_cmd_token;

#define TOKEN_TTL_DEFAULT 3600u

typedef struct token_args {
    const char *user, *name, *ttl, *secret_file, *es256_key, *aud;
    const char *rooms[SRV_AUTH_RULES_MAX];
    size_t nrooms;
} token_args;

/* Options with a value; --rooms may repeat, the others may not. Returns 0,
 * CLI_HELP_SHOWN or CLI_EXIT_USAGE. */
static int parse(const cli_cmd *cmd, int argc, char **argv, token_args *t)
{
    static const char *const names[] = {"user",      "name", "ttl",  "secret-file",
                                        "es256-key", "aud",  "rooms"};
    const size_t nnames = sizeof names / sizeof names[0];
    const char **slots[] = {&t->user, &t->name, &t->ttl, &t->secret_file, &t->es256_key, &t->aud};
    memset(t, 0, sizeof *t);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(cmd, stdout);
            return CLI_HELP_SHOWN;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return cli_usage_error(cmd, "unexpected argument '%s'", a);
        const char *nm = a + 2, *eq = strchr(nm, '=');
        size_t n = eq ? (size_t)(eq - nm) : strlen(nm);
        size_t k = 0;
        while (k < nnames && !(strlen(names[k]) == n && memcmp(names[k], nm, n) == 0)) k++;
        if (k == nnames) return cli_usage_error(cmd, "unknown option '--%.*s'", (int)n, nm);
        const char *v;
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return cli_usage_error(cmd, "option '--%s' needs a value", names[k]);
        if (k == nnames - 1) { /* --rooms */
            if (t->nrooms == SRV_AUTH_RULES_MAX)
                return cli_usage_error(cmd, "at most %u --rooms entries", SRV_AUTH_RULES_MAX);
            t->rooms[t->nrooms++] = v;
            continue;
        }
        if (*slots[k]) return cli_usage_error(cmd, "option '--%s' given twice", names[k]);
        *slots[k] = v;
    }
    return 0;
}

static int run_token(const cli_cmd *cmd, int argc, char **argv)
{
    token_args t;
    int rc = parse(cmd, argc, argv, &t);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    if (!t.user) return cli_usage_error(cmd, "--user is required");
    if (t.nrooms == 0) return cli_usage_error(cmd, "at least one --rooms PATTERN:PERM is required");
    size_t ul = strlen(t.user);
    if (ul == 0 || ul > SRV_AUTH_USER_MAX)
        return cli_usage_error(cmd, "--user needs 1 to %u bytes", SRV_AUTH_USER_MAX);
    if (t.name && strlen(t.name) > SRV_AUTH_USER_MAX)
        return cli_usage_error(cmd, "--name takes at most %u bytes", SRV_AUTH_USER_MAX);
    for (size_t i = 0; i < t.nrooms; i++) {
        size_t pl;
        srv_auth_perm p;
        if (srv_auth_parse_rule(t.rooms[i], strlen(t.rooms[i]), &pl, &p) != TDM_OK)
            return cli_usage_error(cmd,
                                   "--rooms needs PATTERN:rw, PATTERN:r or PATTERN:none "
                                   "(a pattern of 1 to %u bytes), got '%s'",
                                   SRV_AUTH_PATTERN_MAX, t.rooms[i]);
    }
    uint64_t ttl = TOKEN_TTL_DEFAULT;
    if (t.ttl && (!cli_parse_u64(t.ttl, &ttl) || ttl == 0 || ttl > SRV_AUTH_TTL_MAX))
        return cli_usage_error(cmd, "--ttl needs seconds from 1 to %u, got '%s'", SRV_AUTH_TTL_MAX,
                               t.ttl);
    if (t.aud && (t.aud[0] == '\0' || strlen(t.aud) > SRV_AUTH_AUD_MAX))
        return cli_usage_error(cmd, "--aud needs 1 to %u bytes", SRV_AUTH_AUD_MAX);
    if (t.secret_file && t.es256_key)
        return cli_usage_error(cmd, "--secret-file and --es256-key exclude each other");

    srv_auth_config cfg = {.audience = t.aud};
    const char *src;
    if (t.es256_key) {
        cfg.alg = SRV_AUTH_ES256;
        cfg.private_key_file = t.es256_key;
        src = t.es256_key;
    } else if (t.secret_file) {
        cfg.alg = SRV_AUTH_HS256;
        cfg.secret_file = t.secret_file;
        src = t.secret_file;
    } else {
        if (!getenv(SRV_AUTH_SECRET_ENV))
            return cli_usage_error(cmd,
                                   "no key: give --secret-file FILE or --es256-key PEM, or set "
                                   "%s",
                                   SRV_AUTH_SECRET_ENV);
        cfg.alg = SRV_AUTH_HS256;
        cfg.secret_env = SRV_AUTH_SECRET_ENV;
        src = SRV_AUTH_SECRET_ENV;
    }
    srv_auth *a = NULL;
    tdm_err e = srv_auth_new(&cfg, &a);
    if (e == TDM_EINVAL && cfg.alg == SRV_AUTH_HS256)
        return cli_error(cmd, CLI_EXIT_ERROR, "%s: the secret must be %u to %u bytes", src,
                         SRV_AUTH_SECRET_MIN, SRV_AUTH_SECRET_MAX);
    if (e == TDM_EINVAL)
        return cli_error(cmd, CLI_EXIT_ERROR, "%s: not an EC P-256 private key", src);
    if (e == TDM_EMALFORMED)
        return cli_error(cmd, cli_exit_for(e), "%s: not a PEM private key (or encrypted)", src);
    if (e == TDM_ENOTFOUND) return cli_error(cmd, cli_exit_for(e), "%s: no such file", src);
    if (e != TDM_OK)
        return cli_error(cmd, cli_exit_for(e), "%s: %s (%s)", src, tdm_strerror(e),
                         tdm_err_name(e));

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    char tok[SRV_AUTH_TOKEN_MAX + 1];
    e = srv_auth_mint(a, t.user, t.name, t.rooms, t.nrooms, ttl, now_ms, tok, sizeof tok, NULL);
    srv_auth_free(a);
    if (e == TDM_EINVAL) return cli_usage_error(cmd, "--user and --name must be UTF-8 text");
    if (e != TDM_OK)
        return cli_error(cmd, cli_exit_for(e), "cannot make the token: %s (%s)", tdm_strerror(e),
                         tdm_err_name(e));
    puts(tok);
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_token = {
    "token",
    "--user U [--name N] --rooms PATTERN:PERM [--rooms ...] [--ttl SECONDS] [--aud AUD]\n"
    "       [--secret-file FILE | --es256-key PEM]",
    "Issue an access token (a signed JWT) for the sync server.",
    "\nPrints a signed JWT bearer token on standard output. Claims: sub (--user),\n"
    "name (--name), rooms (every --rooms entry, in order), iat, nbf, exp (now +\n"
    "--ttl, default 3600 seconds, at most 366 days) and aud (--aud).\n\n"
    "Options:\n"
    "  --user U            user id (1 to 255 bytes; rate limits and chat use it)\n"
    "  --name N            display name (default: the user id)\n"
    "  --rooms PATTERN:PERM  documents the token opens; PERM is rw, r or none;\n"
    "                      '*' matches any run of characters, '?' one character,\n"
    "                      '\\' quotes the next one; the last matching entry wins;\n"
    "                      repeat for more entries (at most 64)\n"
    "  --ttl SECONDS       lifetime [3600]\n"
    "  --aud AUD           audience, when the server checks one\n"
    "  --secret-file FILE  HS256 with the secret in FILE (32 bytes or more; one\n"
    "                      trailing newline is ignored)\n"
    "  --es256-key PEM     ES256 with the EC P-256 private key in file PEM\n"
    "Without either, the HS256 secret comes from the environment variable\n"
    "TANDEM_JWT_SECRET.\n",
    run_token,
};
