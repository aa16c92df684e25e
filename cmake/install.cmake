# What `cmake --install build --prefix P` adds besides the programs, the
# libraries and the headers (installed where they are defined):
#   P/lib             the llama.cpp and ggml shared libraries the programs
#                     were linked with (from the cache, or LLAMA_CPP_DIR's
#                     build); they find each other by $ORIGIN, the programs
#                     by $ORIGIN/../lib; P/include their headers
#   P/lib/cmake/llorch-checkpoint   a package config: find_package(llorch-checkpoint)
#                     gives llorch::checkpoint (the dump format: writer,
#                     reader, compare) and llorch::capture (llama.cpp's side)
include(CMakePackageConfigHelpers)

if(NOT LLORCH_LLAMA_FIND_PACKAGE)
  file(GLOB _llorch_llama_libs "${LLAMA_PREFIX}/lib/libllama.so*" "${LLAMA_PREFIX}/lib/libggml*.so*")
  file(GLOB _llorch_llama_headers "${LLAMA_PREFIX}/include/*.h")
  install(FILES ${_llorch_llama_libs} DESTINATION lib)
  install(FILES ${_llorch_llama_headers} DESTINATION include) # llorch_capture.h includes llama.h
  set(LLORCH_CONFIG_LLAMA_LIBS "\${_llorch_prefix}/lib/libllama.so;\${_llorch_prefix}/lib/libggml.so;\${_llorch_prefix}/lib/libggml-base.so")
else()
  get_target_property(_llama_location llama LOCATION)
  set(LLORCH_CONFIG_LLAMA_LIBS "${_llama_location};ggml::ggml")
endif()

configure_file(${PROJECT_SOURCE_DIR}/cmake/llorch-checkpointConfig.cmake.in
               ${CMAKE_BINARY_DIR}/llorch-checkpointConfig.cmake @ONLY)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/llorch-checkpointConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/llorch-checkpointConfig.cmake
              ${CMAKE_BINARY_DIR}/llorch-checkpointConfigVersion.cmake
        DESTINATION lib/cmake/llorch-checkpoint)
