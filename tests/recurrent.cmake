# Recurrent layers against an independent numpy reference
# (tests/recurrent_reference.py, docs/RECURRENT.md): the extractor's capture
# of llama.cpp's tensors, layer by layer with the recurrent state each layer
# leaves, must equal a float64 forward pass written from the papers.
#   recurrent_rwkv7_graph        ../shared/models' trained RWKV-7, graph tensors,
#                                and its logits against rwkv.cpp's expected ones
#   recurrent_rwkv7_steps        the same over 4 micro-batches (-ub 2): the state
#                                carried from step to step
#   recurrent_mamba_graph        llama.cpp's own random Mamba (archs_models) as
#                                written (.scale tensors) and without them, 3 steps
#   recurrent_*_checkpoints      the extractor's own per-layer checkpoints of the
#                                same models (attn_norm, attn_out_proj, ffn_inp,
#                                ffn_out, l_out, and the states cache_r and
#                                cache_s after every step), over several steps
# Skipped (77) where a model is absent.
if(NOT LLORCH_PYTHON)
  return()
endif()
set(_rec_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> PY=${LLORCH_PYTHON} LLAMA_CPP_DIR=${LLAMA_CPP_DIR})
set(_rec_rwkv7 ${LLORCH_SHARED_MODELS}/tiny-rwkv7-834K-F32.gguf)
set(_rec_mamba ${LLORCH_TEST_DATA}/archs/as-written/mamba-dense.gguf)
set(_rec_mamba_ns ${LLORCH_TEST_DATA}/archs/no-scale/mamba-dense.gguf)

function(llorch_recurrent_case name source model)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/recurrent_cases.sh ${source}
                                ${CMAKE_CURRENT_BINARY_DIR}/recurrent-work/${name} ${model} ${ARGN})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_rec_env}" SKIP_RETURN_CODE 77 TIMEOUT 300)
endfunction()

llorch_recurrent_case(recurrent_rwkv7_graph graph ${_rec_rwkv7} --tokens 34,105,110
                      --expected-logits ${LLORCH_SHARED_MODELS}/tiny-rwkv7-834K-expected-logits.bin)
llorch_recurrent_case(recurrent_rwkv7_steps graph ${_rec_rwkv7} --tokens 34,105,110,32,116,104,101 --ubatch 2)
llorch_recurrent_case(recurrent_rwkv7_checkpoints checkpoints ${_rec_rwkv7} --tokens 34,105,110,32,116,104,101
                      --ubatch 2)
llorch_recurrent_case(recurrent_mamba_graph graph ${_rec_mamba} --tokens 1,2,3,4,5 --ubatch 2)
llorch_recurrent_case(recurrent_mamba_no_scale graph ${_rec_mamba_ns} --tokens 1,2,3,4,5 --ubatch 2)
llorch_recurrent_case(recurrent_mamba_checkpoints checkpoints ${_rec_mamba} --tokens 1,2,3,4,5 --ubatch 2)
set_tests_properties(recurrent_mamba_graph recurrent_mamba_no_scale recurrent_mamba_checkpoints
                     PROPERTIES FIXTURES_REQUIRED archs_models)
