add_executable(llorch-checkpoint-extractor
  ${CMAKE_CURRENT_LIST_DIR}/extractor.c
  ${CMAKE_CURRENT_LIST_DIR}/extractor_options.c)
target_link_libraries(llorch-checkpoint-extractor PRIVATE llorch-capture)
target_compile_definitions(llorch-checkpoint-extractor PRIVATE
  LLORCH_LLAMA_COMMIT="${LLAMA_COMMIT}"
  LLORCH_LLAMA_SOURCE="${LLAMA_SOURCE}"
  LLORCH_LLAMA_PATCHED=${LLAMA_PATCHED})
llorch_target(llorch-checkpoint-extractor)
install(TARGETS llorch-checkpoint-extractor RUNTIME DESTINATION bin)
