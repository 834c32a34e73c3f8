/* srv_inbox.c - finished storage jobs handed from the storage writer thread
 * to the lws service thread: a fixed ring under a mutex, plus
 * lws_cancel_service to wake the service loop (the only lws call that is
 * allowed from another thread) when a push finds the ring empty. */
#include "srv_internal.h"

#include <stdlib.h>

tdm_err srv_inbox_init(srv_inbox *in, size_t cap)
{
    in->ring = calloc(cap ? cap : 1, sizeof *in->ring);
    if (!in->ring) return TDM_ENOMEM;
    if (pthread_mutex_init(&in->mu, NULL) != 0) {
        free(in->ring);
        in->ring = NULL;
        return TDM_ENOMEM;
    }
    in->cap = cap ? cap : 1;
    in->head = in->len = in->lost = 0;
    in->ctx = NULL;
    return TDM_OK;
}

void srv_inbox_fini(srv_inbox *in)
{
    if (!in->ring) return;
    pthread_mutex_destroy(&in->mu);
    free(in->ring);
    in->ring = NULL;
}

void srv_inbox_push(srv_inbox *in, const srv_done *d)
{
    pthread_mutex_lock(&in->mu);
    bool was_empty = in->len == 0;
    if (in->len < in->cap) {
        in->ring[(in->head + in->len) % in->cap] = *d;
        in->len++;
    } else {
        in->lost++;
    }
    struct lws_context *ctx = in->ctx;
    pthread_mutex_unlock(&in->mu);
    /* One wake-up per batch: the service thread takes until the ring is
     * empty (srv_host_drain), so a push onto a non-empty ring is covered by
     * the wake-up already pending for the first. (One per push was a pipe
     * write and a service-loop wake-up per update.) */
    if (ctx && was_empty) lws_cancel_service(ctx);
}

size_t srv_inbox_take(srv_inbox *in, srv_done *out, size_t max)
{
    pthread_mutex_lock(&in->mu);
    size_t n = in->len < max ? in->len : max;
    for (size_t i = 0; i < n; i++) out[i] = in->ring[(in->head + i) % in->cap];
    in->head = (in->head + n) % in->cap;
    in->len -= n;
    pthread_mutex_unlock(&in->mu);
    return n;
}
