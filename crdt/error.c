#include "error.h"

static const struct {
    const char *name;
    const char *msg;
} err_table[TDM_ERR_COUNT_] = {
    [TDM_OK] = {"TDM_OK", "success"},
    [TDM_ENOMEM] = {"TDM_ENOMEM", "out of memory"},
    [TDM_EINVAL] = {"TDM_EINVAL", "invalid argument"},
    [TDM_ERANGE] = {"TDM_ERANGE", "position or length outside the text"},
    [TDM_EUTF8] = {"TDM_EUTF8", "text is not valid UTF-8"},
    [TDM_EMALFORMED] = {"TDM_EMALFORMED", "malformed encoded data"},
    [TDM_ETOOBIG] = {"TDM_ETOOBIG", "size or count limit exceeded"},
    [TDM_EPENDING_FULL] = {"TDM_EPENDING_FULL",
                           "too many updates waiting for missing dependencies"},
    [TDM_EVERSION] = {"TDM_EVERSION", "unsupported encoding version"},
    [TDM_ECONFLICT] = {"TDM_ECONFLICT", "data conflicts with the document"},
    [TDM_ENOTFOUND] = {"TDM_ENOTFOUND", "not found"},
    [TDM_EBASELEN] = {"TDM_EBASELEN", "operation base length does not match the text"},
    [TDM_EIO] = {"TDM_EIO", "storage I/O error"},
    [TDM_ECORRUPT] = {"TDM_ECORRUPT", "stored data is corrupt"},
    [TDM_EFULL] = {"TDM_EFULL", "storage is full (map size limit reached)"},
};

const char *tdm_strerror(tdm_err e)
{
    if ((unsigned)e >= TDM_ERR_COUNT_) return "unknown error";
    return err_table[e].msg;
}

const char *tdm_err_name(tdm_err e)
{
    if ((unsigned)e >= TDM_ERR_COUNT_) return "TDM_E?";
    return err_table[e].name;
}
