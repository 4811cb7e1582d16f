# Finds the C++ Actor Framework 0.17 as Debian 12 packages it (libcaf-dev), which ships
# headers and shared libraries but no CMake package file.
#
# Defines the imported targets CAF::core and CAF::io, and CAF_VERSION (e.g. 1706).

find_path(CAF_INCLUDE_DIR NAMES caf/config.hpp caf/all.hpp)
find_library(CAF_CORE_LIBRARY NAMES caf_core)
find_library(CAF_IO_LIBRARY NAMES caf_io)

if(CAF_INCLUDE_DIR)
  file(STRINGS "${CAF_INCLUDE_DIR}/caf/config.hpp" _caf_version_line
       REGEX "^#define CAF_VERSION [0-9]+")
  string(REGEX REPLACE "^#define CAF_VERSION ([0-9]+).*" "\\1" CAF_VERSION "${_caf_version_line}")
endif()

if(NOT CAF_INCLUDE_DIR OR NOT CAF_CORE_LIBRARY OR NOT CAF_IO_LIBRARY)
  set(CAF_FOUND FALSE)
  if(CAF_FIND_REQUIRED)
    message(FATAL_ERROR
      "CAF 0.17 not found (headers: ${CAF_INCLUDE_DIR}, caf_core: ${CAF_CORE_LIBRARY}, "
      "caf_io: ${CAF_IO_LIBRARY}). Install the Debian package 'libcaf-dev' "
      "(run scripts/install-deps).")
  endif()
  return()
endif()

if(CAF_VERSION LESS 1706 OR NOT CAF_VERSION LESS 1800)
  message(FATAL_ERROR "Levee needs CAF 0.17.6 or a later 0.17 release; found CAF_VERSION ${CAF_VERSION}. "
                      "Install Debian 12's 'libcaf-dev'.")
endif()

set(CAF_FOUND TRUE)
message(STATUS "Found CAF ${CAF_VERSION}: ${CAF_CORE_LIBRARY}")

add_library(CAF::core SHARED IMPORTED)
set_target_properties(CAF::core PROPERTIES
  IMPORTED_LOCATION "${CAF_CORE_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
  INTERFACE_LINK_LIBRARIES Threads::Threads)
add_library(CAF::io SHARED IMPORTED)
set_target_properties(CAF::io PROPERTIES
  IMPORTED_LOCATION "${CAF_IO_LIBRARY}"
  INTERFACE_LINK_LIBRARIES CAF::core)
