# End-to-end: compile the examples with nnc, link, train, check thresholds.
nnc_add_test(test_e2e SOURCES test_e2e.c sh_harness.c TIMEOUT 1200)
add_dependencies(test_e2e nnc nnrt)
