/* outq.c - refcounted encoded frames and the singly linked frame queues of
 * sessions and channels. */
#include "sync_internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

tdm_err sync__blob(const syncm *m, sync_blob **out)
{
    tbuf b;
    tbuf_init(&b, SYNCM_MAX_FRAME);
    tdm_err e = syncm_encode(m, &b);
    if (e) {
        tbuf_fini(&b);
        return e;
    }
    sync_blob *x = malloc(sizeof *x + b.len);
    if (!x) {
        tbuf_fini(&b);
        return TDM_ENOMEM;
    }
    x->refs = 1;
    x->n = b.len;
    memcpy(x->data, b.data, b.len);
    tbuf_fini(&b);
    *out = x;
    return TDM_OK;
}

void sync__blob_unref(sync_blob *b)
{
    if (b && --b->refs == 0) free(b);
}

void sync__fq_push(sync_fq *q, sync_node *n)
{
    n->next = NULL;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
}

sync_node *sync__fq_pop(sync_fq *q)
{
    sync_node *n = q->head;
    if (!n) return NULL;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    q->count--;
    n->next = NULL;
    return n;
}

void sync__fq_free(sync_fq *q)
{
    sync_node *n;
    while ((n = sync__fq_pop(q))) {
        sync__blob_unref(n->blob);
        free(n);
    }
}
