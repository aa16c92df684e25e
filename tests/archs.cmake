# Every llama.cpp architecture: llama.cpp's own test model of each variant,
# as written and without its .scale tensors, with flash attention off and
# on, checked against llama.cpp's whole graph; the result is
# docs/ARCHITECTURES.md.
add_executable(gguf_strip ${CMAKE_CURRENT_LIST_DIR}/gguf_strip.c)
target_link_libraries(gguf_strip PRIVATE ggml::ggml)
llorch_target(gguf_strip)

set(_archs_data ${LLORCH_TEST_DATA}/archs)
set(_archs_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> GGUF_STRIP=$<TARGET_FILE:gguf_strip>
               PY=${LLORCH_PYTHON})
if(LLORCH_LLAMA_FIND_PACKAGE)
  list(APPEND _archs_env LLORCH_LLAMA_FIND_PACKAGE_BUILD=1)
endif()

add_test(NAME archs_models COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/archs.sh models ${_archs_data})
set_tests_properties(archs_models PROPERTIES ENVIRONMENT "${_archs_env}" FIXTURES_SETUP archs_models
                     TIMEOUT 1200 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)

set(_archs_shards 4)
math(EXPR _last "${_archs_shards} - 1")
foreach(shard RANGE ${_last})
  add_test(NAME archs_check_${shard}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/archs.sh check ${_archs_data} ${shard} ${_archs_shards})
  set_tests_properties(archs_check_${shard} PROPERTIES ENVIRONMENT "${_archs_env}"
                       FIXTURES_REQUIRED archs_models FIXTURES_SETUP archs_results TIMEOUT 1200)
endforeach()

# In build-asan the checks run the sanitized extractor on every variant; a
# sanitizer report fails a run even where the extractor exits 0.
add_test(NAME archs_check_sanitizer COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/archs.sh sanitizer ${_archs_data})
set_tests_properties(archs_check_sanitizer PROPERTIES ENVIRONMENT "${_archs_env}")

add_test(NAME archs_table COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/archs.sh table ${_archs_data})
set_tests_properties(archs_table PROPERTIES ENVIRONMENT "${_archs_env}" FIXTURES_REQUIRED "archs_models;archs_results")

# A trained RWKV-7 from ../shared/models (test-llama-archs writes no RWKV
# variant): its recurrent layers' checkpoints against llama.cpp's graph, and
# its logits against rwkv.cpp's expected logits. Skipped without the model.
add_test(NAME archs_rwkv7
         COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/archs_rwkv7.py $<TARGET_FILE:llorch-checkpoint-extractor>
                 ${LLORCH_SHARED_MODELS} ${LLORCH_TEST_DATA}/archs_rwkv7)
set_tests_properties(archs_rwkv7 PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
