/* srv_room_events.c - sync_host.room_event for the per-room event streams
 * (GET /api/rooms/{id}/events, srv_sse.c): each chat record, awareness change
 * and typing change of a room that some stream watches becomes the JSON data
 * of one SSE event. Rooms nobody watches cost one check of a counter (or a
 * scan of the open streams when some room is watched); no JSON is built.
 *
 *   chat      {"id", "user", "name", "text", "ts", "client_id", "msg_id"}
 *   presence  {"client", "user", "name", "state", "left", ["reason"]}
 *   typing    {"user", "name", "typing", ["reason"]}
 *
 * A new stream first gets the room as it is (srv_room_snapshot): one
 * `presence` event per awareness entry present and one `typing` event per
 * user typing now, in the same forms.
 *
 * 64-bit client and message ids are decimal strings (JavaScript numbers hold
 * 53 bits). Awareness state bytes are embedded as JSON when they parse as
 * JSON, else as a string when they are UTF-8, else as "state_base64".
 * Service thread only. */
#include "srv_internal.h"
#include "srv_push.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* the largest event data; a chat record past it is sent without its text */
#define SRV_ROOM_DATA_MAX (SRV_SSE_OUT_MAX - 1024)

static json_t *jstr_c(const char *s)
{
    return srv_json_str(s ? s : "", s ? strlen(s) : 0);
}

static json_t *ju64(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    return json_string(b);
}

/* v (consumed) as compact one-line JSON, malloc'd; NULL when out of memory */
static char *dump(json_t *v)
{
    if (!v) return NULL;
    char *txt = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return txt;
}

char *srv_room_chat_json(const sync_chat_rec *rec)
{
    for (int with_text = 1; with_text >= 0; with_text--) {
        json_t *o =
            json_pack("{s:I, s:o, s:o, s:I, s:o, s:o}", "id", (json_int_t)rec->id, "user",
                      srv_json_str(rec->user, rec->user_len), "name",
                      srv_json_str(rec->display, rec->display_len), "ts", (json_int_t)rec->time_ms,
                      "client_id", ju64(rec->client_id), "msg_id", ju64(rec->msg_id));
        if (o &&
            json_object_set_new(o, with_text ? "text" : "text_omitted",
                                with_text ? srv_json_str(rec->text, rec->text_len) : json_true())) {
            json_decref(o);
            o = NULL;
        }
        char *txt = dump(o);
        if (!txt || strlen(txt) <= SRV_ROOM_DATA_MAX) return txt;
        free(txt); /* too long for one event (escapes): say so instead */
    }
    return NULL;
}

/* The awareness state bytes under "state" (or "state_base64") of o. */
static int set_state(json_t *o, const uint8_t *p, size_t n)
{
    if (!p || !n) return json_object_set_new(o, "state", json_null());
    json_t *v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (v) return json_object_set_new(o, "state", v);
    if (utf8_validate(p, n, NULL, NULL))
        return json_object_set_new(o, "state", json_stringn((const char *)p, n));
    size_t cap = 4 * (n / 3 + 1) + 1;
    char *b = malloc(cap);
    if (!b) return -1;
    int k = lws_b64_encode_string((const char *)p, (int)n, b, (int)cap);
    int bad = k < 0 || json_object_set_new(o, "state_base64", json_stringn(b, (size_t)k));
    free(b);
    return bad;
}

static const char *why_name(sync_room_event_why why)
{
    switch (why) {
    case SYNC_WHY_LEFT:
        return "left";
    case SYNC_WHY_EXPIRED:
        return "expired";
    default:
        return "client";
    }
}

static char *presence_json(const sync_room_event *ev)
{
    bool left = ev->kind == SYNC_ROOM_PRESENCE_LEFT;
    json_t *o = json_pack("{s:o, s:o, s:o, s:b}", "client", ju64(ev->client), "user",
                          jstr_c(ev->user), "name", jstr_c(ev->display), "left", left);
    if (!o) return NULL;
    int bad = left ? json_object_set_new(o, "reason", json_string(why_name(ev->why)))
                   : set_state(o, ev->state, ev->state_len);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

static char *typing_json(const sync_room_event *ev)
{
    json_t *o = json_pack("{s:o, s:o, s:b}", "user", jstr_c(ev->user), "name", jstr_c(ev->display),
                          "typing", ev->on);
    if (o && !ev->on && json_object_set_new(o, "reason", json_string(why_name(ev->why)))) {
        json_decref(o);
        return NULL;
    }
    return dump(o);
}

void srv_room_event(void *ctx, const char *name, const sync_room_event *ev)
{
    srv *s = ctx;
    if (ev->kind == SYNC_ROOM_CHAT) srv_push_chat(s, name, ev->chat); /* Web Push (srv_push.h) */
    if (!s->nroom_sse || !srv_sse_room_watched(s, name)) return;
    char *data = NULL;
    const char *event = NULL;
    uint64_t chat_id = 0;
    switch (ev->kind) {
    case SYNC_ROOM_CHAT:
        event = "chat";
        chat_id = ev->chat->id;
        data = srv_room_chat_json(ev->chat);
        break;
    case SYNC_ROOM_PRESENCE:
    case SYNC_ROOM_PRESENCE_LEFT:
        event = "presence";
        data = presence_json(ev);
        break;
    case SYNC_ROOM_TYPING:
        event = "typing";
        data = typing_json(ev);
        break;
    }
    if (!data) {
        /* a chat event still reaches its watchers: they read it from storage */
        if (chat_id) srv_sse_room_push(s, name, event, NULL, chat_id);
        return;
    }
    srv_sse_room_push(s, name, event, data, chat_id);
    free(data);
}

typedef struct snapshot_ctx {
    srv_room_emit emit;
    void *arg;
} snapshot_ctx;

static void snapshot_one(void *arg, const sync_room_event *ev)
{
    snapshot_ctx *x = arg;
    bool typing = ev->kind == SYNC_ROOM_TYPING;
    char *data = typing ? typing_json(ev) : presence_json(ev);
    if (!data) return; /* out of memory: this entry is left out */
    x->emit(x->arg, typing ? "typing" : "presence", data);
    free(data);
}

void srv_room_snapshot(srv *s, const char *name, srv_room_emit emit, void *arg)
{
    snapshot_ctx x = {emit, arg};
    (void)sync_server_room_presence(s->sync, name, snapshot_one, &x); /* not loaded: nobody */
}
