# ONNX export and import (docs/onnx.md): the checker of python3-onnx,
# onnxruntime-node from build/ort (scripts/onnxruntime.sh) and PyTorch's
# fixtures; each test skips, saying so, where its tool or data is missing.
nnc_add_test(test_onnx SOURCES test_onnx.c sh_harness.c LIBS nnccore TIMEOUT 1200)
add_dependencies(test_onnx nnc nnrt)
# PREFIX_export_onnx of the generated header, on an object of nnc -c.
set(NNC_MODEL_COMPILER nnc)
set(NNC_MODEL_RUNTIME nnrt)
include(${PROJECT_SOURCE_DIR}/cmake/nncModel.cmake)
nnc_add_model(test_onnx ${PROJECT_SOURCE_DIR}/examples/mlp.nn)
unset(NNC_MODEL_COMPILER)
unset(NNC_MODEL_RUNTIME)
