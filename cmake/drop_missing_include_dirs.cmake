# The pip-installed ROS 2 wheels export include directories of the machine they were built on;
# CMake rejects imported targets whose include dirs do not exist. Drop those (a no-op on an apt ROS 2).
# Include this after the find_package() calls.
get_property(_t2d_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_tgt IN LISTS _t2d_targets)
  get_target_property(_dirs ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
  if(_dirs)
    set(_kept "")
    foreach(_d IN LISTS _dirs)
      if(EXISTS "${_d}" OR _d MATCHES "^\\$<")
        list(APPEND _kept "${_d}")
      endif()
    endforeach()
    set_target_properties(${_tgt} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
  endif()
endforeach()
