/* fuzz_store_jrnl.c - libFuzzer harness for the storage journal's record
 * decoder (storage/store_jrnl.c), the one reader of journal bytes from a file
 * that may be damaged.
 *
 * Byte 0 of the input chooses the mode, the rest is a journal value (key 1):
 * even, fed as it is; odd, with its frame CRC recomputed first (so the fuzzer
 * gets past the checksum to the field checks).
 * Invariants:
 *   - store__jrnl_decode returns TDM_OK or TDM_ECORRUPT, and reads nothing
 *     outside the value (ASan);
 *   - on TDM_OK, encoding the decoded record gives back exactly the value
 *     (there is one form of each record), the update and OT payload lie
 *     inside it, and an OT payload passes store__ot_payload.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "store_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) return 0;
    size_t n = size - 1;
    uint8_t *val = malloc(n ? n : 1);
    if (!val) return 0;
    if (n) memcpy(val, data + 1, n);
    if ((data[0] & 1) && n >= STORE_FRAME_HDR)
        store__frame_hdr(val, val[0], val + STORE_FRAME_HDR, n - STORE_FRAME_HDR);
    uint8_t kb[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    MDB_val k = {8, kb}, v = {n, val};
    store__jrec r;
    tdm_err e = store__jrnl_decode(&k, &v, &r);
    if (e != TDM_OK && e != TDM_ECORRUPT) fz_fail(__FILE__, __LINE__, "decode", tdm_err_name(e));
    if (e == TDM_OK) {
        FZ_CHECK(r.jseq == 1);
        FZ_CHECK(r.upd || r.ot);
        FZ_CHECK(!r.upd || (r.upd >= val && r.upd + r.upd_n <= val + n));
        FZ_CHECK(!r.ot || (r.ot >= val && r.ot + r.ot_n <= val + n));
        store_ot_rec rec;
        if (r.ot) FZ_OK(store__ot_payload(r.ot_tag, r.ot, r.ot_n, &rec));
        FZ_CHECK(store__jrnl_size(&r) == n);
        uint8_t *back = malloc(n);
        FZ_CHECK(back != NULL);
        store__jrnl_encode(&r, back);
        FZ_CHECK(memcmp(back, val, n) == 0); /* encode(decode(v)) == v */
        free(back);
    }
    free(val);
    return 0;
}
