# ONNX export and import (docs/onnx.md): the checker of python3-onnx,
# onnxruntime-node from build/ort (scripts/onnxruntime.sh) and PyTorch's
# fixtures; each test skips, saying so, where its tool or data is missing.
nnc_add_test(test_onnx SOURCES test_onnx.c sh_harness.c LIBS nnccore TIMEOUT 1200)
add_dependencies(test_onnx nnc nnrt)
