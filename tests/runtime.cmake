# The runtime's tests: RNG, the parallel team, data loaders (IDX, CSV,
# synthetic), checkpoints, and nnrt_main end to end with hand-written model
# bodies.  Uses the real Fashion-MNIST files when they are installed.
nnc_add_test(test_runtime
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_runtime.c
  LIBS nnrt
  TIMEOUT 120)
