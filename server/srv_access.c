/* srv_access.c - STAND-IN for authorization until server/auth.h (JWT, room
 * ACLs) lands: --dev mode grants everything, any other mode grants nothing.
 * Production therefore refuses every subscription and every room API call
 * until real tokens are checked; nothing here is ever enabled implicitly.
 * Service thread only. */
#include "srv_internal.h"

#include <string.h>

tdm_err srv_access_ws(void *ctx, const sync_session *session, const uint8_t *token,
                      size_t token_len, const char *name, sync_auth *out)
{
    srv *s = ctx;
    (void)session, (void)token, (void)token_len, (void)name;
    if (!s->cfg.dev) {
        out->access = SYNC_ACCESS_NONE;
        return TDM_OK;
    }
    out->access = SYNC_ACCESS_WRITE;
    memcpy(out->user, "dev", 4);
    memcpy(out->display, "dev", 4);
    return TDM_OK;
}

bool srv_access_http(srv *s, struct lws *wsi, const char *room)
{
    (void)wsi, (void)room;
    return s->cfg.dev;
}
