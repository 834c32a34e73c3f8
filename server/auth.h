/* auth.h - JWT bearer tokens for the sync server (prefix srv_auth_).
 *
 * A token is a JWS compact serialization (HEADER.PAYLOAD.SIGNATURE) signed
 * with exactly one configured algorithm:
 *   HS256  an HMAC secret of at least SRV_AUTH_SECRET_MIN bytes, read from a
 *          file, from an environment variable, or given in memory;
 *   ES256  a P-256 public key in PEM for verifying (and, for minting, the
 *          private key in PEM; the public key is derived from it when only the
 *          private key is configured).
 * Signatures are checked by libjwt 1.10.2; everything libjwt 1.10 does not do
 * is done here (/work/shared/docs/dependency-notes.md): the header's "alg" must
 * equal the configured algorithm (checked before and after libjwt, so an
 * HS256 token "signed" with the ES256 public key PEM, or "alg":"none", is
 * refused as SRV_AUTH_WRONG_ALG); libjwt never sees a NULL key; exp, nbf, iat
 * and aud are validated against a caller-supplied clock. The encoding is also
 * checked strictly before libjwt sees anything: three base64url parts without
 * padding, canonical (unused bits zero, so a signature cannot be altered in
 * its last character and still verify), a signature of the algorithm's exact
 * length, a header and payload that are JSON objects without duplicate keys,
 * at most SRV_AUTH_TOKEN_MAX bytes in all.
 *
 * Claims (docs/AUTH.md):
 *   sub    user id, a string of 1..SRV_AUTH_USER_MAX bytes (required)
 *   name   display name, 0..SRV_AUTH_USER_MAX bytes (optional; default: sub)
 *   rooms  array of at most SRV_AUTH_RULES_MAX strings "PATTERN:rw",
 *          "PATTERN:r" or "PATTERN:none" (optional; missing: no access)
 *   exp    expiry, NumericDate seconds (required unless allow_no_exp)
 *   nbf    not before (optional)
 *   iat    issued at (optional; not in the future beyond the leeway, not
 *          after exp)
 *   aud    a string or an array of strings; when an audience is configured
 *          one of them must equal it (a token without aud is then refused)
 * Times must be integers in [0, 2^40] (anything else: SRV_AUTH_BAD_CLAIMS).
 *
 * Room patterns are globs over the whole document name, compared byte for
 * byte: '*' matches any run of bytes (also empty, also '/'), '?' matches
 * exactly one UTF-8 character, '\' makes the next character literal. The
 * split between pattern and permission is at the LAST ':' of an entry, so
 * patterns may contain ':'. Precedence: the LAST entry whose pattern matches
 * decides (like .gitignore). The entries  *:r  then  team/?*:rw  then
 * team/secret:none  give read everywhere, write on every document under
 * team/, and nothing on team/secret. No matching entry gives none.
 *
 * Errors: tdm_err (crdt/error.h). srv_auth_verify refuses every bad token
 * with TDM_EMALFORMED (TDM_ETOOBIG when over SRV_AUTH_TOKEN_MAX) and names
 * the reason in claims->reason (srv_auth_reason_str for logs and for the
 * ERROR frame's text).
 *
 * Threads: this runs on the server's service thread. srv_auth_new reads
 * files and the environment (getenv is not safe against a concurrent setenv)
 * and srv_auth_free must not race any other call on the handle. Between them
 * the handle is read-only: srv_auth_verify, srv_auth_mint and the pure
 * helpers (srv_auth_access, srv_auth_glob, srv_auth_bearer_from_header,
 * srv_auth_token_from_query, srv_auth_reason_str) take no locks, touch no
 * globals and may be called from several threads at once (OpenSSL 3 and
 * jansson are thread-safe for separate objects).
 */
#ifndef TANDEM_SRV_AUTH_H
#define TANDEM_SRV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define SRV_AUTH_TOKEN_MAX   8192u                /* bytes of a compact token, at most */
#define SRV_AUTH_SECRET_MIN  32u                  /* HS256 secret bytes, at least (256 bits) */
#define SRV_AUTH_SECRET_MAX  4096u                /* HS256 secret bytes, at most */
#define SRV_AUTH_PEM_MAX     16384u               /* bytes of a PEM key file, at most */
#define SRV_AUTH_USER_MAX    255u                 /* sub and name bytes (= SYNCM_MAX_USER) */
#define SRV_AUTH_AUD_MAX     255u                 /* configured audience bytes */
#define SRV_AUTH_RULES_MAX   64u                  /* entries of the rooms claim */
#define SRV_AUTH_PATTERN_MAX 255u                 /* bytes of one pattern (= SYNCM_MAX_NAME) */
#define SRV_AUTH_POOL_MAX    2048u                /* bytes of all patterns of one token together */
#define SRV_AUTH_LEEWAY_DEF  30u                  /* default clock leeway, seconds */
#define SRV_AUTH_LEEWAY_MAX  600u                 /* largest leeway accepted */
#define SRV_AUTH_TTL_MAX     (366u * 24u * 3600u) /* longest lifetime srv_auth_mint issues */

/* The environment variable `tandem token` and `tandem serve` read the HS256
 * secret from (when no secret file is given). */
#define SRV_AUTH_SECRET_ENV "TANDEM_JWT_SECRET"

typedef struct srv_auth srv_auth;

typedef enum srv_auth_alg {
    SRV_AUTH_HS256 = 1,
    SRV_AUTH_ES256 = 2,
} srv_auth_alg;

/* Access to one document. Values equal SYNC_ACCESS_NONE / READ / WRITE
 * (sync/msg.h), so they can be stored in sync_auth.access as they are. */
typedef enum srv_auth_perm {
    SRV_AUTH_NONE = 0,
    SRV_AUTH_READ = 1,
    SRV_AUTH_WRITE = 2,
} srv_auth_perm;

/* Why srv_auth_verify refused a token. */
typedef enum srv_auth_reason {
    SRV_AUTH_OK = 0,
    SRV_AUTH_MISSING,        /* no token (empty) */
    SRV_AUTH_TOO_BIG,        /* over SRV_AUTH_TOKEN_MAX bytes */
    SRV_AUTH_MALFORMED,      /* not three canonical base64url parts of JSON objects */
    SRV_AUTH_WRONG_ALG,      /* header alg is not the configured one (incl. "none") */
    SRV_AUTH_BAD_SIGNATURE,  /* the signature does not verify */
    SRV_AUTH_EXPIRED,        /* now >= exp + leeway */
    SRV_AUTH_NOT_YET_VALID,  /* now + leeway < nbf */
    SRV_AUTH_ISSUED_FUTURE,  /* now + leeway < iat, or iat > exp */
    SRV_AUTH_WRONG_AUDIENCE, /* aud missing or not the configured audience */
    SRV_AUTH_BAD_CLAIMS,     /* sub/name/rooms/exp/nbf/iat missing or of a bad type or size */
    SRV_AUTH_REASON_COUNT_
} srv_auth_reason;

/* Configuration for srv_auth_new. Strings are NUL-terminated and only read
 * during srv_auth_new. For HS256 exactly one of secret, secret_file and
 * secret_env is set; a secret read from a file or the environment loses one
 * trailing "\n" or "\r\n". For ES256 public_key_pem/public_key_file (verify)
 * and/or private_key_pem/private_key_file (mint, and verify with the derived
 * public key); at most one of each pair. */
typedef struct srv_auth_config {
    srv_auth_alg alg;
    const uint8_t *secret; /* HS256 secret bytes (dev mode, tests) */
    size_t secret_len;
    const char *secret_file;      /* HS256: file holding the secret */
    const char *secret_env;       /* HS256: name of an environment variable holding it */
    const char *public_key_pem;   /* ES256: "-----BEGIN PUBLIC KEY-----..." */
    const char *public_key_file;  /* ES256: file holding it */
    const char *private_key_pem;  /* ES256: "-----BEGIN PRIVATE KEY-----" or EC PRIVATE KEY */
    const char *private_key_file; /* ES256: file holding it */
    const char *audience;         /* NULL: aud not checked (nor minted) */
    uint32_t leeway_s;            /* clock skew allowed on exp/nbf/iat [SRV_AUTH_LEEWAY_DEF] */
    bool leeway_zero;             /* use a leeway of 0 (leeway_s 0 means the default) */
    bool allow_no_exp;            /* accept tokens without exp (never in production) */
} srv_auth_config;

/* One entry of the rooms claim; the pattern is claims->pool[off, off + len). */
typedef struct srv_auth_rule {
    uint16_t off, len;
    uint8_t access; /* srv_auth_perm */
} srv_auth_rule;

/* What a verified token says. About 3 KiB, caller-owned, no pointers:
 * it may be copied, kept per session or rebuilt by verifying again. */
typedef struct srv_auth_claims {
    srv_auth_reason reason;           /* SRV_AUTH_OK after success, else why not */
    char user[SRV_AUTH_USER_MAX + 1]; /* sub, NUL-terminated (may hold no NUL inside) */
    char name[SRV_AUTH_USER_MAX + 1]; /* name (or sub), NUL-terminated */
    int64_t exp, nbf, iat;            /* seconds; 0 when absent */
    size_t nrules;
    srv_auth_rule rules[SRV_AUTH_RULES_MAX];
    char pool[SRV_AUTH_POOL_MAX];
} srv_auth_claims;

/* srv_auth_new - build a verifier/minter from `cfg` (copied; keys are loaded
 * and checked now: HS256 secret length in [SRV_AUTH_SECRET_MIN,
 * SRV_AUTH_SECRET_MAX]; ES256 keys must be P-256 and a configured private key
 * must match a configured public key). Errors: TDM_EINVAL (bad or missing
 * configuration, short secret, wrong key type), TDM_ENOTFOUND (file missing,
 * environment variable unset), TDM_EIO (file unreadable), TDM_ETOOBIG (file
 * over SRV_AUTH_PEM_MAX / secret over SRV_AUTH_SECRET_MAX), TDM_EMALFORMED
 * (PEM does not parse), TDM_ENOMEM. *out is NULL on failure. Service thread,
 * at start-up. */
tdm_err srv_auth_new(const srv_auth_config *cfg, srv_auth **out);

/* srv_auth_free - wipe the secret and free everything. NULL is a no-op. */
void srv_auth_free(srv_auth *a);

/* srv_auth_alg_of - the configured algorithm. */
srv_auth_alg srv_auth_alg_of(const srv_auth *a);

/* srv_auth_can_mint - true when srv_auth_mint works (HS256, or ES256 with a
 * private key). */
bool srv_auth_can_mint(const srv_auth *a);

/* srv_auth_verify - check token p[0..n) (untrusted bytes, not necessarily
 * NUL-terminated) at Unix time now_ms (milliseconds) and fill *out (always
 * written; out->reason says why on failure, and the other fields are then
 * zeroed). Returns TDM_OK, TDM_EMALFORMED (refused: see out->reason),
 * TDM_ETOOBIG (over SRV_AUTH_TOKEN_MAX; reason TOO_BIG), TDM_ENOMEM,
 * TDM_EINVAL (NULL a or out). Does not allocate in proportion to anything
 * but the token, which is capped. Thread: see the header comment. */
tdm_err srv_auth_verify(const srv_auth *a, const uint8_t *p, size_t n, uint64_t now_ms,
                        srv_auth_claims *out);

/* srv_auth_access - what verified `claims` allow on document `doc` (doc_len
 * bytes): the access of the last rule whose pattern matches, SRV_AUTH_NONE
 * when none does (and for NULL claims). Pure. */
srv_auth_perm srv_auth_access(const srv_auth_claims *claims, const char *doc, size_t doc_len);

/* srv_auth_glob - does pattern pat[0..pn) match name[0..nn) as described in
 * the header comment? Pure; O(pn * nn) at worst, no recursion. */
bool srv_auth_glob(const char *pat, size_t pn, const char *name, size_t nn);

/* srv_auth_parse_rule - parse one rooms entry "PATTERN:rw|r|none" of n bytes:
 * *pat_len gets the pattern length (the pattern is s[0..*pat_len)), *access
 * the permission. TDM_EMALFORMED when there is no ':', the pattern is empty
 * or over SRV_AUTH_PATTERN_MAX, or the permission is not rw, r or none. */
tdm_err srv_auth_parse_rule(const char *s, size_t n, size_t *pat_len, srv_auth_perm *access);

/* srv_auth_mint - issue a token for `user` (display `name`, NULL: none) with
 * the rooms entries rooms[0..nrooms) (each checked with
 * srv_auth_parse_rule), valid from now_ms for ttl_s seconds (1..
 * SRV_AUTH_TTL_MAX); claims sub, name, rooms, iat, nbf (= iat), exp, and
 * aud when an audience is configured. The token is written to out[0..cap)
 * NUL-terminated, its length (without the NUL) to *out_len (may be NULL).
 * Errors: TDM_EINVAL (bad user/name/ttl/rule count, or no private key for
 * ES256), TDM_EMALFORMED (a bad rooms entry), TDM_ETOOBIG (the token does
 * not fit in cap or exceeds SRV_AUTH_TOKEN_MAX), TDM_ENOMEM. For tooling and
 * the development mode. */
tdm_err srv_auth_mint(const srv_auth *a, const char *user, const char *name,
                      const char *const *rooms, size_t nrooms, uint64_t ttl_s, uint64_t now_ms,
                      char *out, size_t cap, size_t *out_len);

/* srv_auth_reason_str - a static message for `r` ("token expired", ...). */
const char *srv_auth_reason_str(srv_auth_reason r);

/* srv_auth_bearer_from_header - the token of an HTTP Authorization header
 * value v[0..n): "Bearer" (any case), one or more spaces or tabs, a token68
 * (A-Z a-z 0-9 - . _ ~ + / then '=' padding only at the end), optional
 * trailing spaces/tabs. *tok points into v (borrowed), *tok_len its length.
 * Errors: TDM_ENOTFOUND (empty, or another scheme such as Basic),
 * TDM_EMALFORMED (no token, bad characters, junk after it), TDM_ETOOBIG
 * (token over SRV_AUTH_TOKEN_MAX, or n over SRV_AUTH_TOKEN_MAX + 64). Pure. */
tdm_err srv_auth_bearer_from_header(const char *v, size_t n, const char **tok, size_t *tok_len);

/* srv_auth_token_from_query - the value of parameter "token" in URL query
 * q[0..n) (with or without the leading '?'; parameters separated by '&'),
 * percent-decoded into out[0..cap) and NUL-terminated (cap should be
 * SRV_AUTH_TOKEN_MAX + 1). The decoded value may hold only base64url
 * characters and '.'. Errors: TDM_ENOTFOUND (no token parameter),
 * TDM_EMALFORMED (empty value, a bad %XX escape, a character a JWT cannot
 * hold, "token" given twice), TDM_ETOOBIG (value over SRV_AUTH_TOKEN_MAX or
 * cap - 1, or n over 4 * SRV_AUTH_TOKEN_MAX). Pure. */
tdm_err srv_auth_token_from_query(const char *q, size_t n, char *out, size_t cap, size_t *out_len);

#endif
