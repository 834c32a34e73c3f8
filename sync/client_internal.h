/* client_internal.h - the objects of sync_client (private to client*.c). */
#ifndef TANDEM_SYNC_CLIENT_INTERNAL_H
#define TANDEM_SYNC_CLIENT_INTERNAL_H

#include "client.h"

/* an outbound frame, an unacked update, an unacked chat message */
typedef struct cl_item {
    struct cl_item *next;
    uint64_t id;  /* seq or msg_id */
    bool refused; /* refused for now (rate limit, busy, storage): resend at the next tick */
    size_t n;
    uint8_t data[];
} cl_item;

typedef struct cl_list {
    cl_item *head, *tail;
    size_t count, bytes;
} cl_list;

void cl_list_push(cl_list *l, cl_item *it);
/* remove the item with id; true when found */
bool cl_list_remove(cl_list *l, uint64_t id);
void cl_list_free(cl_list *l);
cl_item *cl_item_new(uint64_t id, const void *p, size_t n);

typedef struct cl_chan {
    uint32_t id;
    char name[SYNCM_MAX_NAME + 1];
    unsigned mode;
    bool chat_replay;
    bool subscribed; /* SUBSCRIBED received on this connection */
    bool synced;     /* first sync finished on this connection */
    unsigned access;
    /* chunked transfer being reassembled */
    tbuf xfer;
    uint64_t xfer_id;
    bool xfer_on;
    /* CRDT */
    crdt_doc *doc;
    crdt_sv *sent; /* operations the server has or we have sent it */
    cl_list unacked;
    uint64_t next_seq;
    /* OT */
    tbuf text;
    uint64_t version, target;
    bool has_version;
    ot_op *inflight, *buffer;
    uint64_t inflight_id, next_op_id;
    bool inflight_sent;
    /* chat */
    uint64_t chat_last;
    cl_list chats;
    uint64_t next_msg_id;
} cl_chan;

struct sync_client {
    sync_client_opts o;
    sync_client_events ev;
    uint8_t token[SYNCM_MAX_TOKEN];
    size_t token_len;
    bool connected;
    cl_list out;
    cl_chan **chans;
    size_t nchans;
    uint32_t next_chan;
    size_t unacked_bytes;
};

cl_chan *cl_chan_get(const sync_client *c, uint32_t id);
/* encode and queue (only when connected); TDM_ETOOBIG past max_out_bytes */
tdm_err cl_send(sync_client *c, const syncm *m);
void cl_error_event(sync_client *c, uint32_t channel, sync_errcode code, const char *text,
                    const ot_op *op);

/* client_crdt.c */
tdm_err cl_crdt_subscribed(sync_client *c, cl_chan *ch, const syncm *m);
tdm_err cl_crdt_apply(sync_client *c, cl_chan *ch, const uint8_t *p, size_t n);
tdm_err cl_crdt_ack(sync_client *c, cl_chan *ch, uint64_t seq);
void cl_crdt_refused(sync_client *c, cl_chan *ch, const syncm *m);
tdm_err cl_crdt_resend(sync_client *c, cl_chan *ch, bool only_refused);

/* client_ot.c */
tdm_err cl_ot_subscribed(sync_client *c, cl_chan *ch, const syncm *m);
tdm_err cl_ot_ack(sync_client *c, cl_chan *ch, const syncm *m);
tdm_err cl_ot_remote(sync_client *c, cl_chan *ch, const syncm *m);
tdm_err cl_ot_snapshot(sync_client *c, cl_chan *ch, uint64_t version);
void cl_ot_refused(sync_client *c, cl_chan *ch, const syncm *m);
void cl_ot_drop_local(sync_client *c, cl_chan *ch);
tdm_err cl_ot_send_inflight(sync_client *c, cl_chan *ch);
tdm_err cl_subscribe_frame(sync_client *c, cl_chan *ch);

/* client_chat.c */
tdm_err cl_chat_subscribed(sync_client *c, cl_chan *ch);
void cl_chat_msg(sync_client *c, cl_chan *ch, const syncm_chat *rec);
void cl_chat_ack(sync_client *c, cl_chan *ch, const syncm *m);
void cl_chat_reply(sync_client *c, cl_chan *ch, const syncm *m);
void cl_chat_refused(sync_client *c, cl_chan *ch, const syncm *m);

#endif
