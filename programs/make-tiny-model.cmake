# llorch-make-tiny-model: writes small gpt2/llama GGUF files with seeded
# random weights (tests, engine checks). Needs only ggml (gguf.h, quantizers).
add_executable(llorch-make-tiny-model
  ${CMAKE_CURRENT_LIST_DIR}/make-tiny-model.c
  ${CMAKE_CURRENT_LIST_DIR}/tiny_model_rng.c
  ${CMAKE_CURRENT_LIST_DIR}/tiny_model_spec.c
  ${CMAKE_CURRENT_LIST_DIR}/tiny_model_write.c)
target_link_libraries(llorch-make-tiny-model PRIVATE ggml::ggml m)
target_compile_definitions(llorch-make-tiny-model PRIVATE LLAMA_VOCAB_DIR="${LLAMA_VOCAB_DIR}")
# The same bytes on every machine: no fused multiply-add contraction in the
# weight generator (clang contracts by default, gcc does in GNU modes).
target_compile_options(llorch-make-tiny-model PRIVATE -ffp-contract=off)
llorch_target(llorch-make-tiny-model)
install(TARGETS llorch-make-tiny-model RUNTIME DESTINATION bin)
