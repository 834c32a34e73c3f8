/* utf8.c - being written */
typedef int tandem_utf8_placeholder_;
