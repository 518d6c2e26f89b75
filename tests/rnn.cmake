# Recurrent layers (issue #16): lstm and gru; forward against a C loop of
# PyTorch's formulas, gradients against central differences, thread
# independence, diagnostics, and examples/charlstm.nn trained on a slice.
nnc_add_test(test_rnn SOURCES test_rnn.c jit_harness.c sh_harness.c LIBS nnccore nnrt TIMEOUT 900)
target_link_options(test_rnn PRIVATE -rdynamic)
add_dependencies(test_rnn nnc nnrt)
