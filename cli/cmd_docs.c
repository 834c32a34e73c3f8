/* cmd_docs.c - the read-only document commands: ls, inspect, cat. Each opens
 * the database read-only (MDB_RDONLY through store_opts.read_only). */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

#include "doc.h"
#include "ids.h"

/* ---- ls ------------------------------------------------------------------- */

typedef struct ls_ctx {
    bool json;
    json_t *arr;
    bool ok;
} ls_ctx;

static json_t *meta_json(const uint8_t *name, size_t name_len, const store_doc_meta *m, bool *ok)
{
    json_t *o = json_object();
    if (!o) {
        *ok = false;
        return NULL;
    }
    cli_json_set(o, "name", cli_json_str(name, name_len), ok);
    cli_json_set(o, "id", json_integer((json_int_t)m->id), ok);
    cli_json_set(o, "created_ms", json_integer(m->created_ms), ok);
    cli_json_set(o, "updated_ms", json_integer(m->updated_ms), ok);
    cli_json_set(o, "updates", json_integer((json_int_t)m->updates), ok);
    cli_json_set(o, "log_bytes", json_integer((json_int_t)m->log_bytes), ok);
    cli_json_set(o, "snapshot_bytes", json_integer((json_int_t)m->snapshot_bytes), ok);
    cli_json_set(o, "next_seq", json_integer((json_int_t)m->next_seq), ok);
    cli_json_set(o, "compactions", json_integer((json_int_t)m->compactions), ok);
    cli_json_set(o, "chat_count", json_integer((json_int_t)m->chat_count), ok);
    return o;
}

static int ls_one(void *ctx, const uint8_t *name, size_t name_len, const store_doc_meta *m)
{
    ls_ctx *c = ctx;
    if (c->json) {
        json_t *o = meta_json(name, name_len, m, &c->ok);
        if (!o || json_array_append_new(c->arr, o) != 0) c->ok = false;
        return !c->ok;
    }
    char tb[32];
    printf("%10" PRIu64 " %12" PRIu64 " %12" PRIu64 " %8" PRIu64 "  %-24s  ", m->updates,
           m->log_bytes, m->snapshot_bytes, m->chat_count, cli_time(m->updated_ms, tb));
    cli_print_escaped(stdout, name, name_len);
    putchar('\n');
    return 0;
}

static int run_ls(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {{"json", NULL, false, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 1, 1, 1, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    store *st;
    if ((rc = cli_open(cmd, a.pos[0], true, false, &st))) return rc;
    ls_ctx c = {opts[0].set, NULL, true};
    if (c.json && !(c.arr = json_array())) c.ok = false;
    if (!c.json)
        printf("%10s %12s %12s %8s  %-24s  %s\n", "UPDATES", "LOG_BYTES", "SNAP_BYTES", "CHAT",
               "UPDATED", "NAME");
    tdm_err e = c.ok ? store_list_docs(st, ls_one, &c, NULL) : TDM_ENOMEM;
    if (!e && !c.ok) e = TDM_ENOMEM;
    if (!e && c.json) e = cli_json_print(c.arr), c.arr = NULL;
    json_decref(c.arr);
    store_close(st);
    if (e) return cli_finish(cmd, cli_store_error(cmd, a.pos[0], NULL, e));
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_ls = {
    "ls",
    "DB [--json]",
    "List the documents of a database with their sizes and update counts.",
    "\nOne line per document, in name byte order, under a header:\n"
    "  UPDATES     log entries not yet merged into the snapshot\n"
    "  LOG_BYTES   bytes of those entries\n"
    "  SNAP_BYTES  bytes of the snapshot (0: none)\n"
    "  CHAT        chat messages held\n"
    "  UPDATED     last change of log or snapshot (UTC)\n"
    "  NAME        the document name; bytes that are not printable UTF-8 appear\n"
    "              as \\xHH, a backslash as \\\\\n"
    "\nOptions:\n"
    "  --json      print a JSON array of objects instead (name, id, created_ms,\n"
    "              updated_ms, updates, log_bytes, snapshot_bytes, next_seq,\n"
    "              compactions, chat_count)\n"
    "\nOpens the database read-only.\n",
    run_ls,
};

/* ---- loading one document --------------------------------------------------- */

/* Open DB read-only and load document `name`; on failure prints and returns the status. */
static int load_doc(const cli_cmd *cmd, const char *db, const char *name, store **st,
                    crdt_doc **doc, store_doc_meta *meta)
{
    int rc = cli_check_name(cmd, "document", name);
    if (rc) return rc;
    if ((rc = cli_open(cmd, db, true, false, st))) return rc;
    tdm_err e = store_doc_load(*st, name, strlen(name), NULL, doc, meta);
    if (e) {
        store_close(*st);
        *st = NULL;
        return cli_store_error(cmd, db, name, e);
    }
    return CLI_EXIT_OK;
}

/* ---- inspect ----------------------------------------------------------------- */

typedef struct doc_facts {
    crdt_sv *sv;
    uint64_t deleted;
    size_t cps, utf16, bytes, pending;
} doc_facts;

static tdm_err facts_get(crdt_doc *doc, doc_facts *f)
{
    memset(f, 0, sizeof *f);
    f->sv = crdt_sv_new();
    crdt_ds *ds = crdt_ds_new();
    tdm_err e = f->sv && ds ? TDM_OK : TDM_ENOMEM;
    if (!e) e = crdt_doc_state_vector(doc, f->sv);
    if (!e) e = crdt_doc_delete_set(doc, ds);
    if (!e) f->deleted = crdt_ds_ids(ds);
    crdt_ds_free(ds);
    f->cps = crdt_doc_len(doc);
    f->utf16 = crdt_doc_len_utf16(doc);
    f->bytes = crdt_doc_len_bytes(doc);
    f->pending = crdt_doc_pending(doc);
    return e;
}

static tdm_err inspect_json(const char *name, const store_doc_meta *m, const doc_facts *f)
{
    bool ok = true;
    json_t *o = meta_json((const uint8_t *)name, strlen(name), m, &ok);
    if (!o) return TDM_ENOMEM;
    size_t n = crdt_sv_count(f->sv);
    json_t *sv = json_object(), *text = json_object(), *ot = json_object();
    for (size_t i = 0; sv && i < n; i++) {
        uint64_t client;
        uint32_t clock;
        char key[24];
        crdt_sv_entry(f->sv, i, &client, &clock);
        snprintf(key, sizeof key, "%" PRIu64, client);
        cli_json_set(sv, key, json_integer(clock), &ok);
    }
    cli_json_set(o, "clients", json_integer((json_int_t)n), &ok);
    cli_json_set(o, "state_vector", sv, &ok);
    if (text) {
        cli_json_set(text, "code_points", json_integer((json_int_t)f->cps), &ok);
        cli_json_set(text, "utf16", json_integer((json_int_t)f->utf16), &ok);
        cli_json_set(text, "bytes", json_integer((json_int_t)f->bytes), &ok);
    }
    cli_json_set(o, "text_length", text, &ok);
    cli_json_set(o, "deleted", json_integer((json_int_t)f->deleted), &ok);
    cli_json_set(o, "pending", json_integer((json_int_t)f->pending), &ok);
    cli_json_set(o, "chat_next_id", json_integer((json_int_t)m->chat_next_id), &ok);
    if (ot) {
        cli_json_set(ot, "first", json_integer((json_int_t)m->ot_first), &ok);
        cli_json_set(ot, "next", json_integer((json_int_t)m->ot_next), &ok);
    }
    cli_json_set(o, "ot_versions", ot, &ok);
    if (!ok) {
        json_decref(o);
        return TDM_ENOMEM;
    }
    return cli_json_print(o);
}

static void inspect_text(const char *name, const store_doc_meta *m, const doc_facts *f)
{
    char tb[32];
    printf("name:           ");
    cli_print_escaped(stdout, (const uint8_t *)name, strlen(name));
    printf("\nid:             %" PRIu64 "\n", m->id);
    printf("created:        %s\n", cli_time(m->created_ms, tb));
    printf("updated:        %s\n", cli_time(m->updated_ms, tb));
    printf("updates:        %" PRIu64 " (%" PRIu64 " bytes; next sequence %" PRIu64 ")\n",
           m->updates, m->log_bytes, m->next_seq);
    printf("snapshot:       %" PRIu64 " bytes (%" PRIu64 " compactions)\n", m->snapshot_bytes,
           m->compactions);
    size_t n = crdt_sv_count(f->sv);
    printf("clients:        %zu\n", n);
    printf("state vector:  ");
    if (n == 0) printf(" (empty)");
    for (size_t i = 0; i < n; i++) {
        uint64_t client;
        uint32_t clock;
        crdt_sv_entry(f->sv, i, &client, &clock);
        printf(" %" PRIu64 ":%" PRIu32, client, clock);
    }
    printf("\ntext length:    %zu code points, %zu UTF-16 units, %zu bytes\n", f->cps, f->utf16,
           f->bytes);
    printf("deleted:        %" PRIu64 " characters\n", f->deleted);
    printf("pending:        %zu operations\n", f->pending);
    printf("chat:           %" PRIu64 " messages (next id %" PRIu64 ")\n", m->chat_count,
           m->chat_next_id);
    printf("ot versions:    %" PRIu64 " held [%" PRIu64 ", %" PRIu64 ")\n",
           m->ot_next - m->ot_first, m->ot_first, m->ot_next);
}

static int run_inspect(const cli_cmd *cmd, int argc, char **argv)
{
    cli_opt opts[] = {{"json", NULL, false, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, 1, 2, 2, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    store *st;
    crdt_doc *doc;
    store_doc_meta m;
    if ((rc = load_doc(cmd, a.pos[0], a.pos[1], &st, &doc, &m))) return rc;
    doc_facts f;
    tdm_err e = facts_get(doc, &f);
    if (!e && opts[0].set)
        e = inspect_json(a.pos[1], &m, &f);
    else if (!e)
        inspect_text(a.pos[1], &m, &f);
    crdt_sv_free(f.sv);
    crdt_doc_free(doc);
    store_close(st);
    if (e) return cli_finish(cmd, cli_store_error(cmd, a.pos[0], a.pos[1], e));
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_inspect = {
    "inspect",
    "DB DOC [--json]",
    "Show one document: log, snapshot, clients, state vector, text length, chat.",
    "\nLoads the document (snapshot plus log) and prints its metadata and what\n"
    "the replay gives: updates in the log and their bytes, snapshot bytes,\n"
    "clients and the state vector (client:clock), the text length in code\n"
    "points, UTF-16 code units and UTF-8 bytes, deleted characters, operations\n"
    "left pending, chat messages and OT versions held.\n"
    "\nOptions:\n"
    "  --json   print one JSON object: the fields of 'ls --json' plus clients,\n"
    "           state_vector ({\"client\": clock}), text_length {code_points,\n"
    "           utf16, bytes}, deleted, pending, chat_next_id, ot_versions\n"
    "           {first, next}\n"
    "\nOpens the database read-only. Exit 3 for an unknown document, 4 when it\n"
    "does not load (corrupt).\n",
    run_inspect,
};

/* ---- cat ------------------------------------------------------------------- */

static int run_cat(const cli_cmd *cmd, int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, NULL, 0, 2, 2, &a);
    if (rc) return rc == CLI_HELP_SHOWN ? CLI_EXIT_OK : rc;
    store *st;
    crdt_doc *doc;
    if ((rc = load_doc(cmd, a.pos[0], a.pos[1], &st, &doc, NULL))) return rc;
    store_close(st);
    tbuf text;
    tbuf_init(&text, 0);
    tdm_err e = crdt_doc_text(doc, &text);
    size_t pending = crdt_doc_pending(doc);
    crdt_doc_free(doc);
    if (!e && text.len) fwrite(text.data, 1, text.len, stdout);
    tbuf_fini(&text);
    if (e) return cli_store_error(cmd, a.pos[0], a.pos[1], e);
    if (pending)
        cli_error(cmd, 0, "warning: %zu pending operation%s (missing dependencies) not shown",
                  pending, pending == 1 ? "" : "s");
    return cli_finish(cmd, CLI_EXIT_OK);
}

const cli_cmd cli_cmd_cat = {
    "cat",
    "DB DOC",
    "Write the text of a document to standard output.",
    "\nThe text is written exactly as stored (UTF-8), with no newline added.\n"
    "Operations still pending (waiting for missing dependencies) are not part\n"
    "of the text; a warning on stderr says how many there are.\n"
    "\nOpens the database read-only. Exit 3 for an unknown document, 4 when it\n"
    "does not load (corrupt).\n",
    run_cat,
};
