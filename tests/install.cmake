# An install that stands alone: cmake --install into a temporary prefix,
# moved, run without the build tree or the llama.cpp cache, and used by a
# project through find_package (tests/install_check.sh).
if(LLORCH_LLAMA_FIND_PACKAGE OR LLORCH_SANITIZE)
  return() # an installed llama.cpp stays where it is; a sanitized build is not installed
endif()
add_test(NAME install_prefix
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/install_check.sh ${CMAKE_BINARY_DIR}
    ${CMAKE_CURRENT_BINARY_DIR}/install-work)
set_tests_properties(install_prefix PROPERTIES TIMEOUT 300)
