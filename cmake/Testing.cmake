# imgpipe_add_test(<name> LABEL <label> [TIMEOUT <s>] SOURCES <files...> LIBS <targets...>)
#
# Labels split tests by cost, so the fast ones can be run alone while iterating:
#   unit      pure code, milliseconds, no root
#   control   real daemons on loopback (seconds)
#   build     real images: mounts, loop devices, chroot, apt (minutes)
#   boot      the acceptance boot: the quickstart image under QEMU (BIOS, UEFI) and nspawn, one
#             broken variant per in-guest check (minutes, TCG)
#   transfer  real network namespaces with rate-limited links
#   glance    a real glance-api (and Keystone) on loopback
#   deploy    the Ansible playbook (syntax check, check mode against localhost)
#   e2e       the whole pipeline
#   fuzz      bounded libFuzzer runs
function(imgpipe_add_test name)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  imgpipe_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "IMGPIPE_BUILD_DIR=${PROJECT_BINARY_DIR};IMGPIPE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
