# nnc_add_model(<target> <file.nn> [PREFIX <name>] [INFERENCE_ONLY] [OPTIONS <nnc flags>...])
#
# Compiles a .nn network with nnc at build time and links it into <target>:
# the object and its C header go to ${CMAKE_CURRENT_BINARY_DIR}/nnc_models/<target>/,
# named after PREFIX or else the file (models/mlp.nn -> mlp.o, mlp.h); that
# directory is added to <target>'s include path (`#include "mlp.h"`), and the
# target links the nnc runtime.  nnc runs again when the .nn file or nnc
# changes.  Call it in the directory that creates <target>.
#
#   PREFIX name       symbol prefix (nnc --prefix): name_new, name_infer, ...;
#                     default: the model name inside the file.  Give one when
#                     the same .nn file goes into one program twice.
#   INFERENCE_ONLY    leave the training step out (nnc --inference-only)
#   OPTIONS ...       more nnc flags, e.g. -O3
#
# Which nnc and runtime: the variables NNC_MODEL_COMPILER (an executable
# target, default nnc::nnc) and NNC_MODEL_RUNTIME (a library target, default
# nnc::nnrt; nnc::nnrt_shared for the shared library).
function(nnc_add_model target file)
  cmake_parse_arguments(PARSE_ARGV 2 NNC "INFERENCE_ONLY" "PREFIX" "OPTIONS")
  if(NNC_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "nnc_add_model: unexpected arguments: ${NNC_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET ${target})
    message(FATAL_ERROR "nnc_add_model: '${target}' is not a target")
  endif()
  set(compiler nnc::nnc)
  if(NNC_MODEL_COMPILER)
    set(compiler ${NNC_MODEL_COMPILER})
  endif()
  set(runtime nnc::nnrt)
  if(NNC_MODEL_RUNTIME)
    set(runtime ${NNC_MODEL_RUNTIME})
  endif()

  get_filename_component(source "${file}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  get_filename_component(name "${source}" NAME_WE)
  set(flags -c)
  if(NNC_PREFIX)
    set(name ${NNC_PREFIX})
    list(APPEND flags --prefix ${NNC_PREFIX})
  endif()
  if(NNC_INFERENCE_ONLY)
    list(APPEND flags --inference-only)
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/nnc_models/${target}")
  set(object "${dir}/${name}.o")
  set(header "${dir}/${name}.h")
  file(MAKE_DIRECTORY "${dir}")
  add_custom_command(
    OUTPUT "${object}" "${header}"
    COMMAND ${compiler} "${source}" ${flags} ${NNC_OPTIONS} -o "${object}" --header "${header}"
    DEPENDS "${source}" "$<TARGET_FILE:${compiler}>"
    COMMENT "nnc: compiling ${file} for ${target}"
    VERBATIM)
  set_source_files_properties("${object}" PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  target_sources(${target} PRIVATE "${object}" "${header}")
  target_include_directories(${target} PRIVATE "${dir}")
  target_link_libraries(${target} PRIVATE ${runtime})
endfunction()
