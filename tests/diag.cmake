# Diagnostics: malformed programs and their exact messages, warnings, the
# nnc command's exit statuses and colours.
nnc_add_test(test_diag SOURCES test_diag.c sh_harness.c LIBS nnccore)
add_dependencies(test_diag nnc)
# Robustness of the training binaries: kill -9 while checkpointing, exact
# resume, divergence, damaged data and checkpoints.
nnc_add_test(test_robust SOURCES test_robust.c sh_harness.c LIBS ZLIB::ZLIB TIMEOUT 600)
add_dependencies(test_robust nnc nnrt)
# The nnc command's outputs, command line and interruptions (test_driver.c).
nnc_add_test(test_driver SOURCES test_driver.c sh_harness.c LIBS nnccore nnrt TIMEOUT 600)
add_dependencies(test_driver nnc nnrt)
