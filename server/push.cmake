# server/push.cmake - included by server/CMakeLists.txt. tandem_push: the
# Web Push cryptography (push_crypto.c: base64url, VAPID keys and JWT,
# aes128gcm per RFC 8291) on OpenSSL 3, a library of its own so the server,
# the CLI (`tandem vapid-keys`) and tests/test_push_crypto can link it
# (docs/PUSH.md).
find_package(OpenSSL 3 REQUIRED)
add_library(tandem_push STATIC ${CMAKE_CURRENT_LIST_DIR}/push_crypto.c)
target_include_directories(tandem_push PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tandem_push PUBLIC tandem_crdt OpenSSL::Crypto)
