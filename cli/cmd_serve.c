/* cmd_serve.c - serve: run the sync server (server/srv.h) in the foreground
 * until SIGTERM or SIGINT. Options override the environment (TANDEM_HOST,
 * TANDEM_PORT, TANDEM_DATA, TANDEM_DEV, TANDEM_WEB), which overrides the
 * defaults. Development mode is only ever on when asked for. */
#include "cli.h"
#include "srv.h"

#include <stdlib.h>
#include <string.h>

/* "1", "true", "yes", "on" -> 1; "0", "false", "no", "off", "" -> 0; else -1. */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcmp(v, yes[i]) == 0) return 1;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcmp(v, no[i]) == 0) return 0;
    return -1;
}

static const char *pick(const cli_opt *o, const char *env, const char *def)
{
    if (o->set) return o->value;
    const char *v = getenv(env);
    return v ? v : def;
}

static int run_serve(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {
        {"host", "ADDR", false, NULL},      {"port", "N", false, NULL},
        {"data", "DIR", false, NULL},       {"dev", NULL, false, NULL},
        {"web", "DIR", false, NULL},        {"secret-file", "FILE", false, NULL},
        {"es256-key", "FILE", false, NULL}, {"aud", "AUDIENCE", false, NULL},
        {"redis", "URL", false, NULL},
    };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], 0, 0, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    srv_config cfg;
    srv_config_init(&cfg);
    cfg.host = pick(&opts[0], "TANDEM_HOST", cfg.host);
    cfg.data_dir = pick(&opts[2], "TANDEM_DATA", cfg.data_dir);
    cfg.web_root = pick(&opts[4], "TANDEM_WEB", cfg.web_root);
    if (opts[5].set) cfg.secret_file = opts[5].value;
    if (opts[6].set) cfg.es256_key_file = opts[6].value;
    if (opts[7].set) cfg.audience = opts[7].value;
    cfg.redis_url = pick(&opts[8], "TANDEM_REDIS_URL", NULL);
    if (cfg.redis_url && !cfg.redis_url[0]) cfg.redis_url = NULL;
    const char *port = pick(&opts[1], "TANDEM_PORT", NULL);
    uint64_t p;
    if (port && (!cli_parse_u64(port, &p) || p == 0 || p > 65535))
        return cli_usage_error(cmd, "the port must be a number from 1 to 65535, got '%s'", port);
    if (port) cfg.port = (uint16_t)p;
    if (opts[3].set) {
        cfg.dev = true;
    } else if (getenv("TANDEM_DEV")) {
        int b = parse_bool(getenv("TANDEM_DEV"));
        if (b < 0)
            return cli_usage_error(cmd,
                                   "TANDEM_DEV must be 1/true/yes/on or 0/false/no/off, got '%s'",
                                   getenv("TANDEM_DEV"));
        cfg.dev = b == 1;
    }
    if (!cfg.host[0]) return cli_usage_error(cmd, "%s", "the host must not be empty");
    if (!cfg.data_dir[0]) return cli_usage_error(cmd, "%s", "the data directory must not be empty");
    tdm_err e = srv_run(&cfg);
    if (e == TDM_EINVAL) return CLI_EXIT_USAGE; /* srv_run said why */
    return e ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

const cli_cmd cli_cmd_serve = {
    "serve",
    "[--host ADDR] [--port N] [--data DIR] [--dev] [--web DIR] [--secret-file FILE | "
    "--es256-key FILE] [--aud AUDIENCE] [--redis URL]",
    "Run the sync server (WebSocket + HTTP on one port) until SIGTERM/SIGINT.",
    "\nServes the sync protocol over WebSocket (subprotocol " SRV_SUBPROTOCOL "), the HTTP\n"
    "API (/healthz, /api/rooms, ...) and static files on one port. docs/SERVER.md\n"
    "has the details.\n"
    "\nOptions (each overrides its environment variable):\n"
    "  --host ADDR  listen address (TANDEM_HOST; default 127.0.0.1)\n"
    "  --port N     listen port (TANDEM_PORT; default 8080)\n"
    "  --data DIR   database directory, created when missing (TANDEM_DATA;\n"
    "               default ./data)\n"
    "  --dev        development mode: every client may read and write every room\n"
    "               without a token (TANDEM_DEV=1). Never use it in production;\n"
    "               it is never on unless asked for.\n"
    "  --web DIR    static files (TANDEM_WEB; default: the built demo page,\n"
    "               server/web/demo/dist of the source, else server/web)\n"
    "  --secret-file FILE  HS256 token secret (else the TANDEM_JWT_SECRET variable)\n"
    "  --es256-key FILE    ES256 public key (PEM) to verify tokens with instead\n"
    "  --aud AUDIENCE      tokens must carry this audience\n"
    "  --redis URL         several nodes: relay rooms through this Redis server,\n"
    "                      redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (TANDEM_REDIS_URL;\n"
    "                      the password may be in TANDEM_REDIS_PASSWORD; docs/SCALING.md)\n"
    "\nClients present tokens (tandem token) in HELLO, an Authorization: Bearer\n"
    "header or ?token=. Without --dev one of the token options is required.\n"
    "Limits and timers without options come from the environment (docs/SERVER.md):\n"
    "TANDEM_CONNECT_RATE, TANDEM_CONNECT_LOOPBACK, TANDEM_ROOM_IDLE_MS,\n"
    "TANDEM_HELLO_TIMEOUT_MS, TANDEM_AWARENESS_TIMEOUT_MS, TANDEM_CLOSE_GRACE_MS.\n"
    "SIGTERM or SIGINT: stop accepting, flush pending commits, close every\n"
    "connection with 1001 (going away) and exit 0. Exit 1 when the database\n"
    "cannot be opened or the address cannot be bound.\n",
    run_serve,
};
