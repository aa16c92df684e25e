# The Python that runs the numpy-based checks of the tests, found once:
# LLORCH_PYTHON when given, else the first python3 that imports numpy (on
# Debian, /usr/bin/python3 with python3-numpy). Without one, the tests that
# need it are left out with a warning.
set(LLORCH_PYTHON "" CACHE FILEPATH "A python3 with numpy for the tests (empty: search)")
if(NOT LLORCH_PYTHON)
  find_program(_llorch_python_path NAMES python3)
  foreach(candidate ${_llorch_python_path} /usr/bin/python3)
    if(EXISTS "${candidate}")
      execute_process(COMMAND "${candidate}" -c "import numpy" RESULT_VARIABLE _numpy_rc OUTPUT_QUIET ERROR_QUIET)
      if(_numpy_rc EQUAL 0)
        set(LLORCH_PYTHON "${candidate}" CACHE FILEPATH "A python3 with numpy for the tests" FORCE)
        break()
      endif()
    endif()
  endforeach()
  unset(_llorch_python_path CACHE)
endif()
if(NOT LLORCH_PYTHON)
  message(WARNING "no python3 with numpy found (Debian: apt install python3-numpy): its tests are left out")
endif()
