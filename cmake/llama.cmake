# Finds llama.cpp: an installed one (LLORCH_LLAMA_FIND_PACKAGE), the user's
# source tree (LLAMA_CPP_DIR), or by default the pinned, patched source that
# scripts/llama-cpp.sh fetches from the npm registry and caches per machine.
set(_llama_info "${CMAKE_BINARY_DIR}/llama-cpp.env")
if(LLORCH_LLAMA_FIND_PACKAGE)
  set(ENV{LLORCH_VOCAB_ONLY} 1)
  set(ENV{LLAMA_CPP_DIR} "")
else()
  set(ENV{LLORCH_VOCAB_ONLY} 0)
  set(ENV{LLAMA_CPP_DIR} "${LLAMA_CPP_DIR}")
endif()
if(LLORCH_LLAMA_PORTABLE)
  set(ENV{LLORCH_LLAMA_PORTABLE} 1)
else()
  set(ENV{LLORCH_LLAMA_PORTABLE} 0)
endif()
set(ENV{LLORCH_GPU} "${LLORCH_GPU}")
set(ENV{LLORCH_CUDA_ARCHS} "${LLORCH_CUDA_ARCHS}")
execute_process(
  COMMAND bash "${PROJECT_SOURCE_DIR}/scripts/llama-cpp.sh" "${_llama_info}"
  RESULT_VARIABLE _llama_rc)
if(NOT _llama_rc EQUAL 0)
  message(FATAL_ERROR "llama.cpp could not be resolved (see the line above)")
endif()

file(STRINGS "${_llama_info}" _llama_lines)
foreach(_line IN LISTS _llama_lines)
  if(_line MATCHES "^([A-Z_]+)=(.*)$")
    set(${CMAKE_MATCH_1} "${CMAKE_MATCH_2}")
  endif()
endforeach()

# A new prefix (another llama.cpp, other build options) must not keep
# finding the old one through CMake's cached package locations.
if(NOT "${LLAMA_PREFIX}" STREQUAL "${LLORCH_LAST_LLAMA_PREFIX}")
  unset(llama_DIR CACHE)
  unset(ggml_DIR CACHE)
endif()
set(LLORCH_LAST_LLAMA_PREFIX "${LLAMA_PREFIX}" CACHE INTERNAL "")

if(LLORCH_LLAMA_FIND_PACKAGE)
  find_package(llama CONFIG REQUIRED)
  set(LLAMA_SOURCE "installed:${llama_DIR}")
  if(DEFINED LLAMA_BUILD_COMMIT)
    set(LLAMA_COMMIT "${LLAMA_BUILD_COMMIT}")
  endif()
  set(LLAMA_PATCHED -1)    # unknown: each dump's manifest records whether the patch's names were seen
else()
  find_package(llama CONFIG REQUIRED PATHS "${LLAMA_PREFIX}" NO_DEFAULT_PATH)
endif()
find_package(ggml CONFIG REQUIRED HINTS "${LLAMA_PREFIX}")

if(LLAMA_PATCHED EQUAL -1)
  set(_patched "patch unknown (installed; each dump records whether the patch's names were seen)")
elseif(LLAMA_PATCHED)
  set(_patched "patched (cache_k, cache_v, attn_out_proj named)")
else()
  set(_patched "unpatched (checkpoints found by graph structure)")
endif()
if(LLORCH_GPU)
  set(_patched "${_patched}, with ${LLORCH_GPU}")
endif()
message(STATUS "llama.cpp: commit ${LLAMA_COMMIT}, from ${LLAMA_SOURCE}, ${_patched}")
message(STATUS "llama.cpp: vocab files in ${LLAMA_VOCAB_DIR}")
