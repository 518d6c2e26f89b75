# The front end: lexer, parser, AST dump and their diagnostics.
nnc_add_test(test_parser SOURCES test_parser.c LIBS nnccore)
