# Sequences (issue #16): token inputs, per-position labels, embedding,
# positional embedding, layernorm/rmsnorm, matmul, heads, causal softmax,
# attention; forward against a C reference, gradients against central
# differences, thread independence, and training runs of the examples.
nnc_add_test(test_seq SOURCES test_seq.c jit_harness.c sh_harness.c LIBS nnccore nnrt TIMEOUT 600)
target_link_options(test_seq PRIVATE -rdynamic)
add_dependencies(test_seq nnc nnrt)
