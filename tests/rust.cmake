# Tests of the Rust crate (rust/), all skipped (77) where cargo is absent:
#   rust_cargo_test            the crate's own unit and doc tests
#   rust_writer_vs_c_{npy,npz} the known dump of test_rust_writer.c (C writer
#                              API) and rust/examples/write_known.rs (the same
#                              values, computed in Rust): compare --preset exact
#                              passes all 21 checkpoints, the files are the same
#                              bytes, the manifests equal but for the producer,
#                              and one value one ulp off fails at its checkpoint
#   rust_reader_vs_numpy_*     a real extractor dump of a tiny model read by
#                              rust/examples/read_dump.rs equals np.load of the
#                              same files, every value bit for bit; damaged
#                              dumps are errors
#   rust_reader_numpy_npz      an np.savez archive read by the Rust reader
#   rust_residual_vs_numpy_*   Dump::residual (rust/examples/residual_rows.rs)
#                              and the C llorch_ckpt_dump_residual on the same
#                              extractor dumps (read_residual.sh: one step,
#                              -ub 2 -n 2, npz, safetensors, f16, a repeated
#                              position, --positions, --parallel 2) equal
#                              numpy's rows bit for bit
add_executable(test_rust_writer ${CMAKE_CURRENT_LIST_DIR}/test_rust_writer.c)
target_link_libraries(test_rust_writer PRIVATE llorch-checkpoint)
llorch_target(test_rust_writer)

set(_rust_work ${CMAKE_CURRENT_BINARY_DIR}/rust-work)
set(_rust_env CRATE=${PROJECT_SOURCE_DIR}/rust CARGO_TARGET_DIR=${CMAKE_BINARY_DIR}/rust-target
              C_WRITER=$<TARGET_FILE:test_rust_writer> EXTRACTOR=$<TARGET_FILE:llorch-checkpoint-extractor>
              COMPARE=$<TARGET_FILE:llorch-checkpoint-compare> CHECK=${CMAKE_CURRENT_LIST_DIR}/rust_reader_check.py
              PY=${LLORCH_PYTHON} READ_RESIDUAL=$<TARGET_FILE:test_read_residual>
              RESIDUAL_SH=${CMAKE_CURRENT_LIST_DIR}/read_residual.sh
              RESIDUAL_CHECK=${CMAKE_CURRENT_LIST_DIR}/read_residual_check.py)
function(llorch_rust_test name)
  add_test(NAME rust_${name} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/rust_cases.sh ${ARGN})
  # one cargo at a time: the first builds the crate, the others reuse it
  set_tests_properties(rust_${name} PROPERTIES ENVIRONMENT "${_rust_env}" SKIP_RETURN_CODE 77 TIMEOUT 600
                       RESOURCE_LOCK rust_cargo LABELS rust)
endfunction()
llorch_rust_test(cargo_test cargo-test)
foreach(form npy npz)
  llorch_rust_test(writer_vs_c_${form} writer-vs-c ${form} ${_rust_work}/writer-${form})
endforeach()
foreach(form npy npz safetensors)
  llorch_rust_test(reader_vs_numpy_${form} reader-vs-numpy ${form} ${_rust_work}/reader-${form}
                   ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
  set_tests_properties(rust_reader_vs_numpy_${form} PROPERTIES FIXTURES_REQUIRED tiny_models)
endforeach()
llorch_rust_test(reader_numpy_npz reader-numpy-npz ${_rust_work}/numpy-npz)
foreach(case one steps npz safetensors f16 repeat positions parallel)
  llorch_rust_test(residual_vs_numpy_${case} residual-vs-numpy ${case} ${_rust_work}/residual-${case}
                   ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
  set_tests_properties(rust_residual_vs_numpy_${case} PROPERTIES FIXTURES_REQUIRED tiny_models)
endforeach()
