# Regression tests of the readers (lib/read) on dumps written by the
# library's own writer. The allocation functions are wrapped so that the
# oom test can make the n-th one fail (see the source).
add_executable(test_read_regressions ${CMAKE_CURRENT_LIST_DIR}/test_read_regressions.c)
target_link_libraries(test_read_regressions PRIVATE llorch-checkpoint ${CJSON_LIBRARY})
target_link_options(test_read_regressions PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)
llorch_target(test_read_regressions)
foreach(case architecture oom)
  add_test(NAME read_${case}
           COMMAND bash -c "rm -rf '${LLORCH_TEST_DATA}/read-${case}' && '$<TARGET_FILE:test_read_regressions>' ${case} '${LLORCH_TEST_DATA}/read-${case}'")
endforeach()

# llorch_ckpt_dump_residual (lib/read/read_residual.c): the residual rows by
# layer and position that feed an engine (docs/FORMAT.md, "Fed runs"):
#   read_residual_api        argument checks and a hostile manifest, from memory
#   read_residual_<case>     real extractor dumps of the tiny llama (one step;
#                            -ub 2 -n 2; npz; safetensors; residuals as f16;
#                            a position repeated in a later step; --positions;
#                            --parallel 2): every layer's input and ffn_inp,
#                            all positions and a range cutting steps, equal
#                            numpy's rows bit for bit (read_residual_check.py);
#                            rows the dump lacks are one-line errors
add_executable(test_read_residual ${CMAKE_CURRENT_LIST_DIR}/test_read_residual.c)
target_link_libraries(test_read_residual PRIVATE llorch-checkpoint)
llorch_target(test_read_residual)
add_test(NAME read_residual_api COMMAND test_read_residual api)
if(LLORCH_PYTHON)
  foreach(case one steps npz safetensors f16 repeat positions parallel)
    add_test(NAME read_residual_${case}
             COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/read_residual.sh $<TARGET_FILE:test_read_residual>
                     $<TARGET_FILE:llorch-checkpoint-extractor> ${LLORCH_PYTHON}
                     ${CMAKE_CURRENT_LIST_DIR}/read_residual_check.py
                     ${CMAKE_CURRENT_BINARY_DIR}/read-residual/${case} ${case}
                     ${LLORCH_TEST_DATA}/tiny-llama-f32.gguf)
    set_tests_properties(read_residual_${case} PROPERTIES FIXTURES_REQUIRED tiny_models SKIP_RETURN_CODE 77
                         TIMEOUT 120)
  endforeach()
endif()
