# libFuzzer targets for the dump readers and the comparison (read.c,
# compare.c, report.c, compiled into each target with the fuzzer's
# instrumentation). Built only with -DLLORCH_FUZZ=ON and clang;
# scripts/fuzz.sh configures, builds and runs them.
#
#   fuzz_npy        the .npy reader on arbitrary bytes
#   fuzz_manifest   the manifest reader on arbitrary bytes
#   fuzz_compare    two in-memory dumps compared and reported
#   fuzz_tolerance  --tol specs and presets
#   fuzz_container  the .npz and safetensors indexes on arbitrary bytes
#
# Each is also a CTest test (fuzz_*), bounded by LLORCH_FUZZ_RUNS and
# LLORCH_FUZZ_SECONDS, from the seeds in fuzz/corpus/.
if(NOT LLORCH_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "LLORCH_FUZZ=ON needs clang, not ${CMAKE_C_COMPILER_ID}: "
                      "configure with CC=clang (scripts/fuzz.sh does)")
endif()
find_path(LIBDEFLATE_INCLUDE_DIR libdeflate.h REQUIRED)
find_library(LIBDEFLATE_LIBRARY deflate REQUIRED)

set(LLORCH_FUZZ_RUNS 20000 CACHE STRING "Runs per target in the fuzz_* tests")
set(LLORCH_FUZZ_SECONDS 60 CACHE STRING "Time bound (s) per target in the fuzz_* tests")

set(_fuzz_src ${CMAKE_CURRENT_LIST_DIR})
set(_fuzz_flags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
set(_fuzz_work ${CMAKE_BINARY_DIR}/fuzz)

foreach(target npy manifest compare tolerance container)
  add_executable(fuzz_${target} ${_fuzz_src}/fuzz_${target}.c
                 ${PROJECT_SOURCE_DIR}/lib/read.c ${PROJECT_SOURCE_DIR}/lib/read_container.c
                 ${PROJECT_SOURCE_DIR}/lib/npy.c ${PROJECT_SOURCE_DIR}/lib/compare.c
                 ${PROJECT_SOURCE_DIR}/lib/report.c ${PROJECT_SOURCE_DIR}/lib/error.c
                 ${PROJECT_SOURCE_DIR}/lib/checksum.c)
  target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/lib
                             ${CJSON_INCLUDE_DIR}
                             ${LIBDEFLATE_INCLUDE_DIR})
  target_link_libraries(fuzz_${target} PRIVATE ${CJSON_LIBRARY} ${LIBDEFLATE_LIBRARY} m)
  llorch_target(fuzz_${target})
  target_compile_options(fuzz_${target} PRIVATE ${_fuzz_flags})
  target_link_options(fuzz_${target} PRIVATE ${_fuzz_flags})

  # New inputs go to the build tree, never into the seed corpus.
  file(MAKE_DIRECTORY ${_fuzz_work}/corpus/${target} ${_fuzz_work}/artifacts)
  set(_dict ${_fuzz_src}/${target}.dict)
  if(target STREQUAL "compare")
    set(_dict ${_fuzz_src}/manifest.dict)
  endif()
  add_test(NAME fuzz_${target}
           COMMAND fuzz_${target} -runs=${LLORCH_FUZZ_RUNS} -max_total_time=${LLORCH_FUZZ_SECONDS}
                   -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1
                   -dict=${_dict} -artifact_prefix=${_fuzz_work}/artifacts/${target}-
                   ${_fuzz_work}/corpus/${target} ${_fuzz_src}/corpus/${target})
  set_tests_properties(fuzz_${target} PROPERTIES TIMEOUT 600 LABELS fuzz)
endforeach()
