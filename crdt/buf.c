/* buf.c - being written */
typedef int tandem_buf_placeholder_;
