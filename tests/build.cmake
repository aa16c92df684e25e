# The llama.cpp build script: bad input, and the warm cache.
add_test(NAME llama_cpp_script_bad_input
         COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/llama_cpp_script_cases.sh ${PROJECT_SOURCE_DIR}/scripts/llama-cpp.sh
                 ${CMAKE_BINARY_DIR}/test-data/llama-cpp-script "${LLAMA_TARBALL}")
set_tests_properties(llama_cpp_script_bad_input PROPERTIES TIMEOUT 300)

if(LLAMA_SOURCE MATCHES "^npm:")
  # A second resolution on this machine reuses the cached build: it prints
  # "using cached build" and finishes in seconds.
  add_test(NAME llama_cpp_script_warm_cache
           COMMAND bash -c "bash '${PROJECT_SOURCE_DIR}/scripts/llama-cpp.sh' '${CMAKE_BINARY_DIR}/test-data/warm.env' 2>&1 | tee /dev/stderr | grep -q 'using cached build ${LLAMA_PREFIX}'")
  set_tests_properties(llama_cpp_script_warm_cache PROPERTIES TIMEOUT 30 ENVIRONMENT "LLAMA_CPP_DIR=")
endif()
