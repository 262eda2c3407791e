# `cpack -G DEB` in the build dir makes imgpipe_<version>_amd64.deb; the Ansible playbook installs
# it on every host. Run-time dependencies are the Debian packages the binaries link against plus
# the tools the agents drive.
include(GNUInstallDirs)
install(DIRECTORY deploy/systemd/ DESTINATION lib/systemd/system FILES_MATCHING PATTERN "*.service")
install(DIRECTORY deploy/config/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/config)
install(DIRECTORY deploy/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/definitions OPTIONAL)

set(CPACK_PACKAGE_NAME imgpipe)
set(CPACK_PACKAGE_CONTACT "imgpipe maintainers <imgpipe@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Build VM images and deliver them through relays into OpenStack Glance")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The tools the agents drive: deploy/runtime-packages.txt, the list install-deps.sh installs.
file(STRINGS ${PROJECT_SOURCE_DIR}/deploy/runtime-packages.txt _imgpipe_runtime_lines)
set(_imgpipe_runtime_pkgs "")
foreach(_line IN LISTS _imgpipe_runtime_lines)
  string(REGEX REPLACE "#.*" "" _line "${_line}")
  string(REGEX MATCHALL "[^ \t]+" _names "${_line}")
  list(APPEND _imgpipe_runtime_pkgs ${_names})
endforeach()
list(JOIN _imgpipe_runtime_pkgs ", " CPACK_DEBIAN_PACKAGE_DEPENDS)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
