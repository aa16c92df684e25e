# Tests of llorch-ref-engine (engine/):
#   1. its logits against llama.cpp's own (test_engine_llama, linked to llama)
#   2. stepwise (-ub 3 -n 2) == one step, by position
#   3. each --fault changes exactly the checkpoints downstream of it
#   4. bad inputs exit 2 with one line
# The tiny models come from the tiny_models fixture; stories260K from
# LLORCH_SHARED_MODELS, skipped where absent.
add_executable(test_engine_llama
  ${CMAKE_CURRENT_LIST_DIR}/test_engine_llama.c
  ${CMAKE_CURRENT_LIST_DIR}/test_engine_npy.c)
target_link_libraries(test_engine_llama PRIVATE llama ggml::ggml m)
llorch_target(test_engine_llama)

add_executable(test_engine_dump
  ${CMAKE_CURRENT_LIST_DIR}/test_engine_dump.c
  ${CMAKE_CURRENT_LIST_DIR}/test_engine_npy.c)
target_include_directories(test_engine_dump PRIVATE ${CJSON_INCLUDE_DIR})
target_link_libraries(test_engine_dump PRIVATE ${CJSON_LIBRARY} m)
llorch_target(test_engine_dump)

set(_engine_models ${LLORCH_TEST_DATA})
set(_engine_stories ${LLORCH_SHARED_MODELS}/stories260K.gguf)
# Token ids valid in every tiny model (vocab 32000 or 50257).
set(_engine_tokens 1,450,1200,3000,12,7,99,2048,31999,5)
# "Once upon a time, there was a little girl named Lily." in stories260K's vocab.
set(_engine_stories_tokens 1,403,407,261,378,432,383,286,261,376,298,315,421,395,317,426)

# engine_test(NAME MODE ARGS...)
function(engine_test name mode)
  add_test(NAME engine_${name}
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_engine.sh
      $<TARGET_FILE:llorch-ref-engine> $<TARGET_FILE:test_engine_llama> $<TARGET_FILE:test_engine_dump>
      ${CMAKE_CURRENT_BINARY_DIR}/engine-work/${name} ${mode} ${ARGN})
  set_tests_properties(engine_${name} PROPERTIES
    FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77 TIMEOUT 60 LABELS engine)
endfunction()

# 1. Against llama.cpp. The tolerance bounds max|engine - llama.cpp| over a
# token's logits, divided by that token's max|logit| (see
# test_engine_llama.c). F32 llama agrees to float32 rounding (seen: 5e-7 and
# 1e-6 for stories260K); gpt2 is looser because llama.cpp's CPU GELU reads an
# f16 table (seen: 2e-4). With F16/Q8_0/Q4_K weights llama.cpp also rounds
# the activations to f16 / quantizes them to 8 bits before each matmul, and
# the engine does not (seen: 5e-4 F16, 1.2e-2 Q8_0, 2e-2 Q4_K): those tests
# only show that the weights are read right.
engine_test(vs_llama_gpt2_f32   vs-llama ${_engine_models}/tiny-gpt2-f32.gguf   1e-3 ${_engine_tokens})
engine_test(vs_llama_llama_f32  vs-llama ${_engine_models}/tiny-llama-f32.gguf  1e-5 ${_engine_tokens})
engine_test(vs_llama_stories260K vs-llama ${_engine_stories} 1e-5 ${_engine_stories_tokens})
# --kv-type f16 against llama.cpp with an f16 cache: Q and the softmax
# probabilities rounded to f16 as ggml's x86 matmul does (seen: 5e-7; without
# that rounding the engine is 2.6e-4 away). On ARM without FP16 vector
# arithmetic ggml keeps Q and P in f32, and this test would fail.
# --gelu f16-table computes GELU as llama.cpp's CPU backend does (seen: 3.9e-5;
# what remains are f16 roundings flipped by float32-level differences).
engine_test(vs_llama_gpt2_f32_gelu_table vs-llama ${_engine_models}/tiny-gpt2-f32.gguf 2e-4 ${_engine_tokens} f32 --gelu f16-table)
engine_test(vs_llama_llama_f32_kvf16 vs-llama ${_engine_models}/tiny-llama-f32.gguf 5e-5 ${_engine_tokens} f16)
engine_test(vs_llama_gpt2_f16   vs-llama ${_engine_models}/tiny-gpt2-f16.gguf   3e-3 ${_engine_tokens})
engine_test(vs_llama_llama_f16  vs-llama ${_engine_models}/tiny-llama-f16.gguf  3e-3 ${_engine_tokens})
engine_test(vs_llama_llama_q8_0 vs-llama ${_engine_models}/tiny-llama-q8_0.gguf 6e-2 ${_engine_tokens})
engine_test(vs_llama_llama_q4_K vs-llama ${_engine_models}/tiny-llama-q4_K.gguf 6e-2 ${_engine_tokens})

# 2. Stepwise == one step.
engine_test(stepwise_gpt2        stepwise ${_engine_models}/tiny-gpt2-f32.gguf  ${_engine_tokens})
engine_test(stepwise_llama       stepwise ${_engine_models}/tiny-llama-f32.gguf ${_engine_tokens})
engine_test(stepwise_llama_kvf16 stepwise ${_engine_models}/tiny-llama-f32.gguf ${_engine_tokens} --kv-type f16)
engine_test(stepwise_stories260K stepwise ${_engine_stories} ${_engine_stories_tokens})

# 3. Faults.
engine_test(fault_llama_eps          fault ${_engine_models}/tiny-llama-f32.gguf ${_engine_tokens} eps 1)
engine_test(fault_llama_swap_heads   fault ${_engine_models}/tiny-llama-f32.gguf ${_engine_tokens} swap-heads 1)
engine_test(fault_llama_rope_offset  fault ${_engine_models}/tiny-llama-f32.gguf ${_engine_tokens} rope-offset 0)
engine_test(fault_gpt2_eps           fault ${_engine_models}/tiny-gpt2-f32.gguf  ${_engine_tokens} eps 1)
engine_test(fault_gpt2_swap_heads    fault ${_engine_models}/tiny-gpt2-f32.gguf  ${_engine_tokens} swap-heads 0)
engine_test(fault_gpt2_no_attn_bias  fault ${_engine_models}/tiny-gpt2-f32.gguf  ${_engine_tokens} no-attn-bias 0)
engine_test(fault_stories260K_eps    fault ${_engine_stories} ${_engine_stories_tokens} eps 2)

# 4. Bad inputs.
engine_test(bad_input bad-input ${_engine_models}/tiny-llama-f32.gguf ${_engine_models}/tiny-gpt2-f32.gguf)

# 5. --feed REF_DUMP: each layer computed from the reference's input to it
# (tests/engine_feed.sh, engine_feed_check.py; docs/FORMAT.md "Fed runs"):
#   feed_self_*       fed by its own dump (same args), the engine writes the
#                     same tensor files byte for byte, and "fed" in its
#                     manifest: one step, -n 2, -ub 2 -n 2, gpt2, several
#                     sequences; self_cross: a -ub 2 -n 2 run fed by a
#                     one-step dump of all its tokens
#   feed_isolation_*  --fault eps:2 fed by llama.cpp (extractor, f32 cache,
#                     --checkpoints all): compare's first divergence is
#                     attn_norm of layer 2 and every row of the other layers
#                     passes; unfed, layers 2 to the last fail. A 4-layer
#                     tiny llama (made here) and stories260K, one step and
#                     several (-ub, -n: the engine follows the reference's
#                     tokens)
#   feed_bad_input    another model (fingerprint, architecture), other or
#                     fewer tokens, rows missing: exit 2, one line, no dump
if(LLORCH_PYTHON)
  set(_feed_llama4 ${LLORCH_TEST_DATA}/feed-tiny-llama4-f32.gguf)
  add_test(NAME engine_feed_model
    COMMAND $<TARGET_FILE:llorch-make-tiny-model> --arch llama --layers 4 --embd 64 --heads 4 --heads-kv 2 --ff 128
            --seed 5 -o ${_feed_llama4})
  set_tests_properties(engine_feed_model PROPERTIES FIXTURES_SETUP engine_feed_model TIMEOUT 60)
  function(engine_feed_test name mode)
    add_test(NAME engine_feed_${name}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/engine_feed.sh
        $<TARGET_FILE:llorch-ref-engine> $<TARGET_FILE:llorch-checkpoint-extractor>
        $<TARGET_FILE:llorch-checkpoint-compare> ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/engine_feed_check.py
        ${CMAKE_CURRENT_BINARY_DIR}/engine-work/feed_${name} ${mode} ${ARGN})
    set_tests_properties(engine_feed_${name} PROPERTIES
      FIXTURES_REQUIRED "tiny_models;engine_feed_model" SKIP_RETURN_CODE 77 TIMEOUT 180 LABELS engine)
  endfunction()
  set(_feed_llama ${_engine_models}/tiny-llama-f32.gguf)
  engine_feed_test(self_one_step   self ${_feed_llama} ${_engine_tokens})
  engine_feed_test(self_n2         self ${_feed_llama} ${_engine_tokens} -n 2)
  engine_feed_test(self_ub2_n2     self ${_feed_llama} ${_engine_tokens} -ub 2 -n 2)
  engine_feed_test(self_gpt2       self ${_engine_models}/tiny-gpt2-f32.gguf ${_engine_tokens} -ub 3 -n 2)
  engine_feed_test(self_sequences  self ${_feed_llama} "${_engine_tokens}\;1,7,99" -ub 4 -n 2)
  engine_feed_test(self_cross      self-cross ${_feed_llama} ${_engine_tokens})
  engine_feed_test(isolation_llama4        isolation ${_feed_llama4} ${_engine_tokens} 2)
  engine_feed_test(isolation_llama4_steps  isolation ${_feed_llama4} ${_engine_tokens} 2 -ub 4 -n 2)
  engine_feed_test(isolation_stories260K   isolation ${_engine_stories} ${_engine_stories_tokens} 2)
  engine_feed_test(isolation_stories260K_steps isolation ${_engine_stories} ${_engine_stories_tokens} 2 -ub 5 -n 3)
  engine_feed_test(bad_input bad-input ${_feed_llama} ${_engine_models}/tiny-llama-f16.gguf
                   ${_engine_models}/tiny-gpt2-f32.gguf 1,450,1200)
endif()
