# Tests of the readers and llorch-checkpoint-compare (docs/COMPARE.md).
# The dumps are written by numpy (tests/test_compare_cli.py), independently
# of the library's writer.

add_executable(test_compare_read ${CMAKE_CURRENT_LIST_DIR}/test_compare_read.c)
target_link_libraries(test_compare_read PRIVATE llorch-checkpoint)
llorch_target(test_compare_read)
add_test(NAME compare_read COMMAND test_compare_read)

# Regressions of lib/compare on in-memory dumps (before the Python cases,
# which a build without Python skips).
add_executable(test_compare_regressions ${CMAKE_CURRENT_LIST_DIR}/test_compare_regressions.c)
target_link_libraries(test_compare_regressions PRIVATE llorch-checkpoint)
llorch_target(test_compare_regressions)
add_test(NAME compare_regressions COMMAND test_compare_regressions)

set(_compare_cases identical perturbed origins steps tolerance nmse metrics malformed names
                   structure json quiet tol_names warnings step_order)
if(NOT LLORCH_PYTHON)
  return()     # cmake/python.cmake warned
endif()
foreach(case IN LISTS _compare_cases)
  add_test(NAME compare_${case}
           COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_compare_cli.py
                   --tool $<TARGET_FILE:llorch-checkpoint-compare>
                   --work ${CMAKE_CURRENT_BINARY_DIR}/compare-work ${case})
  set_tests_properties(compare_${case} PROPERTIES TIMEOUT 300)
endforeach()

# The HTML report and the terminal heat map (tests/test_compare_html.py):
# headless Chromium loads the page from disk with JavaScript off; its DOM's
# numbers are checked against --json and numpy. Chromium is required
# (scripts/build.sh installs it); without it these tests fail and say so.
set(_report_cases render numbers hostile missing nonfinite size heatmap bad_output)
foreach(case IN LISTS _report_cases)
  add_test(NAME report_${case}
           COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_compare_html.py
                   --tool $<TARGET_FILE:llorch-checkpoint-compare>
                   --work ${CMAKE_CURRENT_BINARY_DIR}/report-work ${case})
  set_tests_properties(report_${case} PROPERTIES TIMEOUT 300)
endforeach()

# The decision by the logits (tests/test_compare_logits.py): every number of
# --json's "decision" against numpy on the same files, and the exit status
# of --decision (pass, fail, no logits in common).
set(_decision_cases clean differs positions missing)
foreach(case IN LISTS _decision_cases)
  add_test(NAME compare_decision_${case}
           COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_compare_logits.py
                   --tool $<TARGET_FILE:llorch-checkpoint-compare>
                   --work ${CMAKE_CURRENT_BINARY_DIR}/decision-work ${case})
  set_tests_properties(compare_decision_${case} PROPERTIES TIMEOUT 300)
endforeach()
