# The fuzz targets' seed corpus (fuzz/corpus/TARGET), replayed through each
# target with fuzz/replay_driver.c in this build: with gcc, and under the
# sanitizers in build-asan, not only when libFuzzer runs them.
foreach(target npy manifest compare tolerance container)
  add_executable(replay_${target} ${PROJECT_SOURCE_DIR}/fuzz/fuzz_${target}.c ${PROJECT_SOURCE_DIR}/fuzz/replay_driver.c)
  target_link_libraries(replay_${target} PRIVATE llorch_compare llorch_read llorch_common ${CJSON_LIBRARY}
                        ${LIBDEFLATE_LIBRARY} m)
  llorch_target(replay_${target})
  add_test(NAME fuzz_replay_${target} COMMAND replay_${target} ${PROJECT_SOURCE_DIR}/fuzz/corpus/${target})
endforeach()
