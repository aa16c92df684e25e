# The compare side of the library: the safe readers, the comparison and the
# reports. Needs cJSON and libdeflate only (already linked by the library).
target_sources(llorch-checkpoint PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/read.c
  ${CMAKE_CURRENT_LIST_DIR}/read_container.c
  ${CMAKE_CURRENT_LIST_DIR}/compare.c
  ${CMAKE_CURRENT_LIST_DIR}/report.c)
