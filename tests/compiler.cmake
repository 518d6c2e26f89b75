# Tests of the compiler's back end.  Each row links the compiler files it
# exercises directly, so a test builds before the whole compiler does.

# Inline exp/log/tanh/sigmoid: JIT-compiled and compared with libm.
nnc_add_test(test_cg_math SOURCES test_cg_math.c
  ${PROJECT_SOURCE_DIR}/compiler/cg_math.c ${PROJECT_SOURCE_DIR}/compiler/util.c
  LIBS LLVM m)
target_include_directories(test_cg_math PRIVATE ${PROJECT_SOURCE_DIR}/compiler ${LLVM_INCLUDE_DIRS})
