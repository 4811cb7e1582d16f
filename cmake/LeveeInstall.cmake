# `cmake --install` (issue 18, the C++ package): the `levee` binary, the libraries, the
# headers, the .proto files, a CMake package (find_package(Levee CONFIG REQUIRED), then
# Levee::levee for the runtime or Levee::client for the client alone) and pkg-config
# files. Included once from the top CMakeLists.txt, after every library exists, so that
# the folders' own CMakeLists stay about building.
#
# Layout under the prefix:
#   bin/levee
#   include/levee/*.hpp              the public headers (#include <levee/levee.hpp>)
#   include/levee/internal/<folder>/ the headers they stand on (actors/, limits/, net/ and
#                                    their generated *.pb.h, ...), which include each
#                                    other as "limits/status.hpp": the package puts that
#                                    directory on the include path for you
#   lib/liblevee_*.a                 static libraries
#   lib/cmake/Levee/                 LeveeConfig.cmake, its version file, the targets,
#                                    FindCAF.cmake (Debian ships no CMake file for CAF)
#   lib/pkgconfig/levee.pc, levee-client.pc, levee-node.pc
#   share/levee/proto/*.proto        the wire protocol (net/PROTOCOL.md), for other languages
#   share/doc/levee/EXTENDING.md, examples/   the extension guide and its programs

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(LEVEE_INSTALL_INTERNAL_INCLUDE "${CMAKE_INSTALL_INCLUDEDIR}/levee/internal")
set(LEVEE_INSTALL_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/Levee")

# Every library, in dependency order (the folders' layers, ARCHITECTURE.md "Layers").
set(LEVEE_PACKAGE_LIBRARIES
  levee_base levee_limits levee_http levee_actors levee_wire levee_client levee_net
  levee_persistence levee_streams levee_metadata levee_events levee_query
  levee_server levee_satellite levee_broker levee_load levee_stats_text levee_metrics_text
  levee_node_http levee_node)
foreach(lib IN LISTS LEVEE_PACKAGE_LIBRARIES)
  if(NOT TARGET ${lib})
    message(FATAL_ERROR "LeveeInstall.cmake: no library ${lib}; keep LEVEE_PACKAGE_LIBRARIES "
                        "in step with the folders' CMakeLists.txt")
  endif()
endforeach()
# Folders whose headers the installed headers may reach.
set(LEVEE_PACKAGE_HEADER_DIRS
  base limits http actors net persistence streams metadata events query server satellite broker load)

# The folders set their include directories as paths in the source and build trees;
# an installed target must name paths under the prefix instead. Each path is kept for
# the build and the installed internal directory is added for consumers.
foreach(lib IN LISTS LEVEE_PACKAGE_LIBRARIES)
  get_target_property(dirs ${lib} INTERFACE_INCLUDE_DIRECTORIES)
  set(wrapped "")
  if(dirs)
    foreach(d IN LISTS dirs)
      list(APPEND wrapped "$<BUILD_INTERFACE:${d}>")
    endforeach()
  endif()
  list(APPEND wrapped "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
                      "$<INSTALL_INTERFACE:${LEVEE_INSTALL_INTERNAL_INCLUDE}>")
  set_target_properties(${lib} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${wrapped}")
endforeach()

# The names a program links: the runtime (actors, the wire, the client, limits), the
# client alone (no CAF), and the node (the runtime and every role, for a main() of one's own).
add_library(levee_package_runtime INTERFACE)
target_link_libraries(levee_package_runtime INTERFACE levee_net levee_actors levee_client)
set_target_properties(levee_package_runtime PROPERTIES EXPORT_NAME levee)
add_library(levee_package_client INTERFACE)
target_link_libraries(levee_package_client INTERFACE levee_client)
set_target_properties(levee_package_client PROPERTIES EXPORT_NAME client)
# A node's roles run from one's own main() (include/levee/node.hpp): everything above.
add_library(levee_package_node INTERFACE)
target_link_libraries(levee_package_node INTERFACE levee_node levee_package_runtime)
set_target_properties(levee_package_node PROPERTIES EXPORT_NAME node)
# In the build tree too, so examples/ links the same names either way.
add_library(Levee::levee ALIAS levee_package_runtime)
add_library(Levee::client ALIAS levee_package_client)
add_library(Levee::node ALIAS levee_package_node)

install(TARGETS levee RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${LEVEE_PACKAGE_LIBRARIES} levee_package_runtime levee_package_client
                levee_package_node
        EXPORT LeveeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT LeveeTargets NAMESPACE Levee:: DESTINATION ${LEVEE_INSTALL_CMAKE_DIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/levee/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/levee FILES_MATCHING PATTERN "*.hpp")
# The extension guide and the examples it points to, beside the headers' docs.
install(FILES ${PROJECT_SOURCE_DIR}/include/levee/EXTENDING.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
foreach(dir IN LISTS LEVEE_PACKAGE_HEADER_DIRS)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/
          DESTINATION ${LEVEE_INSTALL_INTERNAL_INCLUDE}/${dir} FILES_MATCHING PATTERN "*.hpp")
  # The generated protobuf headers (a client decodes answers with them).
  install(DIRECTORY ${PROJECT_BINARY_DIR}/${dir}/
          DESTINATION ${LEVEE_INSTALL_INTERNAL_INCLUDE}/${dir} FILES_MATCHING PATTERN "*.pb.h"
          PATTERN "CMakeFiles" EXCLUDE)
  file(GLOB protos ${PROJECT_SOURCE_DIR}/${dir}/*.proto)
  if(protos)
    install(FILES ${protos} DESTINATION ${CMAKE_INSTALL_DATADIR}/levee/proto/${dir})
  endif()
endforeach()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/LeveeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/LeveeConfig.cmake INSTALL_DESTINATION ${LEVEE_INSTALL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/LeveeConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/LeveeConfig.cmake ${PROJECT_BINARY_DIR}/LeveeConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake
        DESTINATION ${LEVEE_INSTALL_CMAKE_DIR})

# pkg-config files find the prefix from where they are (${pcfiledir}), so that an
# install with --prefix, or a moved prefix, still works.
file(RELATIVE_PATH LEVEE_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
# ISA-L is linked when persistence/ found it (a cache variable, so visible here).
set(LEVEE_PC_ISAL "")
if(ISAL_LIBRARY)
  set(LEVEE_PC_ISAL "-lisal")
endif()
foreach(pc levee levee-client levee-node)
  configure_file(${PROJECT_SOURCE_DIR}/cmake/${pc}.pc.in ${PROJECT_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
