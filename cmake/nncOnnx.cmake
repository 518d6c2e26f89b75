# The ONNX schema's C bindings: protoc-c turns /usr/include/onnx/onnx.proto
# (libonnx-dev) into onnx.pb-c.c/.h in the build tree, which the exporter
# and the importer (compiler/onnx_*.c) build their ModelProto with and parse
# with (libprotobuf-c).  Sets NNC_ONNX_PB_SOURCES, NNC_ONNX_PB_DIR and
# NNC_PROTOBUF_C.
find_program(NNC_PROTOC_C protoc-c)
find_file(NNC_ONNX_PROTO onnx.proto PATHS /usr/include/onnx /usr/local/include/onnx NO_DEFAULT_PATH)
find_library(NNC_PROTOBUF_C protobuf-c)
find_path(NNC_PROTOBUF_C_INCLUDE protobuf-c/protobuf-c.h)
if(NOT NNC_PROTOC_C OR NOT NNC_ONNX_PROTO OR NOT NNC_PROTOBUF_C OR NOT NNC_PROTOBUF_C_INCLUDE)
  message(FATAL_ERROR "nnc needs protoc-c, onnx.proto and libprotobuf-c for ONNX: "
                      "apt-get install protobuf-c-compiler libprotobuf-c-dev libonnx-dev (scripts/deps.sh)")
endif()
set(NNC_ONNX_PB_DIR ${CMAKE_CURRENT_BINARY_DIR}/onnx_pb) # per directory: the fuzzing harnesses make their own
get_filename_component(nnc_onnx_proto_dir ${NNC_ONNX_PROTO} DIRECTORY)
add_custom_command(
  OUTPUT ${NNC_ONNX_PB_DIR}/onnx.pb-c.c ${NNC_ONNX_PB_DIR}/onnx.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${NNC_ONNX_PB_DIR}
  COMMAND ${NNC_PROTOC_C} --proto_path=${nnc_onnx_proto_dir} --c_out=${NNC_ONNX_PB_DIR} ${NNC_ONNX_PROTO}
  DEPENDS ${NNC_ONNX_PROTO}
  COMMENT "protoc-c: C bindings of onnx.proto"
  VERBATIM)
set(NNC_ONNX_PB_SOURCES ${NNC_ONNX_PB_DIR}/onnx.pb-c.c)
# generated code: not held to -Wpedantic
set_source_files_properties(${NNC_ONNX_PB_SOURCES} PROPERTIES GENERATED TRUE COMPILE_OPTIONS "-w")
include_directories(SYSTEM ${NNC_ONNX_PB_DIR} ${NNC_PROTOBUF_C_INCLUDE})
