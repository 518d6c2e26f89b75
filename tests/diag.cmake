# Diagnostics: malformed programs and their exact messages, warnings, the
# nnc command's exit statuses and colours.
nnc_add_test(test_diag SOURCES test_diag.c LIBS nnccore)
add_dependencies(test_diag nnc)
