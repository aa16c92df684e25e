# Extract (llama.cpp), emit (llorch-ref-engine), compare: the extractor's
# files against an independent computation, and compare's first divergence.
set(_workflow_env EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor> ENGINE=$<TARGET_FILE:llorch-ref-engine>
                  COMPARE=$<TARGET_FILE:llorch-checkpoint-compare> PY=${LLORCH_PYTHON})

function(llorch_workflow_case case model_path tag)
  set(name workflow_${case}_${tag})
  set(preset f32)
  if(tag MATCHES "f16")
    set(preset f16)
  endif()
  add_test(NAME ${name}
           COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/workflow_cases.sh ${case} ${model_path} ${LLORCH_TEST_DATA}/${name}
                   ${preset})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "${_workflow_env}" FIXTURES_REQUIRED tiny_models
                                          SKIP_RETURN_CODE 77 TIMEOUT 180)
endfunction()

foreach(model tiny-gpt2-f32 tiny-gpt2-f16 tiny-llama-f32 tiny-llama-f16)
  llorch_workflow_case(reference ${LLORCH_TEST_DATA}/${model}.gguf ${model})
endforeach()
foreach(model tiny-llama-q8_0 tiny-llama-q4_K)
  llorch_workflow_case(quantized ${LLORCH_TEST_DATA}/${model}.gguf ${model})
endforeach()
foreach(model tiny-gpt2-f32 tiny-llama-f32)
  llorch_workflow_case(faults ${LLORCH_TEST_DATA}/${model}.gguf ${model})
  llorch_workflow_case(ubatch ${LLORCH_TEST_DATA}/${model}.gguf ${model})
endforeach()
# the real models in ../shared/models, where present (a fresh machine has none)
llorch_workflow_case(reference ${LLORCH_SHARED_MODELS}/stories260K.gguf stories260K)
llorch_workflow_case(faults ${LLORCH_SHARED_MODELS}/stories260K.gguf stories260K)
llorch_workflow_case(reference ${LLORCH_SHARED_MODELS}/synthetic-random-gpt2.gguf shared-gpt2-f16)
llorch_workflow_case(quantized ${LLORCH_SHARED_MODELS}/synthetic-random-qwen2.gguf shared-qwen2-q8_0)

# The docs against the programs: every option of every program is in its
# --help and in README.md/docs/*.md/engine/README.md, and every option a
# --help names is accepted (options_check.py); the README's sh and python
# snippets run as written, each Python one against the form of dump it
# names (readme_snippets.py).
if(LLORCH_PYTHON)
  set(_docs_programs $<TARGET_FILE:llorch-checkpoint-extractor> $<TARGET_FILE:llorch-checkpoint-compare>
                     $<TARGET_FILE:llorch-ref-engine> $<TARGET_FILE:llorch-make-tiny-model>)
  add_test(NAME docs_options COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/options_check.py ${PROJECT_SOURCE_DIR}
                                     ${_docs_programs})
  add_test(NAME docs_readme_snippets
           COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/readme_snippets.py ${PROJECT_SOURCE_DIR} ${_docs_programs}
                   ${LLORCH_TEST_DATA}/docs_readme_snippets)
  set_tests_properties(docs_options PROPERTIES TIMEOUT 120)
  set_tests_properties(docs_readme_snippets PROPERTIES TIMEOUT 300)
endif()

# The house rules (tests/layering_check.py): lib/, programs/ and engine/
# are one-way stacks of files (no file calls, directly or through others,
# a file that calls it) and no file is over 600 lines.
if(LLORCH_PYTHON)
  add_test(NAME layering COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/layering_check.py ${PROJECT_SOURCE_DIR})
endif()
