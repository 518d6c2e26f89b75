# End-to-end: compile the examples with nnc, link, train, check thresholds.
nnc_add_test(test_e2e SOURCES test_e2e.c sh_harness.c TIMEOUT 1200)
add_dependencies(test_e2e nnc nnrt)
# --plot's SVGs through real tools: xmllint (libxml2-utils) parses them,
# rsvg-convert (librsvg2-bin) renders the decision boundary.
nnc_add_test(test_plots SOURCES test_plots.c sh_harness.c LIBS ZLIB::ZLIB m TIMEOUT 600)
add_dependencies(test_plots nnc nnrt)
