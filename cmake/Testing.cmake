# imgpipe_add_test(<name> LABEL <label> [TIMEOUT <s>] [CORES <n>] [COST <s>] [BOOTS] SOURCES <files...>
#                  LIBS <targets...>)
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
#
# scripts/test.sh runs ctest with one job per core, so a wait on a mirror, a shaped link or a
# service overlaps another test's work. Three options say how a test shares the machine:
#   CORES <n>  the cores it keeps busy (ctest's PROCESSORS): 2 for a test that runs two TCG
#              guests at once, or that measures a link's rate (the delay emulator is a userspace
#              process, and a rate read while another test holds the CPU says little). A test
#              with CORES = the job count runs alone.
#   COST <s>   its seconds in the last CI run: ctest starts the longest first when it has no
#              timings of its own (a clean clone has none), so the run does not end on one long
#              test started last.
#   BOOTS      it boots a guest under TCG: such tests hold one lock (tcg_guest), so two of them
#              never run at once (a TCG guest keeps a core busy for its whole boot and its
#              checks run against deadlines; unlocked, a -j2 run here spent 2023 s in the boot
#              label against 903 s serial). The acceptance test's own two guests at a time are
#              why it takes CORES 2.
function(imgpipe_add_test name)
  cmake_parse_arguments(T "BOOTS" "LABEL;TIMEOUT;CORES;COST" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  imgpipe_warnings(${name})
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT T_CORES)
    set(T_CORES 1)
  endif()
  if(NOT T_COST)
    set(T_COST 1)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABEL}" TIMEOUT ${T_TIMEOUT}
    PROCESSORS ${T_CORES} COST ${T_COST}
    ENVIRONMENT "IMGPIPE_BUILD_DIR=${PROJECT_BINARY_DIR};IMGPIPE_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  if(T_BOOTS)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK tcg_guest)
  endif()
endfunction()
