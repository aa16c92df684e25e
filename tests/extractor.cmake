# Tests of the capture library and llorch-checkpoint-extractor.

add_executable(test_capture_logits ${CMAKE_CURRENT_LIST_DIR}/test_capture_logits.c)
target_link_libraries(test_capture_logits PRIVATE llorch-capture)
llorch_target(test_capture_logits)

foreach(model tiny-gpt2-f32 tiny-llama-f32 tiny-llama-q8_0)
  add_test(NAME capture_logits_bitwise_${model}
           COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/logits-${model}' '${LLORCH_TEST_DATA}/logits-split-${model}' && '$<TARGET_FILE:test_capture_logits>' '${LLORCH_TEST_DATA}/${model}.gguf' '${LLORCH_TEST_DATA}/logits-${model}' '${LLORCH_TEST_DATA}/logits-split-${model}' && '${LLORCH_PYTHON}' '${CMAKE_CURRENT_LIST_DIR}/dump_checks.py' same '${LLORCH_TEST_DATA}/logits-${model}' '${LLORCH_TEST_DATA}/logits-split-${model}'")
  set_tests_properties(capture_logits_bitwise_${model} PROPERTIES FIXTURES_REQUIRED tiny_models)
endforeach()

# A test of the capture library's parts, through their internal headers:
# tests/EXE.c, run as the test NAME.
function(llorch_capture_part_test exe name)
  add_executable(${exe} ${CMAKE_CURRENT_LIST_DIR}/${exe}.c)
  target_link_libraries(${exe} PRIVATE llorch-capture)
  target_include_directories(${exe} PRIVATE ${PROJECT_SOURCE_DIR}/lib/capture)
  llorch_target(${exe})
  add_test(NAME ${name} COMMAND ${exe})
endfunction()

# The gather and its type conversion against a plain reference.
llorch_capture_part_test(test_convert capture_convert)
# The writer queue's memory bound, with a writer slower than the copies.
llorch_capture_part_test(test_queue capture_queue_bound)

set(_cases_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor>
               CHECKS=${CMAKE_CURRENT_LIST_DIR}/dump_checks.py PY=${LLORCH_PYTHON})
function(llorch_extractor_case case model)
  set(name extractor_${case}_${model})
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/extractor_cases.sh ${case} ${LLORCH_TEST_DATA}/${model}.gguf
                   ${LLORCH_TEST_DATA}/${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_cases_env}" FIXTURES_REQUIRED tiny_models TIMEOUT 120)
endfunction()

foreach(model tiny-gpt2-f32 tiny-gpt2-f16 tiny-llama-f32 tiny-llama-f16 tiny-llama-q8_0 tiny-llama-q4_K)
  llorch_extractor_case(dump ${model})
  llorch_extractor_case(split ${model})
endforeach()
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  llorch_extractor_case(identify ${model})
  llorch_extractor_case(steps ${model})
endforeach()
# the real models in ../shared/models, where present
foreach(model stories260K synthetic-random-gpt2 synthetic-random-qwen2)
  add_test(NAME extractor_split_shared-${model}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/extractor_cases.sh split ${LLORCH_SHARED_MODELS}/${model}.gguf
                   ${LLORCH_TEST_DATA}/extractor_split_shared-${model})
  set_tests_properties(extractor_split_shared-${model} PROPERTIES ENVIRONMENT "${_cases_env}" TIMEOUT 120
                       SKIP_RETURN_CODE 77)
endforeach()
llorch_extractor_case(positional tiny-llama-f32)
llorch_extractor_case(text tiny-gpt2-f32)
llorch_extractor_case(bad-input tiny-gpt2-f32)
llorch_extractor_case(output tiny-gpt2-f32)
# a full file system: a small tmpfs, mounted where the tests run as root (skipped elsewhere)
llorch_extractor_case(full-disk tiny-gpt2-f32)
set_tests_properties(extractor_full-disk_tiny-gpt2-f32 PROPERTIES SKIP_RETURN_CODE 77)
llorch_extractor_case(interrupt tiny-llama-f32)
llorch_extractor_case(repack tiny-llama-f16)
llorch_extractor_case(stats tiny-gpt2-f32)
llorch_extractor_case(graph tiny-llama-f32)
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  llorch_extractor_case(positions ${model})
  set_property(TEST extractor_positions_${model} APPEND PROPERTY ENVIRONMENT COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>)
endforeach()
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  llorch_extractor_case(parallel ${model})
  set_property(TEST extractor_parallel_${model} APPEND PROPERTY ENVIRONMENT COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>)
endforeach()
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  llorch_extractor_case(fa-default ${model})
  set_property(TEST extractor_fa-default_${model} APPEND PROPERTY ENVIRONMENT COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>)
endforeach()
add_test(NAME extractor_fa-default_shared-stories260K
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/extractor_cases.sh fa-default ${LLORCH_SHARED_MODELS}/stories260K.gguf
                 ${LLORCH_TEST_DATA}/extractor_fa-default_shared-stories260K)
set_tests_properties(extractor_fa-default_shared-stories260K PROPERTIES
  ENVIRONMENT "${_cases_env};COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>" TIMEOUT 120 SKIP_RETURN_CODE 77)
foreach(model tiny-gpt2-f32 tiny-llama-f16)
  llorch_extractor_case(forms ${model})
  set_property(TEST extractor_forms_${model} APPEND PROPERTY ENVIRONMENT COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>)
endforeach()

# Capture from tensors in non-host buffers: a ggml RPC server on this
# machine's CPU holds the model, the KV cache and the activations.
add_executable(rpc_server ${CMAKE_CURRENT_LIST_DIR}/rpc_server.c)
target_link_libraries(rpc_server PRIVATE ggml::ggml)
llorch_target(rpc_server)
add_test(NAME extractor_rpc_tiny-llama-f32
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/extractor_cases.sh rpc ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf
                 ${LLORCH_TEST_DATA}/extractor_rpc)
set_tests_properties(extractor_rpc_tiny-llama-f32 PROPERTIES
  ENVIRONMENT "${_cases_env};RPC_SERVER=$<TARGET_FILE:rpc_server>;COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_LIST_DIR}/lsan-ggml-rpc.supp"
  FIXTURES_REQUIRED tiny_models TIMEOUT 120 SKIP_RETURN_CODE 77)

# Which tensor each checkpoint is, pinned for gpt2 and llama as dumps made
# before identification by dataflow had them (tests/golden/, made with
# tests/golden_dump.py): every file, name, op and shape, and every missing
# checkpoint with its reason.
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  foreach(mode one steps)
    set(_steps "")
    if(mode STREQUAL "steps")
      set(_steps "-n 3 -ub 4")
    endif()
    set(_dir ${LLORCH_TEST_DATA}/golden-${model}-${mode})
    add_test(NAME extractor_golden_${model}_${mode}
             COMMAND bash -c "rm -rf '${_dir}' && '$<TARGET_FILE:llorch-checkpoint-extractor>' -m '${LLORCH_TEST_DATA}/${model}.gguf' -p 'Once upon a time there was' --checkpoints all -ctk f32 -ctv f32 ${_steps} -o '${_dir}' 2>/dev/null && '${LLORCH_PYTHON}' '${CMAKE_CURRENT_LIST_DIR}/golden_dump.py' '${_dir}' '${CMAKE_CURRENT_LIST_DIR}/golden/${model}-${mode}.txt'")
    set_tests_properties(extractor_golden_${model}_${mode} PROPERTIES FIXTURES_REQUIRED tiny_models TIMEOUT 60)
  endforeach()
endforeach()

# The manifest's settings JSON of the extractor, whatever its values.
add_executable(test_extractor_settings ${CMAKE_CURRENT_LIST_DIR}/test_extractor_settings.c
               ${PROJECT_SOURCE_DIR}/programs/extractor_settings.c)
target_include_directories(test_extractor_settings PRIVATE ${PROJECT_SOURCE_DIR}/programs)
target_link_libraries(test_extractor_settings PRIVATE llorch_common ${CJSON_LIBRARY} ${LIBDEFLATE_LIBRARY})
llorch_target(test_extractor_settings)
add_test(NAME extractor_settings_json COMMAND test_extractor_settings)

# A layer number in a tensor's name is a hint, never an index.
llorch_capture_part_test(test_identify_layers capture_identify_layers)

# One llama_decode larger than n_ubatch, split by the library: the same
# checkpoints, position by position, as the extractor's one-batch run.
add_executable(test_capture_ubatch ${CMAKE_CURRENT_LIST_DIR}/test_capture_ubatch.c)
target_link_libraries(test_capture_ubatch PRIVATE llorch-capture)
llorch_target(test_capture_ubatch)
set(_ub ${LLORCH_TEST_DATA}/capture-ubatch)
add_test(NAME capture_ubatch_split
         COMMAND bash -c "rm -rf '${_ub}' && mkdir -p '${_ub}' && '$<TARGET_FILE:test_capture_ubatch>' '${LLORCH_TEST_DATA}/tiny-llama-f32.gguf' '${_ub}/split' 100 16 && ids=$('${LLORCH_PYTHON}' -c \"import json; print(','.join(map(str, json.load(open('${_ub}/split/manifest.json'))['tokens'])))\") && steps=$('${LLORCH_PYTHON}' -c \"import json; print(len({f['step'] for f in json.load(open('${_ub}/split/manifest.json'))['files']}))\") && [ \"$steps\" = 7 ] && '$<TARGET_FILE:llorch-checkpoint-extractor>' -m '${LLORCH_TEST_DATA}/tiny-llama-f32.gguf' --tokens \"$ids\" -ctk f32 -ctv f32 -fa off -t 2 -o '${_ub}/one' 2>/dev/null && '$<TARGET_FILE:llorch-checkpoint-compare>' '${_ub}/one' '${_ub}/split'")
set_tests_properties(capture_ubatch_split PROPERTIES FIXTURES_REQUIRED tiny_models TIMEOUT 120)

# Batches of several sequences through the library (llorch_capture_begin_batch):
# bad batches refused before llama_decode, one message per rule; a batch of
# two sequences, whose micro-batches hold both, gives per-sequence files that
# compare clean with the extractor's run of each sequence alone.
add_executable(test_capture_batch ${CMAKE_CURRENT_LIST_DIR}/test_capture_batch.c)
target_link_libraries(test_capture_batch PRIVATE llorch-capture llorch-checkpoint)
llorch_target(test_capture_batch)
set(_cb ${LLORCH_TEST_DATA}/capture-batch)
set(_cb_run "'$<TARGET_FILE:llorch-checkpoint-extractor>' -m '${LLORCH_TEST_DATA}/tiny-llama-f32.gguf' -ctk f32 -ctv f32 -fa off -t 2 --checkpoints all")
add_test(NAME capture_batch_sequences
         COMMAND bash -c "rm -rf '${_cb}' && mkdir -p '${_cb}' && '$<TARGET_FILE:test_capture_batch>' '${LLORCH_TEST_DATA}/tiny-llama-f32.gguf' '${_cb}' && ${_cb_run} --tokens 1,450,4996,17354,1701,29916 -o '${_cb}/seq0' 2>/dev/null && ${_cb_run} --tokens 1,15043,3186,1576 -o '${_cb}/seq1' 2>/dev/null && '$<TARGET_FILE:llorch-checkpoint-compare>' '${_cb}/batch' '${_cb}/seq0' --seq 0 && '$<TARGET_FILE:llorch-checkpoint-compare>' '${_cb}/batch' '${_cb}/seq1' --seq 1")
set_tests_properties(capture_batch_sequences PROPERTIES FIXTURES_REQUIRED tiny_models TIMEOUT 120)
