/* push_crypto.h - the cryptography of Web Push (prefix push_), on OpenSSL 3:
 *   - base64url lives in b64url.h (included here: callers of this header use it);
 *   - VAPID keys (RFC 8292): a P-256 key pair, generated, saved as PEM
 *     (mode 0600) and loaded back; the public key as the 65-byte uncompressed
 *     point;
 *   - the VAPID JWT (ES256, raw r||s signature) and the Authorization header;
 *   - message encryption "aes128gcm" (RFC 8291 + RFC 8188): ECDH P-256 with
 *     an ephemeral key, HKDF-SHA256, AES-128-GCM, one record, padding
 *     delimiter 0x02.
 * docs/PUSH.md describes how the server uses these.
 *
 * Threads: every function may be called from any thread; a push_key may be
 * used by several threads at once for signing and reading (it is not
 * modified after creation).
 */
#ifndef TANDEM_PUSH_CRYPTO_H
#define TANDEM_PUSH_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "b64url.h"
#include "error.h"

#define PUSH_P256_PUB_LEN  65u /* uncompressed point 0x04 || X || Y */
#define PUSH_P256_PRIV_LEN 32u /* private scalar */
#define PUSH_AUTH_LEN      16u /* a subscription's auth secret */
#define PUSH_SALT_LEN      16u
#define PUSH_RECORD_SIZE   4096u /* the rs of the one record we send */
/* salt | rs | idlen | keyid (the sender's public key) */
#define PUSH_ECE_HEADER_LEN (PUSH_SALT_LEN + 4u + 1u + PUSH_P256_PUB_LEN)
/* header + the 0x02 delimiter + the GCM tag */
#define PUSH_ECE_OVERHEAD (PUSH_ECE_HEADER_LEN + 1u + 16u)
/* The largest plaintext that fits one 4096-byte record (3993 bytes). */
#define PUSH_PLAINTEXT_MAX (PUSH_RECORD_SIZE - 16u - 1u - PUSH_ECE_HEADER_LEN)
#define PUSH_JWT_MAX       1024u /* a VAPID JWT we produce, with its NUL */
#define PUSH_AUD_MAX       256u  /* the audience (endpoint origin) bytes */
#define PUSH_SUB_MAX       256u  /* the VAPID subject bytes */

/* push_p256_point_ok - is p[0..n) an uncompressed P-256 point on the curve
 * (65 bytes, 0x04 first, not the point at infinity)? */
bool push_p256_point_ok(const uint8_t *p, size_t n);

/* An EC P-256 key pair (the VAPID application server key). Opaque. */
typedef struct push_key push_key;

/* push_key_generate - a fresh random P-256 key pair. TDM_ENOMEM, TDM_EIO
 * (OpenSSL failure). The caller frees *out with push_key_free. */
tdm_err push_key_generate(push_key **out);
/* push_key_from_private - the key pair of private scalar d[32] (the public
 * point is derived). TDM_EMALFORMED when d is 0 or not below the order. */
tdm_err push_key_from_private(const uint8_t d[PUSH_P256_PRIV_LEN], push_key **out);
/* push_key_load - read a key file: PEM (PKCS#8 "PRIVATE KEY" or SEC1 "EC
 * PRIVATE KEY") of a P-256 key, or one line with the base64url private
 * scalar. TDM_ENOTFOUND (no such file), TDM_EIO (unreadable), TDM_ETOOBIG
 * (over 16 KiB), TDM_EMALFORMED (not a P-256 private key). */
tdm_err push_key_load(const char *path, push_key **out);
/* push_key_pem - the PKCS#8 PEM of the private key into out (NUL-terminated).
 * TDM_ETOOBIG when out[cap] is too small (512 bytes are enough). */
tdm_err push_key_pem(const push_key *k, char *out, size_t cap);
/* push_key_save - write the PEM to `path`, created with mode 0600 (an
 * existing file is refused with TDM_ECONFLICT unless `replace`, then it is
 * replaced atomically through a temporary file). TDM_EIO. */
tdm_err push_key_save(const push_key *k, const char *path, bool replace);
/* push_key_public - the public key as an uncompressed point. */
void push_key_public(const push_key *k, uint8_t out[PUSH_P256_PUB_LEN]);
/* push_key_private - the private scalar (32 bytes, left-padded). */
tdm_err push_key_private(const push_key *k, uint8_t out[PUSH_P256_PRIV_LEN]);
/* push_key_free - NULL is a no-op. */
void push_key_free(push_key *k);

/* push_origin - the origin ("scheme://host[:port]") of URL url[0..n) into
 * out (NUL-terminated): the VAPID audience. TDM_EMALFORMED when the URL has
 * no http/https scheme or no host; TDM_ETOOBIG past cap or PUSH_AUD_MAX. */
tdm_err push_origin(const char *url, size_t n, char *out, size_t cap);

/* push_vapid_jwt - the VAPID token {"typ":"JWT","alg":"ES256"} with claims
 * aud, exp (Unix seconds) and sub (NULL: none), signed with k (ES256, the
 * 64-byte r||s signature). out gets the NUL-terminated JWT. TDM_EINVAL (aud
 * or sub too long or with '"' or '\\'), TDM_ETOOBIG (cap), TDM_EIO. */
tdm_err push_vapid_jwt(const push_key *k, const char *aud, uint64_t exp_s, const char *sub,
                       char *out, size_t cap);

/* push_encrypt - encrypt plain[0..n) for the subscription (ua_pub, auth) as
 * one aes128gcm record (rs 4096) into out; *out_len gets the length
 * (n + PUSH_ECE_OVERHEAD). salt and sender are for test vectors: NULL means
 * a random salt and a fresh ephemeral key pair (what real sends must use).
 * Errors: TDM_ETOOBIG (n > PUSH_PLAINTEXT_MAX or cap too small),
 * TDM_EMALFORMED (ua_pub not a P-256 point), TDM_EIO, TDM_ENOMEM. */
tdm_err push_encrypt(const uint8_t ua_pub[PUSH_P256_PUB_LEN], const uint8_t auth[PUSH_AUTH_LEN],
                     const uint8_t *plain, size_t n, const uint8_t *salt, const push_key *sender,
                     uint8_t *out, size_t cap, size_t *out_len);

#endif
