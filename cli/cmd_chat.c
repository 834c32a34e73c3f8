/* cmd_chat.c - history: the chat messages of a room (read-only). */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

typedef struct hist_ctx {
    bool json;
    json_t *arr;
    bool ok;
    size_t count;
} hist_ctx;

static json_t *msg_json(const store_chat_msg *m, bool *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    char tb[32];
    cli_json_set(o, "id", json_integer((json_int_t)m->id), ok);
    cli_json_set(o, "time_ms", json_integer(m->time_ms), ok);
    cli_json_set(o, "time", json_string(cli_time(m->time_ms, tb)), ok);
    cli_json_set(o, "user", cli_json_str(m->user, m->user_len), ok);
    cli_json_set(o, "display", cli_json_str(m->display, m->display_len), ok);
    cli_json_set(o, "cmid", cli_json_str(m->cmid, m->cmid_len), ok);
    cli_json_set(o, "text", cli_json_str(m->text, m->text_len), ok);
    return o;
}

static int hist_one(void *ctx, const store_chat_msg *m)
{
    hist_ctx *c = ctx;
    c->count++;
    if (c->json) {
        json_t *o = msg_json(m, &c->ok);
        if (!o || json_array_append_new(c->arr, o) != 0) c->ok = false;
        return !c->ok;
    }
    char tb[32];
    printf("#%" PRIu64 " %s ", m->id, cli_time(m->time_ms, tb));
    cli_print_escaped(stdout, m->user, m->user_len);
    if (m->display_len) {
        printf(" (");
        cli_print_escaped(stdout, m->display, m->display_len);
        putchar(')');
    }
    printf(": ");
    cli_print_escaped(stdout, m->text, m->text_len);
    putchar('\n');
    return 0;
}

static int run_history(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {
        {"after", "ID", false, NULL},
        {"limit", "N", false, NULL},
        {"json", NULL, false, NULL},
    };
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 3, 2, 2, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    uint64_t after = 0, limit = 0;
    if (opts[0].set && !cli_parse_u64(opts[0].value, &after))
        return cli_usage_error(cmd, "--after needs a message id (a number), got '%s'",
                               opts[0].value);
    if (opts[1].set && (!cli_parse_u64(opts[1].value, &limit) || limit > SIZE_MAX))
        return cli_usage_error(cmd, "--limit needs a count (a number), got '%s'", opts[1].value);
    const char *db = a.pos[0], *room = a.pos[1];
    if ((rc = cli_check_name(cmd, "room", room))) return rc;
    store *st;
    if ((rc = cli_open(cmd, db, true, false, &st))) return rc;
    hist_ctx c = {opts[2].set, NULL, true, 0};
    if (c.json && !(c.arr = json_array())) c.ok = false;
    tdm_err e = c.ok ? store_chat_range(st, room, strlen(room), after, (size_t)limit, hist_one, &c)
                     : TDM_ENOMEM;
    store_close(st);
    if (!e && !c.ok) e = TDM_ENOMEM;
    if (!e && c.json) {
        json_t *o = json_object();
        bool ok = o != NULL;
        if (o) {
            cli_json_set(o, "room", cli_json_str((const uint8_t *)room, strlen(room)), &ok);
            cli_json_set(o, "count", json_integer((json_int_t)c.count), &ok);
            cli_json_set(o, "messages", c.arr, &ok);
            c.arr = NULL;
        }
        e = ok ? cli_json_print(o) : TDM_ENOMEM;
        if (!ok) json_decref(o);
    }
    json_decref(c.arr);
    if (e == TDM_ENOTFOUND) {
        char nb[CLI_NAME_BUF];
        return cli_error(cmd, CLI_EXIT_NOTFOUND, "%s: no room '%s'", db,
                         cli_name((const uint8_t *)room, strlen(room), nb));
    }
    if (e) return cli_finish(cmd, cli_store_error(cmd, db, room, e));
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_history = {
    "history",
    "DB ROOM [--after ID] [--limit N] [--json]",
    "Print the chat messages of a room (a room is a document) in id order.",
    "\nOne line per message:  #ID TIME USER (DISPLAY): TEXT\n"
    "TIME is UTC; '(DISPLAY)' is left out when the display name is empty.\n"
    "Newlines, tabs, other control characters and bytes that are not UTF-8\n"
    "are escaped (\\n, \\t, \\xHH; a backslash as \\\\), so each message is one line.\n"
    "\nOptions:\n"
    "  --after ID   only messages with an id greater than ID\n"
    "  --limit N    at most N messages (0: no limit)\n"
    "  --json       print one JSON object {room, count, messages: [{id,\n"
    "               time_ms, time, user, display, cmid, text}]}; bytes that are\n"
    "               not UTF-8 become U+FFFD\n"
    "\nOpens the database read-only. Exit 3 when the room does not exist.\n",
    run_history,
};
