# Every dependency comes from a Debian 12 package (scripts/install-deps.sh installs them).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(CapnProto REQUIRED)
find_package(cppzmq REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(CURL REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(GTest REQUIRED)
find_package(prometheus-cpp REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)

# librsync ships neither a CMake config nor a pkg-config file on Debian 12.
find_path(LIBRSYNC_INCLUDE_DIR librsync.h REQUIRED)
find_library(LIBRSYNC_LIBRARY rsync REQUIRED)
add_library(librsync::librsync UNKNOWN IMPORTED)
set_target_properties(librsync::librsync PROPERTIES IMPORTED_LOCATION ${LIBRSYNC_LIBRARY}
                                                    INTERFACE_INCLUDE_DIRECTORIES ${LIBRSYNC_INCLUDE_DIR})
