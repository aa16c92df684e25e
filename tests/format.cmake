# The format library on its own (no llama.cpp): names, selections, writer.
add_executable(test_format ${CMAKE_CURRENT_LIST_DIR}/test_format.c)
target_link_libraries(test_format PRIVATE llorch-checkpoint)
llorch_target(test_format)
add_test(NAME format_writer
         COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/format' && '$<TARGET_FILE:test_format>' '${LLORCH_TEST_DATA}/format' && /usr/bin/python3 '${CMAKE_CURRENT_LIST_DIR}/format_checks.py' '${LLORCH_TEST_DATA}/format'")
