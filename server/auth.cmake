# server/auth.cmake - included by server/CMakeLists.txt. tandem_auth: JWT
# bearer tokens (auth.c, libjwt + OpenSSL + jansson) and per-user / per-IP
# rate limits (ratelimit.c). A library of its own so the server, the CLI
# (`tandem token`) and the tests can link it (docs/AUTH.md).
pkg_check_modules(LIBJWT REQUIRED IMPORTED_TARGET libjwt)
find_package(OpenSSL 3 REQUIRED)
# base64url (b64url.c): tokens here, Web Push keys and JWTs in push.cmake.
add_library(tandem_b64url STATIC ${CMAKE_CURRENT_LIST_DIR}/b64url.c)
target_include_directories(tandem_b64url PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tandem_b64url PUBLIC tandem_crdt)
add_library(tandem_auth STATIC
  ${CMAKE_CURRENT_LIST_DIR}/auth.c
  ${CMAKE_CURRENT_LIST_DIR}/ratelimit.c
)
target_include_directories(tandem_auth PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(tandem_auth PUBLIC tandem_crdt
  PRIVATE tandem_b64url PkgConfig::LIBJWT OpenSSL::Crypto PkgConfig::JANSSON)
