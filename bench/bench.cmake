# Benchmarks: built with everything, run by bench/run.sh (never by ctest).
add_executable(bench_capture ${CMAKE_CURRENT_LIST_DIR}/bench_capture.c)
target_link_libraries(bench_capture PRIVATE llorch-capture)
llorch_target(bench_capture)
