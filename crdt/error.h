/* error.h - the one error enum of tandem and its message table.
 *
 * Every fallible function in every layer returns a tdm_err; results go through
 * out-parameters. Codes from other libraries (errno, LMDB, lws, OpenSSL, libcbor)
 * are mapped to these at the module boundary, once.
 *
 * Thread safety: everything here is pure and may be called from any thread.
 */
#ifndef TANDEM_ERROR_H
#define TANDEM_ERROR_H

typedef enum tdm_err {
    TDM_OK = 0,
    TDM_ENOMEM,        /* allocation failed */
    TDM_EINVAL,        /* invalid argument (caller bug or out-of-range value) */
    TDM_ERANGE,        /* position or length outside the text */
    TDM_EUTF8,         /* text is not valid UTF-8 */
    TDM_EMALFORMED,    /* untrusted bytes failed validation */
    TDM_ETOOBIG,       /* a hard size or count limit would be exceeded */
    TDM_EPENDING_FULL, /* too many updates held waiting for their dependencies */
    TDM_EVERSION,      /* encoded data has a format version we cannot read */
    TDM_ECONFLICT,     /* data contradicts what the document already holds */
    TDM_ENOTFOUND,     /* the named object does not exist */
    TDM_EBASELEN,      /* an operation's base length does not match its text or operation */
    TDM_EIO,           /* storage I/O error (LMDB or file system) */
    TDM_ECORRUPT,      /* stored data failed validation (checksum, format, decoding) */
    TDM_EFULL,         /* storage is full: the database map cannot grow further */
    TDM_ERR_COUNT_     /* number of codes; not an error */
} tdm_err;

/* tdm_strerror - a static, human-readable message for `e`. Unknown values give
 * "unknown error". Never returns NULL. */
const char *tdm_strerror(tdm_err e);

/* tdm_err_name - the symbolic name of `e` ("TDM_EUTF8"), for logs and tests. */
const char *tdm_err_name(tdm_err e);

#endif
