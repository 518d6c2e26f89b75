# Tests of the compiler's back end.  Each row links the compiler files it
# exercises directly, so a test builds before the whole compiler does.

# Inline exp/log/tanh/sigmoid: JIT-compiled and compared with libm.
# The target machine is nnc's (compiler/target.c, through nnccore).
nnc_add_test(test_cg_math SOURCES test_cg_math.c LIBS nnccore m)

# The generated code, JIT-compiled in-process with MCJIT and run through the
# runtime: forward against a C reference, finite-difference gradients,
# optimizer updates, determinism, fused IR and memory plan, exact diagnostics.
# -rdynamic lets MCJIT resolve nnrt_barrier from the test executable.
nnc_add_test(test_codegen SOURCES test_codegen.c jit_harness.c sh_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_codegen PRIVATE -rdynamic)

# Convolution and pooling: forward against a naive C reference, gradients
# against finite differences and a reference backward pass, fused vs unfused,
# thread-count independence, a LeNet-shaped network.
nnc_add_test(test_conv SOURCES test_conv.c jit_harness.c LIBS nnccore nnrt)
target_link_options(test_conv PRIVATE -rdynamic)

# The runtime structs as the code generator describes them to LLVM
# (cg_abi.h) against nnrt.h's C layout, field by field by name.
nnc_add_test(test_abi SOURCES test_abi.c LIBS nnccore)

# Blocks and shared layers through the JIT: a block net equals the net
# written out, names by call site, a shared layer's summed gradients.
# The last test compiles and runs a program with the nnc command.
nnc_add_test(test_blocks SOURCES test_blocks.c jit_harness.c sh_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_blocks PRIVATE -rdynamic)
add_dependencies(test_blocks nnc nnrt)

# Dropout, concat, fan-out and residual connections: masks against the
# runtime's random stream, gradients against central differences, concat
# against a C reference, their diagnostics, and a training run of nnc.
nnc_add_test(test_layers SOURCES test_layers.c jit_harness.c sh_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_layers PRIVATE -rdynamic)
add_dependencies(test_layers nnc nnrt)

# Batch normalisation: train (batch statistics) and eval (running
# statistics) against a double C reference for dense and convolution
# positions, gradients against central differences, fused/unfused/naive,
# thread and chunk independence of the cross-chunk statistics.
nnc_add_test(test_norm SOURCES test_norm.c jit_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_norm PRIVATE -rdynamic)

# The cache blocking of the dense products: tiny and large cache sizes give
# the same bits, and agree with the reference kernels, on odd shapes,
# partial batches, 1-3 threads, both register tiles.
nnc_add_test(test_gemm SOURCES test_gemm.c jit_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_gemm PRIVATE -rdynamic)
