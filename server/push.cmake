# server/push.cmake - included by server/CMakeLists.txt. tandem_push: the
# Web Push cryptography (push_crypto.c: base64url, VAPID keys and JWT,
# aes128gcm per RFC 8291) on OpenSSL 3, a library of its own so the server,
# the CLI (`tandem vapid-keys`) and tests/test_push_crypto can link it
# (docs/PUSH.md).
find_package(OpenSSL 3 REQUIRED)
add_library(tandem_push STATIC ${CMAKE_CURRENT_LIST_DIR}/push_crypto.c)
target_include_directories(tandem_push PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tandem_push PUBLIC tandem_crdt tandem_b64url OpenSSL::Crypto)

# The server side (srv_push*.c, in tandem_server): endpoints, the worker
# thread and libcurl delivery.
find_package(CURL REQUIRED)
target_sources(tandem_server PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/srv_push.c
  ${CMAKE_CURRENT_LIST_DIR}/srv_push_worker.c)
target_link_libraries(tandem_server PUBLIC tandem_push CURL::libcurl)
