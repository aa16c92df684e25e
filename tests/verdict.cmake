# The verdict both ways (docs/COMPARE.md, "The default judgement"): real
# dumps of llama.cpp (the extractor) against llorch-ref-engine, right and
# with deliberate bugs far below the f32 preset's limits; a crashed or
# partial candidate; two selections of one run. tests/verdict_check.py.
if(NOT LLORCH_PYTHON)
  return()     # cmake/python.cmake warned
endif()
set(_verdict_shared ${LLORCH_SHARED_MODELS}/stories260K.gguf ${LLORCH_SHARED_MODELS}/synthetic-random-gpt2.gguf
    ${LLORCH_SHARED_MODELS}/synthetic-random-qwen2.gguf)
set(_verdict_tiny ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf ${LLORCH_TEST_DATA}/tiny-gpt2-f16.gguf
    ${LLORCH_TEST_DATA}/tiny-llama-q8_0.gguf)

# verdict_test(CASE MODELS...)
function(verdict_test case)
  add_test(NAME verdict_${case}
    COMMAND ${CMAKE_COMMAND} -E env
      EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> ENGINE=$<TARGET_FILE:llorch-ref-engine>
      COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>
      ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/verdict_check.py ${case}
      ${CMAKE_CURRENT_BINARY_DIR}/verdict-work/${case} ${ARGN})
  set_tests_properties(verdict_${case} PROPERTIES FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77 TIMEOUT 300)
endfunction()

verdict_test(clean ${_verdict_shared} ${_verdict_tiny})
verdict_test(faults ${LLORCH_SHARED_MODELS}/stories260K.gguf)
verdict_test(missing ${_verdict_tiny})
verdict_test(selection ${LLORCH_SHARED_MODELS}/stories260K.gguf ${LLORCH_TEST_DATA}/tiny-gpt2-f16.gguf)
verdict_test(isolation ${LLORCH_SHARED_MODELS}/stories260K.gguf)

# Recurrent layers: a fault planted at the state (cache_r, cache_s) or the
# mixer's output of a Mamba-like and an RWKV-like layer is named there
# (synthetic dumps in llama.cpp's graph order; tests/compare_recurrent.py).
add_test(NAME verdict_recurrent
  COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_recurrent.py
    --tool $<TARGET_FILE:llorch-checkpoint-compare> --python-dir ${PROJECT_SOURCE_DIR}/python
    --work ${CMAKE_CURRENT_BINARY_DIR}/verdict-work/recurrent)
set_tests_properties(verdict_recurrent PROPERTIES TIMEOUT 300)
