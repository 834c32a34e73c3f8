# server/redis.cmake - included by server/CMakeLists.txt: several nodes
# through Redis (srv_redis.c, docs/SCALING.md) on hiredis (Debian
# libhiredis-dev). Active only when `tandem serve --redis URL` is given.
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
target_sources(tandem_server PRIVATE ${CMAKE_CURRENT_LIST_DIR}/srv_redis.c)
target_link_libraries(tandem_server PUBLIC PkgConfig::HIREDIS)
