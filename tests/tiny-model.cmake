# Tests of llorch-make-tiny-model, and the tiny_models fixture: the models
# other tests load, made once per ctest run into ${LLORCH_TEST_DATA}:
#   tiny-gpt2-f32.gguf   --arch gpt2 --layers 2 --embd 64 --heads 4 --ff 256 --seed 1
#   tiny-gpt2-f16.gguf   the same, --type f16
#   tiny-llama-f32.gguf  --arch llama --layers 2 --embd 64 --heads 4 --heads-kv 2 --ff 128 --seed 2
#   tiny-llama-f16.gguf  the same, --type f16
#   tiny-llama-q8_0.gguf --arch llama --layers 2 --embd 256 --heads 4 --heads-kv 2 --ff 512 --seed 3 --type q8_0
#   tiny-llama-q4_K.gguf the same, --type q4_K
# A test that loads them: set_tests_properties(my_test PROPERTIES FIXTURES_REQUIRED tiny_models)
set(_tiny_dir ${CMAKE_CURRENT_LIST_DIR})

add_test(NAME tiny_models_make
  COMMAND bash ${_tiny_dir}/tiny_model_make.sh $<TARGET_FILE:llorch-make-tiny-model> ${LLORCH_TEST_DATA})
set_tests_properties(tiny_models_make PROPERTIES FIXTURES_SETUP tiny_models TIMEOUT 60)

add_executable(test_tiny_model_runs ${_tiny_dir}/test_tiny_model_runs.c)
target_link_libraries(test_tiny_model_runs PRIVATE llama ggml::ggml m)
llorch_target(test_tiny_model_runs)
add_test(NAME tiny_model_runs COMMAND test_tiny_model_runs ${LLORCH_TEST_DATA})
set_tests_properties(tiny_model_runs PROPERTIES FIXTURES_REQUIRED tiny_models TIMEOUT 60)

add_executable(test_patch_names ${_tiny_dir}/test_patch_names.c)
target_link_libraries(test_patch_names PRIVATE llama ggml::ggml)
target_compile_definitions(test_patch_names PRIVATE LLAMA_PATCHED=$<BOOL:${LLAMA_PATCHED}>)
llorch_target(test_patch_names)
add_test(NAME patch_names COMMAND test_patch_names ${LLORCH_TEST_DATA})
set_tests_properties(patch_names PROPERTIES FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77 TIMEOUT 60)

add_test(NAME tiny_model_determinism
  COMMAND bash ${_tiny_dir}/tiny_model_determinism.sh
          $<TARGET_FILE:llorch-make-tiny-model> $<TARGET_FILE:test_tiny_model_runs> ${LLORCH_TEST_DATA})
add_test(NAME tiny_model_bad_input
  COMMAND bash ${_tiny_dir}/tiny_model_bad_input.sh $<TARGET_FILE:llorch-make-tiny-model> ${LLORCH_TEST_DATA})
add_test(NAME tiny_model_interrupt
  COMMAND bash ${_tiny_dir}/tiny_model_interrupt.sh $<TARGET_FILE:llorch-make-tiny-model> ${LLORCH_TEST_DATA})
set_tests_properties(tiny_model_determinism tiny_model_bad_input tiny_model_interrupt PROPERTIES TIMEOUT 60)
