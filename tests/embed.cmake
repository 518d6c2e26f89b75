# Embedding networks in C programs: `nnc -c` and its header, the instance API
# (runtime/api.c), the independence of instances (also across threads), and
# the installed tree (CMake package, pkg-config, examples/embed) used by
# projects of their own.  The models are compiled by the same nnc_add_model()
# that the installed package gives users, here bound to the build tree's
# nnc and runtime: moons twice (with training, and inference-only under the
# prefix moons_inf), mlp, linear and tests/fixtures/recipe.nn (a training recipe), in
# one test program.
set(NNC_MODEL_COMPILER nnc)
set(NNC_MODEL_RUNTIME nnrt)
include(${PROJECT_SOURCE_DIR}/cmake/nncModel.cmake)

find_package(Threads REQUIRED)
nnc_add_test(test_embed SOURCES test_embed.c sh_harness.c LIBS Threads::Threads TIMEOUT 600)
nnc_add_model(test_embed ${PROJECT_SOURCE_DIR}/examples/moons.nn)
nnc_add_model(test_embed ${PROJECT_SOURCE_DIR}/examples/moons.nn PREFIX moons_inf INFERENCE_ONLY)
nnc_add_model(test_embed ${PROJECT_SOURCE_DIR}/examples/mlp.nn)
nnc_add_model(test_embed ${PROJECT_SOURCE_DIR}/examples/linear.nn)
nnc_add_model(test_embed ${PROJECT_SOURCE_DIR}/tests/fixtures/recipe.nn)
target_compile_definitions(test_embed PRIVATE
  NNC_CMAKE_COMMAND="${CMAKE_COMMAND}"
  NNC_LIBDIR="${CMAKE_INSTALL_LIBDIR}"
  NNC_SANITIZED=$<BOOL:${NNC_SANITIZE}>)
# The install tests copy these from the build tree.
add_dependencies(test_embed nnc nnrt nnrt_shared)
unset(NNC_MODEL_COMPILER)
unset(NNC_MODEL_RUNTIME)
