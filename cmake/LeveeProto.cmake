# levee_protobuf_cpp(OUT_VAR proto_file): runs protoc on proto_file (in the current source
# directory) into the current binary directory, so that it is included as
# "<folder>/<name>.pb.h" with the build root on the include path; sets OUT_VAR to the .cc.
function(levee_protobuf_cpp out_var proto)
  get_filename_component(name ${proto} NAME_WE)
  set(cc ${CMAKE_CURRENT_BINARY_DIR}/${name}.pb.cc)
  add_custom_command(
    OUTPUT ${cc} ${CMAKE_CURRENT_BINARY_DIR}/${name}.pb.h
    COMMAND protobuf::protoc --cpp_out=${CMAKE_CURRENT_BINARY_DIR} -I ${CMAKE_CURRENT_SOURCE_DIR}
            ${CMAKE_CURRENT_SOURCE_DIR}/${proto}
    DEPENDS ${proto} protobuf::protoc
    COMMENT "protoc ${proto}")
  set(${out_var} ${cc} PARENT_SCOPE)
endfunction()
