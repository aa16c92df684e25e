# Fed runs (llorch-checkpoint-extractor --feed DUMP, docs/FORMAT.md "Fed runs"):
# llama.cpp fed by its own dump computes that dump again bit for bit; a
# perturbed l_out reaches the next layer's norm as numpy computes it and
# changes nothing before; over two RPC servers the CPU's bits; each bad
# input refused in one line with nothing written.
set(_feed_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> PY=${LLORCH_PYTHON})
function(llorch_feed_case case model_path name)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/feed_cases.sh ${case} ${model_path}
                                ${LLORCH_TEST_DATA}/${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_feed_env}" TIMEOUT 180 SKIP_RETURN_CODE 77)
endfunction()
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  foreach(case self perturb)
    llorch_feed_case(${case} ${LLORCH_TEST_DATA}/${model}.gguf extractor_feed_${case}_${model})
    set_property(TEST extractor_feed_${case}_${model} PROPERTY FIXTURES_REQUIRED tiny_models)
  endforeach()
endforeach()
foreach(case self perturb)
  llorch_feed_case(${case} ${LLORCH_SHARED_MODELS}/stories260K.gguf extractor_feed_${case}_shared-stories260K)
endforeach()
llorch_feed_case(bad-input ${LLORCH_TEST_DATA}/tiny-gpt2-f32.gguf extractor_feed_bad-input_tiny-gpt2-f32)
set_property(TEST extractor_feed_bad-input_tiny-gpt2-f32 PROPERTY FIXTURES_REQUIRED tiny_models)
llorch_feed_case(rpc ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf extractor_feed_rpc_tiny-llama-f32)
set_tests_properties(extractor_feed_rpc_tiny-llama-f32 PROPERTIES FIXTURES_REQUIRED tiny_models
  ENVIRONMENT "${_feed_env};RPC_SERVER=$<TARGET_FILE:rpc_server>;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-ggml-rpc.supp")
