# Several sequences decoded together in one batch: llorch-ref-engine
# --tokens "a;b;c;d" against llorch-checkpoint-extractor --parallel 4 -n 3 on
# the same ids (tests/engine_sequences.sh, checked by sequences_check.py):
#   batched    every per-sequence file matches llama.cpp's (compare's f32
#              preset, as the single-sequence workflow tests), and is bit for
#              bit the engine's run of that sequence alone
#   mask       --fault mask:1 is first seen in kq_soft_max of layer 1
#   bad_input  bad --tokens lists exit 2 with one line
# -ub 8 cuts steps across sequences; 0 keeps both programs' one prompt step.
# gpt2 runs with --gelu f16-table, as llama.cpp's CPU backend computes GELU.
if(NOT LLORCH_PYTHON)
  return()     # cmake/python.cmake warned
endif()

# engine_sequences_test(NAME MODE ARGS...)
function(engine_sequences_test name mode)
  add_test(NAME engine_sequences_${name}
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/engine_sequences.sh
      $<TARGET_FILE:llorch-ref-engine> $<TARGET_FILE:llorch-checkpoint-extractor> ${LLORCH_PYTHON}
      ${CMAKE_CURRENT_LIST_DIR}/sequences_check.py ${CMAKE_CURRENT_BINARY_DIR}/engine-work/sequences_${name}
      ${mode} ${ARGN})
  set_tests_properties(engine_sequences_${name} PROPERTIES
    FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS engine
    ENVIRONMENT COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>)
endfunction()

set(_seq_llama ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
set(_seq_gpt2 ${LLORCH_TEST_DATA}/tiny-gpt2-f32.gguf)
engine_sequences_test(llama          batched ${_seq_llama} 0)
engine_sequences_test(llama_ub8      batched ${_seq_llama} 8)
engine_sequences_test(gpt2_ub8       batched ${_seq_gpt2} 8 --gelu f16-table)
engine_sequences_test(mask_llama     mask ${_seq_llama} 0)
engine_sequences_test(mask_llama_ub8 mask ${_seq_llama} 8)
engine_sequences_test(mask_gpt2_ub8  mask ${_seq_gpt2} 8 --gelu f16-table)
engine_sequences_test(bad_input      bad-input ${_seq_llama})
