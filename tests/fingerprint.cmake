# The model fingerprint (docs/FORMAT.md, "The model fingerprint";
# tests/fingerprint_check.py):
#   fingerprint_values   the C library's, the Python package's and the Rust
#                        crate's fingerprints of the tiny models, ../shared/models,
#                        gguf-py-written corner cases and a sparse 7 GB Q8_0
#                        file equal each other and the test's own computation
#                        (gguf-py's reader, numpy, hashlib); different models
#                        differ; the 7 GB file costs well under a second; bad
#                        files are one-line errors
#   fingerprint_compare  extractor and engine dumps record it; compare refuses
#                        two dumps of different models of one shape (exit 2, one
#                        line), compares them with --allow-model-mismatch (a
#                        warning), warns for a dump without one; the reader
#                        refuses malformed ones; the Python writer records one
add_executable(test_gguf_fingerprint ${CMAKE_CURRENT_LIST_DIR}/test_gguf_fingerprint.c)
target_link_libraries(test_gguf_fingerprint PRIVATE llorch-checkpoint)
llorch_target(test_gguf_fingerprint)
if(NOT LLORCH_PYTHON)
  return()
endif()
set(_fp_env FP_C=$<TARGET_FILE:test_gguf_fingerprint> EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor>
            ENGINE=$<TARGET_FILE:llorch-ref-engine> COMPARE=$<TARGET_FILE:llorch-checkpoint-compare>
            MAKER=$<TARGET_FILE:llorch-make-tiny-model> CRATE=${PROJECT_SOURCE_DIR}/rust
            CARGO_TARGET_DIR=${CMAKE_BINARY_DIR}/rust-target SHARED_MODELS=${PROJECT_SOURCE_DIR}/../shared/models
            PY=${LLORCH_PYTHON} LLAMA_CPP_DIR=${LLAMA_CPP_DIR})
foreach(case values compare)
  add_test(NAME fingerprint_${case} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/fingerprint_cases.sh ${case}
                                            ${CMAKE_CURRENT_BINARY_DIR}/fingerprint-work/${case} ${LLORCH_TEST_DATA})
  set_tests_properties(fingerprint_${case} PROPERTIES ENVIRONMENT "${_fp_env}" FIXTURES_REQUIRED tiny_models
                                                      TIMEOUT 600)
endforeach()
# the Rust side builds the crate: one cargo at a time
set_tests_properties(fingerprint_values PROPERTIES RESOURCE_LOCK rust_cargo)
