# The noise floor of llorch-checkpoint-compare (--noise, docs/COMPARE.md):
# real dumps of llama.cpp (the extractor) and of llorch-ref-engine, checked
# through --json by tests/compare_noise.py. The tiny models come from the
# tiny_models fixture; stories260K from LLORCH_SHARED_MODELS, skipped
# where absent.
if(NOT LLORCH_PYTHON)
  return()     # cmake/python.cmake warned
endif()
set(_noise_tokens 1,450,1200,3000,12,7,99,2048,31999,5)
set(_noise_stories_tokens 1,403,407,261,378,432,383,286,261,376,298,315,421,395,317,426)

# compare_noise_test(NAME CASE MODEL TOKENS FAULT_LAYER)
function(compare_noise_test name case model tokens layer)
  add_test(NAME compare_noise_${name}
    COMMAND ${LLORCH_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/compare_noise.py
      --compare $<TARGET_FILE:llorch-checkpoint-compare>
      --extractor $<TARGET_FILE:llorch-checkpoint-extractor>
      --engine $<TARGET_FILE:llorch-ref-engine>
      --work ${CMAKE_CURRENT_BINARY_DIR}/compare-noise-work/${name}
      --model ${model} --tokens ${tokens} --layer ${layer} ${case})
  set_tests_properties(compare_noise_${name} PROPERTIES
    FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77 TIMEOUT 120)
endfunction()

set(_noise_llama ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
set(_noise_stories ${LLORCH_SHARED_MODELS}/stories260K.gguf)
foreach(case IN ITEMS pass fault fallback)
  compare_noise_test(${case}_tiny_llama ${case} ${_noise_llama} ${_noise_tokens} 1)
  compare_noise_test(${case}_stories260K ${case} ${_noise_stories} ${_noise_stories_tokens} 2)
endforeach()
compare_noise_test(bad_input bad-input ${_noise_llama} ${_noise_tokens} 1)
