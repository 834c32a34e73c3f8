/* cmd_vapid.c - vapid-keys: generate the P-256 VAPID key pair of Web Push
 * (server/push_crypto.h, docs/PUSH.md). By default the private key is
 * written as PEM to DATA/vapid.pem (mode 0600; an existing file is kept
 * unless --force), where `tandem serve` loads it; --out FILE writes it
 * elsewhere (point TANDEM_VAPID_KEY_FILE at it); --print writes no file and
 * prints the PEM for a configuration store. The public key (base64url
 * uncompressed point, what browsers pass to pushManager.subscribe as
 * applicationServerKey) is printed on stdout either way. --show prints the
 * public key of the existing key file without generating. */
#include "cli.h"
#include "push_crypto.h"

#include <stdio.h>
#include <string.h>

extern const cli_cmd cli_cmd_vapid_keys;

static int print_public(const push_key *k)
{
    uint8_t pub[PUSH_P256_PUB_LEN];
    char b64[100];
    push_key_public(k, pub);
    b64url_encode(pub, sizeof pub, b64, sizeof b64);
    printf("public_key: %s\n", b64);
    return CLI_EXIT_OK;
}

static int run_vapid(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt o[] = {{"data", "DIR", false, NULL},
                   {"out", "FILE", false, NULL},
                   {"print", NULL, false, NULL},
                   {"force", NULL, false, NULL},
                   {"show", NULL, false, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, o, sizeof o / sizeof o[0], 0, 0, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    bool print = o[2].set, force = o[3].set, show = o[4].set;
    if (print && (o[1].set || o[0].set || force || show))
        return cli_usage_error(cmd, "--print writes no file: it takes no --data, --out, --force "
                                    "or --show");
    if (o[0].set && o[1].set) return cli_usage_error(cmd, "give --data or --out, not both");
    char path[4096];
    if (o[1].set) {
        snprintf(path, sizeof path, "%s", o[1].value);
    } else if (snprintf(path, sizeof path, "%s/vapid.pem", o[0].set ? o[0].value : "./data") >=
               (int)sizeof path) {
        return cli_usage_error(cmd, "the directory name is too long");
    }
    push_key *k = NULL;
    tdm_err e;
    if (show) {
        e = push_key_load(path, &k);
        if (e) {
            fprintf(stderr, "tandem vapid-keys: %s: %s\n", path, tdm_strerror(e));
            return e == TDM_ENOTFOUND ? CLI_EXIT_NOTFOUND : CLI_EXIT_ERROR;
        }
        print_public(k);
        push_key_free(k);
        return CLI_EXIT_OK;
    }
    e = push_key_generate(&k);
    if (e) {
        fprintf(stderr, "tandem vapid-keys: generating a key failed: %s\n", tdm_strerror(e));
        return CLI_EXIT_ERROR;
    }
    if (print) {
        char pem[1024];
        e = push_key_pem(k, pem, sizeof pem);
        if (!e) fputs(pem, stdout);
    } else {
        e = push_key_save(k, path, force);
        if (e == TDM_ECONFLICT) {
            fprintf(stderr,
                    "tandem vapid-keys: %s exists (keep it, or replace it with --force: "
                    "existing subscriptions then stop working)\n",
                    path);
            push_key_free(k);
            return CLI_EXIT_EXISTS;
        }
        if (!e) fprintf(stderr, "tandem vapid-keys: wrote %s (mode 0600)\n", path);
    }
    if (e) {
        fprintf(stderr, "tandem vapid-keys: %s: %s\n", print ? "printing" : path, tdm_strerror(e));
        push_key_free(k);
        return CLI_EXIT_ERROR;
    }
    print_public(k);
    push_key_free(k);
    return CLI_EXIT_OK;
}

const cli_cmd cli_cmd_vapid_keys = {
    "vapid-keys",
    "[--data DIR | --out FILE | --print] [--force] [--show]",
    "generate the VAPID key pair for Web Push",
    "Generates a P-256 key pair (VAPID, RFC 8292) for Web Push notifications and\n"
    "prints its public key (base64url, for applicationServerKey).\n"
    "  --data DIR   write the private key to DIR/vapid.pem (default ./data), where\n"
    "               `tandem serve --data DIR` loads it\n"
    "  --out FILE   write it to FILE instead (serve: TANDEM_VAPID_KEY_FILE=FILE)\n"
    "  --print      write no file: print the private key PEM on stdout\n"
    "  --force      replace an existing key file (subscriptions made with the old\n"
    "               key stop working)\n"
    "  --show       print the public key of the existing key file\n"
    "Files are created with mode 0600. Exit 5 when the file exists.\n",
    run_vapid,
};
