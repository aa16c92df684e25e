# The format library on its own (no llama.cpp): names, selections, writer.
add_executable(test_format ${CMAKE_CURRENT_LIST_DIR}/test_format.c)
target_link_libraries(test_format PRIVATE llorch-checkpoint)
llorch_target(test_format)
add_test(NAME format_writer
         COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/format' && '$<TARGET_FILE:test_format>' '${LLORCH_TEST_DATA}/format' && '${LLORCH_PYTHON}' '${CMAKE_CURRENT_LIST_DIR}/format_checks.py' '${LLORCH_TEST_DATA}/format'")

# The .npz writer's zip64 records, with lowered thresholds (see the source).
add_executable(test_npz_zip64 ${CMAKE_CURRENT_LIST_DIR}/test_npz_zip64.c)
# its own copy of write_npz.c (lowered thresholds), the rest from the parts
target_link_libraries(test_npz_zip64 PRIVATE llorch_read llorch_common ${CJSON_LIBRARY} ${LIBDEFLATE_LIBRARY})
llorch_target(test_npz_zip64)
add_test(NAME format_npz_zip64
         COMMAND bash -c "'$<TARGET_FILE:test_npz_zip64>' '${LLORCH_TEST_DATA}/zip64.npz' && '${LLORCH_PYTHON}' '${CMAKE_CURRENT_LIST_DIR}/npz_zip64_check.py' '${LLORCH_TEST_DATA}/zip64.npz'")

# The writer's error reporting and its fsyncs, seen through wrapped calls.
add_executable(test_write_regressions ${CMAKE_CURRENT_LIST_DIR}/test_write_regressions.c)
target_link_libraries(test_write_regressions PRIVATE llorch-checkpoint)
target_link_options(test_write_regressions PRIVATE -Wl,--wrap=fwrite,--wrap=fsync,--wrap=rename)
llorch_target(test_write_regressions)
add_test(NAME format_write_regressions
         COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/write-regressions' && mkdir -p '${LLORCH_TEST_DATA}/write-regressions' && '$<TARGET_FILE:test_write_regressions>' '${LLORCH_TEST_DATA}/write-regressions' && '${LLORCH_PYTHON}' '${CMAKE_CURRENT_LIST_DIR}/dump_checks.py' same '${LLORCH_TEST_DATA}/write-regressions/collide' '${LLORCH_TEST_DATA}/write-regressions/collide' && '$<TARGET_FILE:llorch-checkpoint-compare>' -q --preset exact '${LLORCH_TEST_DATA}/write-regressions/collide' '${LLORCH_TEST_DATA}/write-regressions/collide'")
