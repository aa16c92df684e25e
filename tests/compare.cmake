# Tests of the readers and llorch-checkpoint-compare (docs/COMPARE.md).
# The dumps are written by numpy (tests/test_compare_cli.py), independently
# of the library's writer.
find_program(LLORCH_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)

add_executable(test_compare_read ${CMAKE_CURRENT_LIST_DIR}/test_compare_read.c)
target_link_libraries(test_compare_read PRIVATE llorch-checkpoint)
llorch_target(test_compare_read)
add_test(NAME compare_read COMMAND test_compare_read)

set(_compare_cases identical perturbed origins steps tolerance nmse metrics malformed names
                   structure json quiet)
if(LLORCH_PYTHON)
  execute_process(COMMAND ${LLORCH_PYTHON} -c "import numpy" RESULT_VARIABLE _numpy_rc
                  OUTPUT_QUIET ERROR_QUIET)
endif()
if(NOT LLORCH_PYTHON OR NOT _numpy_rc EQUAL 0)
  message(WARNING "compare tests: /usr/bin/python3 with numpy not found (Debian: python3-numpy); skipped")
  return()
endif()
foreach(case IN LISTS _compare_cases)
  add_test(NAME compare_${case}
           COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_compare_cli.py
                   --tool $<TARGET_FILE:llorch-checkpoint-compare>
                   --work ${CMAKE_CURRENT_BINARY_DIR}/compare-work ${case})
  set_tests_properties(compare_${case} PROPERTIES TIMEOUT 300)
endforeach()
