# Regression tests of the readers (lib/read) on dumps written by the
# library's own writer. The allocation functions are wrapped so that the
# oom test can make the n-th one fail (see the source).
add_executable(test_read_regressions ${CMAKE_CURRENT_LIST_DIR}/test_read_regressions.c)
target_link_libraries(test_read_regressions PRIVATE llorch-checkpoint ${CJSON_LIBRARY})
target_link_options(test_read_regressions PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)
llorch_target(test_read_regressions)
foreach(case architecture oom)
  add_test(NAME read_${case}
           COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/read-${case}' && '$<TARGET_FILE:test_read_regressions>' ${case} '${LLORCH_TEST_DATA}/read-${case}'")
endforeach()
