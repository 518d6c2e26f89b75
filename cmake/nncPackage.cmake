# What `cmake --install` puts next to nnc and the runtime for other projects:
# the CMake package (nncConfig.cmake, nncConfigVersion.cmake, nncTargets.cmake,
# nncModel.cmake) and the pkg-config file nnrt.pc.  Both find the installed
# tree relative to their own location, so an install moved or made with
# `cmake --install --prefix DIR` still works.
include(CMakePackageConfigHelpers)
set(NNC_CMAKE_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/nnc)

install(EXPORT nncTargets NAMESPACE nnc:: FILE nncTargets.cmake DESTINATION ${NNC_CMAKE_INSTALL_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/nncConfig.cmake.in
  ${PROJECT_BINARY_DIR}/nncConfig.cmake
  INSTALL_DESTINATION ${NNC_CMAKE_INSTALL_DIR}
  PATH_VARS CMAKE_INSTALL_BINDIR)
# 0.x: a minor version may change the runtime ABI.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/nncConfig.cmake ${PROJECT_BINARY_DIR}/nncConfigVersion.cmake
  ${CMAKE_CURRENT_LIST_DIR}/nncModel.cmake
  DESTINATION ${NNC_CMAKE_INSTALL_DIR})

# pkg-config: prefix relative to the .pc file (${pcfiledir}).
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(NNC_PC_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
else()
  set(NNC_PC_DIR "${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endif()
file(RELATIVE_PATH NNC_PC_TO_PREFIX "${NNC_PC_DIR}" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" NNC_PC_TO_PREFIX "${NNC_PC_TO_PREFIX}")
foreach(kind LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
    set(NNC_PC_${kind} "${CMAKE_INSTALL_${kind}}")
  else()
    set(NNC_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}")
  endif()
endforeach()
configure_file(${CMAKE_CURRENT_LIST_DIR}/nnrt.pc.in ${PROJECT_BINARY_DIR}/nnrt.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/nnrt.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
