# Data-parallel training under mpirun (docs/distributed.md); every test
# skips itself, with a message, where MPI or the runtime's MPI support is
# missing.
nnc_add_test(test_mpi SOURCES test_mpi.c sh_harness.c LIBS m TIMEOUT 900)
add_dependencies(test_mpi nnc nnrt)
if(TARGET nnrt_mpi)
  add_dependencies(test_mpi nnrt_mpi)
endif()
