# llorch-ref-engine: the plain-C reference engine (GPT-2, llama) that writes
# its own checkpoints through the library's writer API. ggml is used only to
# parse GGUF and to convert weight types to f32; all arithmetic is ours.
add_executable(llorch-ref-engine
  ${CMAKE_CURRENT_LIST_DIR}/ref_engine.c
  ${CMAKE_CURRENT_LIST_DIR}/ref_model.c
  ${CMAKE_CURRENT_LIST_DIR}/ref_forward.c
  ${CMAKE_CURRENT_LIST_DIR}/ref_checkpoints.c
  ${CMAKE_CURRENT_LIST_DIR}/ref_input.c)
target_include_directories(llorch-ref-engine PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(llorch-ref-engine PRIVATE llorch-checkpoint ggml::ggml m)
# The forward pass must round like the C source reads: no fused multiply-add
# contraction (clang contracts by default, gcc in GNU modes).
target_compile_options(llorch-ref-engine PRIVATE -ffp-contract=off)
llorch_target(llorch-ref-engine)
install(TARGETS llorch-ref-engine RUNTIME DESTINATION bin)
