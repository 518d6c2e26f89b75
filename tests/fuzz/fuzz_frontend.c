/*
 * fuzz_frontend.c - libFuzzer harness over the whole front and middle end:
 * bytes -> nnc_parse -> nnc_ast_dump -> nnc_sema -> nnc_autodiff ->
 * nnc_add_inference_tail -> nnc_fuse -> nnc_plan -> ir_dump, exactly the
 * calls compiler/main.c makes before lowering.
 *
 * Findings are crashes and sanitizer reports, internal errors (they exit
 * with status 3, which libFuzzer reports as "fuzz target exited"), leaks,
 * and broken promises between the phases, which abort:
 *   - a phase that fails has reported at least one error;
 *   - a phase that reported an error has failed;
 *   - every diagnostic starts with the file name, a source line, a caret
 *     line, "hint:" or a note, and names a line inside the file.
 * Run it with scripts/fuzz.sh; the seeds are in corpus_frontend/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "ir.h"
#include "util.h"

#define PATH "fuzz.nn"

static void fail(const char *why, const char *diags)
{
	fprintf(stderr, "fuzz_frontend: %s\n--- diagnostics ---\n%s\n", why, diags ? diags : "");
	abort();
}

/* " 12 | text": a source line as diag.c shows it. */
static int is_source_line(const char *p)
{
	if (*p != ' ')
		return 0;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	return p[0] == ' ' && p[1] == '|';
}

/* Every line of the output is a diagnostic head, a source line, a caret
 * line or a hint, and every head names a line of the program. */
static void check_format(const char *out, int nlines)
{
	for (const char *p = out; *p;) {
		const char *e = strchr(p, '\n');
		int line, col;
		if (!strncmp(p, PATH ":", sizeof PATH)) {
			if (sscanf(p + sizeof PATH, "%d:%d:", &line, &col) != 2 || line < 1 || col < 1 ||
			    line > nlines + 1)
				fail("a diagnostic names no line of the file", out);
		} else if (strncmp(p, "hint: ", 6) && strncmp(p, "      | ", 8) && strncmp(p, "nnc: error: ", 12) &&
			   !is_source_line(p)) {
			fail("a diagnostic line of unknown form", out);
		}
		if (!e)
			break;
		p = e + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1 << 16))
		return 0;
	/* The driver refuses a file with a NUL byte before parsing it. */
	if (memchr(data, 0, size))
		return 0;
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	int nlines = 1;
	/* lines end at \n, \r\n or a lone \r, as the scanner counts them */
	for (size_t i = 0; i < size; i++)
		nlines += text[i] == '\n' || (text[i] == '\r' && text[i + 1] != '\n');
	nnc_source src = {.path = PATH, .text = text, .len = (long)size};

	nnc_buf diags = {0}, dump = {0};
	nnc_diag_set_color(0);
	nnc_diag_reset();
	nnc_diag_capture(&diags);
	nnc_program *prog = nnc_parse(&src);
	int after_parse = nnc_diag_error_count();
	if (!prog && after_parse == 0)
		fail("the parser failed without an error", diags.data);
	if (prog && after_parse != 0)
		fail("the parser reported an error but returned a program", diags.data);
	if (prog) {
		nnc_ast_dump(prog, &dump);
		nnc_train_config cfg;
		ir_graph *g = nnc_sema(prog, &cfg);
		int errors = nnc_diag_error_count();
		if (!g && errors == 0)
			fail("sema failed without an error", diags.data);
		if (g && errors != 0)
			fail("sema reported an error but returned a graph", diags.data);
		if (g) {
			nnc_autodiff(g, &cfg.opt);
			nnc_add_inference_tail(g);
			nnc_fuse(g);
			nnc_plan(g);
			ir_dump(g, &dump);
			if (nnc_diag_error_count() != 0)
				fail("a pass after sema reported a user error", diags.data);
		}
	}
	nnc_diag_capture(NULL);
	if (diags.data)
		check_format(diags.data, nlines);
	nnc_buf_free(&diags);
	nnc_buf_free(&dump);
	nnc_arena_free_all();
	free(text);
	return 0;
}
