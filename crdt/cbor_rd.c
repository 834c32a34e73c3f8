/* cbor_rd.c - being written */
typedef int tandem_cbor_rd_placeholder_;
