# llorch-checkpoint-compare: compares two dumps (docs/COMPARE.md).
add_executable(llorch-checkpoint-compare ${CMAKE_CURRENT_LIST_DIR}/compare.c)
target_link_libraries(llorch-checkpoint-compare PRIVATE llorch-checkpoint)
llorch_target(llorch-checkpoint-compare)
install(TARGETS llorch-checkpoint-compare RUNTIME DESTINATION bin)
