# The Python package (python/llorch_checkpoint): dumps it re-writes are the C
# writer's bit for bit; `pip install ./python` works offline; a PyTorch
# llama, qwen2 and GPT-2 with its hooks agree with llama.cpp checkpoint by
# checkpoint, and compare names a RoPE fault at Qcur of layer 0; fed by
# llama.cpp's dump (feed=), each layer is proved on its own: a fault in one
# layer is named there and the layers after it pass (skipped, exit 77,
# without torch: Debian's python3-torch).
if(NOT LLORCH_PYTHON)
  return()
endif()
set(_python_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> ENGINE=$<TARGET_FILE:llorch-ref-engine>
                COMPARE=$<TARGET_FILE:llorch-checkpoint-compare> MAKER=$<TARGET_FILE:llorch-make-tiny-model>
                PY=${LLORCH_PYTHON} LLAMA_CPP_DIR=${LLAMA_CPP_DIR})

function(llorch_python_case name case model)
  add_test(NAME ${name} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/python_cases.sh ${case}
                                ${LLORCH_TEST_DATA}/${name} ${model})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_python_env}" FIXTURES_REQUIRED tiny_models
                                          SKIP_RETURN_CODE 77 TIMEOUT 300)
endfunction()

llorch_python_case(python_roundtrip roundtrip ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
llorch_python_case(python_install install "")
llorch_python_case(python_errors errors "")
llorch_python_case(python_torch_llama torch ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
llorch_python_case(python_torch_qwen2 torch qwen2)
llorch_python_case(python_torch_gpt2 gpt2 ${LLORCH_TEST_DATA}/tiny-gpt2-f32.gguf)
llorch_python_case(python_fed_llama fed llama)
llorch_python_case(python_fed_qwen2 fed qwen2)
llorch_python_case(python_fed_gpt2 fed gpt2)
# The package's numpy RWKV-7 (python -m llorch_checkpoint.rwkv7) against llama.cpp on
# ../shared/models' trained RWKV-7: the same files, compare passes, its faults named
# where they are, fed runs both ways with --isolated, rwkv.cpp's expected logits
# (skipped, exit 77, without the model).
add_test(NAME python_rwkv7 COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/python_rwkv7.py ${LLORCH_SHARED_MODELS}
                                   ${LLORCH_TEST_DATA}/python_rwkv7)
set_tests_properties(python_rwkv7 PROPERTIES ENVIRONMENT "${_python_env};PYTHONPATH=${PROJECT_SOURCE_DIR}/python"
                                             SKIP_RETURN_CODE 77 TIMEOUT 300)

# The reader on the extractor's safetensors dump: every tensor equals the
# same run's npz dump read by the reader, a few values equal a header parsed
# by the test itself, and a file cut short is named (python_checks.py).
add_test(NAME python_safetensors COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/python_checks.py safetensors
                                         ${LLORCH_TEST_DATA}/python_safetensors/run ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
set_tests_properties(python_safetensors PROPERTIES ENVIRONMENT "${_python_env};PYTHONPATH=${PROJECT_SOURCE_DIR}/python"
                                                   FIXTURES_REQUIRED tiny_models TIMEOUT 300)
