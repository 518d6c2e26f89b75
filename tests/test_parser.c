/*
 * test_parser.c - the front end (grammar/lexer.l, grammar/parser.y,
 * compiler/ast.c) as tables:
 *   - valid programs and their exact AST dump;
 *   - the exact source span of every node, statement, name and type;
 *   - the example programs, which must parse cleanly;
 *   - malformed programs and their exact diagnostics (first line and error
 *     count, and the whole text where the caret, note or hint matters).
 * A new feature or message adds rows, not machinery.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "util.h"

/* Parses `text` with diagnostics captured into *diags (caller frees). */
static nnc_program *parse_text(const char *text, nnc_buf *diags)
{
	nnc_source *src = nnc_alloc(sizeof *src);
	src->path = NULL; /* diagnostics say "<input>" */
	src->text = text;
	src->len = (long)strlen(text);
	nnc_diag_reset();
	nnc_diag_capture(diags);
	nnc_program *prog = nnc_parse(src);
	nnc_diag_capture(NULL);
	return prog;
}

static const char *out_text(const nnc_buf *b)
{
	return b->data ? b->data : "";
}

/* ---- valid programs -> AST dump ---- */

typedef struct dump_case {
	const char *name;
	const char *src;
	const char *dump;
} dump_case;

static const dump_case dump_cases[] = {
	{"empty program", "", ""},
	{"only comments and blank lines", "# a comment\n\n   # another\n\t\n", ""},
	{"model", "model mlp\n", "(model mlp)\n"},
	{"no final newline", "model mlp", "(model mlp)\n"},
	{"input and label types",
	 "input x : f32[784]\ninput im : f32[1, 28, 28]\nlabel y : class(10)\nlabel t : f32[1,2,3,4]\n",
	 "(input x (f32 784))\n(input im (f32 1 28 28))\n(label y (class 10))\n(label t (f32 1 2 3 4))\n"},
	{"trailing comma in dims", "input x : f32[2, 3,]\n", "(input x (f32 2 3))\n"},
	{"let, output, loss, optimizer",
	 "p = x\noutput p\nloss mse(p, y)\noptimizer sgd(lr: 0.05, momentum: 0.9)\n",
	 "(let p x)\n(output p)\n(loss (call mse p y))\n(optimizer (call sgd lr: 0.05 momentum: 0.9))\n"},
	{"pipe into a bare name", "h = x |> relu\n", "(let h (pipe relu x))\n"},
	{"pipe into a call", "h = x |> dense(128)\n", "(let h (pipe dense x 128))\n"},
	{"pipe into a call with no arguments", "h = x |> f()\n", "(let h (pipe f x))\n"},
	{"pipe chain is left-associative", "h = x |> dense(16, init: he) |> tanh |> dense(2)\n",
	 "(let h (pipe dense (pipe tanh (pipe dense x 16 init: he)) 2))\n"},
	{"pipe binds loosest", "h = a + b * c |> f\n", "(let h (pipe f (+ a (* b c))))\n"},
	{"pipe of a parenthesised pipe", "h = (x |> f) |> g(1)\n", "(let h (pipe g (pipe f x) 1))\n"},
	{"precedence of * / over + -", "v = a + b * c - d / e\n", "(let v (- (+ a (* b c)) (/ d e)))\n"},
	{"left associativity", "v = a - b - c\nw = a / b / c\n", "(let v (- (- a b) c))\n(let w (/ (/ a b) c))\n"},
	{"parentheses", "v = (a + b) * (c - d)\n", "(let v (* (+ a b) (- c d)))\n"},
	{"unary minus", "v = -a * -2 - -(b)\n", "(let v (- (* (neg a) (neg 2)) (neg b)))\n"},
	{"negative numbers in arguments", "v = f(-1, k: -0.5)\n", "(let v (call f (neg 1) k: (neg 0.5)))\n"},
	{"numbers", "n = [0, 123, 0.05, .5, 5., 1e-3, 2.5E+4, 1e20, 1e-05, 5e0]\n",
	 "(let n (list 0 123 0.05 0.5 5.0 0.001 25000.0 1e+20 1e-05 5.0))\n"},
	{"scale expression", "s = f(scale: 1/255)\n", "(let s (call f scale: (/ 1 255)))\n"},
	{"lists", "l = [\"x1\", \"x2\"]\ne = []\nn = [[1, 2], [3]]\nt = [1, 2,]\n",
	 "(let l (list \"x1\" \"x2\"))\n(let e (list))\n(let n (list (list 1 2) (list 3)))\n(let t (list 1 2))\n"},
	{"call forms", "a = f()\nb = f(1,)\nc = f(x, y: 2, 3)\nd = f(g(h(1)))\n",
	 "(let a (call f))\n(let b (call f 1))\n(let c (call f x y: 2 3))\n(let d (call f (call g (call h 1))))\n"},
	{"string escapes", "s = \"a\\tb\\n\\\"q\\\" \\\\ \\r \\x41\\x7e\"\n",
	 "(let s \"a\\tb\\n\\\"q\\\" \\\\ \\r A~\")\n"},
	{"string with a \\x control byte", "s = \"\\x01\"\n", "(let s \"\\x01\")\n"},
	{"a block with if, else if, else and repeat",
	 "block res(x, f, stride: 1, act: relu) {\n"
	 "  h = x |> conv2d(f, 3, stride: stride) |> act\n"
	 "  if stride != 1 && !(f < 8) { s = x } else if f >= 2 || f == 0 {\n"
	 "    s = h\n"
	 "  } else {\n"
	 "    s = -x\n"
	 "  }\n"
	 "  repeat f - 1 { h = h |> relu; h = h }\n"
	 "  return h + s\n"
	 "}\n",
	 "(block res (x f stride: 1 act: relu)\n"
	 "  (let h (pipe act (pipe conv2d x f 3 stride: stride)))\n"
	 "  (if (&& (!= stride 1) (! (< f 8)))\n"
	 "    (let s x)\n"
	 "   else\n"
	 "    (if (|| (>= f 2) (== f 0))\n"
	 "      (let s h)\n"
	 "     else\n"
	 "      (let s (neg x))))\n"
	 "  (repeat (- f 1)\n"
	 "    (let h (pipe relu h))\n"
	 "    (let h h))\n"
	 "  (return (+ h s)))\n"},
	{"a shared layer", "layer enc = dense(64, name: \"e\")\na = x |> enc\n",
	 "(layer enc (call dense 64 name: \"e\"))\n(let a (pipe enc x))\n"},
	{"the new words stay names where a value goes",
	 "block = x |> relu\nif = block\nrepeat = f(if: 1, return: 2)\nlayer = [block, else]\n",
	 "(let block (pipe relu x))\n(let if block)\n(let repeat (call f if: 1 return: 2))\n(let layer (list block else))\n"},
	{"comparisons bind tighter than && and ||, looser than +", "c = a + 1 <= b * 2 || !c && d > e\n",
	 "(let c (|| (<= (+ a 1) (* b 2)) (&& (! c) (> d e))))\n"},
	{"empty string and utf-8", "s = \"\"\nt = \"héllo\"\n", "(let s \"\")\n(let t \"héllo\")\n"},
	{"comment after code", "x = 1 # one\n", "(let x 1)\n"},
	{"semicolons end statements", "model m; x = 1;\ny = 2 ;\n", "(model m)\n(let x 1)\n(let y 2)\n"},
	{"continuation line with |>", "h = x\n  |> dense(3)\n  |> relu\n", "(let h (pipe relu (pipe dense x 3)))\n"},
	{"continuation over blank and comment lines", "h = x\n\n  # then\n\t|> relu\nz = h\n",
	 "(let h (pipe relu x))\n(let z h)\n"},
	{"newlines inside brackets", "v = f(\n  1,\n  [2,\n   3],\n)\nw = (a\n + b)\n",
	 "(let v (call f 1 (list 2 3)))\n(let w (+ a b))\n"},
	{"CRLF line ends", "model m\r\nx = 1\r\n", "(model m)\n(let x 1)\n"},
	{"CR-only line ends", "model m\rx = 1\r# c\r\ry = 2", "(model m)\n(let x 1)\n(let y 2)\n"},
	{"mixed line ends and a CR-ended comment", "model m\rx = 1\r\ny = 2\n# c\rz = 3\r",
	 "(model m)\n(let x 1)\n(let y 2)\n(let z 3)\n"},
	{"continuation after CR line ends", "h = x\r  # then\r\r  |> relu\rz = h\r",
	 "(let h (pipe relu x))\n(let z h)\n"},
	{"newlines inside brackets, CR only", "v = f(\r  1,\r  2)\r", "(let v (call f 1 2))\n"},
	{"train block", "train {\n  data: moons(count: 2000)\n  batch: 32\n}\n",
	 "(train\n  data: (call moons count: 2000)\n  batch: 32)\n"},
	{"train block on one line", "train { batch: 8, epochs: 3 }\n", "(train\n  batch: 8\n  epochs: 3)\n"},
	{"train block with commas, blank lines and comments",
	 "train\n{\n  batch: 8,\n\n  # comment\n  epochs: 3,\n}\n", "(train\n  batch: 8\n  epochs: 3)\n"},
	{"empty train block", "train {}\ntrain {\n}\n", "(train)\n(train)\n"},
	{"setting value spanning lines", "train {\n  data: f(\"a\",\n          \"b\")\n  seed: 1\n}\n",
	 "(train\n  data: (call f \"a\" \"b\")\n  seed: 1)\n"},
	{"type names are ordinary names elsewhere", "f32 = class\n", "(let f32 class)\n"},
};

Test(parser, dumps)
{
	for (size_t i = 0; i < sizeof dump_cases / sizeof *dump_cases; i++) {
		const dump_case *c = &dump_cases[i];
		nnc_buf diags = {0}, dump = {0};
		nnc_program *prog = parse_text(c->src, &diags);
		cr_expect(prog != NULL, "[%s] did not parse:\n%s", c->name, out_text(&diags));
		if (prog) {
			nnc_ast_dump(prog, &dump);
			cr_expect_str_eq(out_text(&dump), c->dump, "[%s] dump is\n%s\nexpected\n%s", c->name,
					 out_text(&dump), c->dump);
		}
		nnc_buf_free(&diags);
		nnc_buf_free(&dump);
	}
}

/* The decoded string keeps a NUL from \0 (the dump stops at it). */
Test(parser, string_nul_escape)
{
	nnc_buf diags = {0};
	nnc_program *prog = parse_text("s = \"a\\0b\"\n", &diags);
	cr_assert(prog != NULL, "%s", out_text(&diags));
	const nnc_ast *e = prog->stmts[0].expr;
	cr_assert_eq(e->kind, AST_STR);
	cr_expect(memcmp(e->str, "a\0b", 4) == 0, "decoded bytes differ");
	nnc_buf_free(&diags);
}

/* Numbers: value and is_int exactly as written. */
Test(parser, number_values)
{
	static const struct {
		const char *text;
		double v;
		bool is_int;
	} rows[] = {
		{"0", 0, true},        {"123", 123, true},   {"0.05", 0.05, false}, {".5", 0.5, false},
		{"5.", 5, false},      {"1e-3", 1e-3, false}, {"2.5E+4", 2.5e4, false}, {"1E2", 100, false},
		{"007", 7, true},
	};
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		nnc_buf diags = {0};
		nnc_program *prog = parse_text(nnc_sprintf("v = %s\n", rows[i].text), &diags);
		cr_assert(prog != NULL, "[%s] %s", rows[i].text, out_text(&diags));
		const nnc_ast *e = prog->stmts[0].expr;
		cr_expect_eq(e->kind, AST_NUM, "[%s] not a number", rows[i].text);
		cr_expect(e->num == rows[i].v, "[%s] value %g, expected %g", rows[i].text, e->num, rows[i].v);
		cr_expect_eq(e->is_int, rows[i].is_int, "[%s] is_int is %d", rows[i].text, e->is_int);
		nnc_buf_free(&diags);
	}
}

/* ---- source locations ---- */

static void loc_put(nnc_buf *b, const char *what, nnc_loc l)
{
	nnc_buf_printf(b, "%s%s@%d:%d-%d:%d", b->len ? " " : "", what, l.line, l.col, l.end_line, l.end_col);
}

static void loc_expr(nnc_buf *b, const nnc_ast *e)
{
	static const char *const kinds[] = {"num", "str", "name", "call", "binop", "neg", "not", "list"};
	loc_put(b, kinds[e->kind], e->loc);
	if (e->kind == AST_CALL)
		loc_put(b, "callee", e->callee_loc);
	if (e->lhs)
		loc_expr(b, e->lhs);
	if (e->rhs)
		loc_expr(b, e->rhs);
	for (int i = 0; i < e->nargs; i++) {
		if (e->args[i].name)
			loc_put(b, e->args[i].name, e->args[i].name_loc);
		loc_expr(b, e->args[i].value);
	}
}

/* Every span in the program, in order: "let@1:1-1:6 name@1:1-1:2 ...". */
static void loc_dump(nnc_buf *b, const nnc_program *prog)
{
	static const char *const kinds[] = {"model", "input", "label", "let", "output", "loss", "optimizer", "train"};
	for (int i = 0; i < prog->nstmts; i++) {
		const nnc_stmt *s = &prog->stmts[i];
		loc_put(b, kinds[s->kind], s->loc);
		if (s->name)
			loc_put(b, "name", s->name_loc);
		if (s->kind == STMT_INPUT || s->kind == STMT_LABEL)
			loc_put(b, "type", s->type.loc);
		if (s->expr)
			loc_expr(b, s->expr);
		for (int j = 0; j < s->nsettings; j++) {
			loc_put(b, s->settings[j].name, s->settings[j].name_loc);
			loc_expr(b, s->settings[j].value);
		}
	}
}

static const dump_case loc_cases[] = {
	{"model", "model mlp\n", "model@1:1-1:10 name@1:7-1:10"},
	{"input type", "input  x : f32[2, 3]\n", "input@1:1-1:21 name@1:8-1:9 type@1:12-1:21"},
	{"label class", "label y : class(10)", "label@1:1-1:20 name@1:7-1:8 type@1:11-1:20"},
	{"pipe desugaring", "p = a |> f(1, k: 2)\n",
	 "let@1:1-1:20 name@1:1-1:2 call@1:5-1:20 callee@1:10-1:11 name@1:5-1:6 num@1:12-1:13 k@1:15-1:16 "
	 "num@1:18-1:19"},
	{"bare pipe", "p = a |> relu\n", "let@1:1-1:14 name@1:1-1:2 call@1:5-1:14 callee@1:10-1:14 name@1:5-1:6"},
	{"pipe over lines", "h = x\n  |> dense(3)\n",
	 "let@1:1-2:14 name@1:1-1:2 call@1:5-2:14 callee@2:6-2:11 name@1:5-1:6 num@2:12-2:13"},
	{"operators, negation, parentheses", "v = -(a + 10) * b\n",
	 "let@1:1-1:18 name@1:1-1:2 binop@1:5-1:18 neg@1:5-1:14 binop@1:7-1:13 name@1:7-1:8 num@1:11-1:13 "
	 "name@1:17-1:18"},
	{"tabs count as one column", "\tv =\t\"s\\n\"\n", "let@1:2-1:11 name@1:2-1:3 str@1:6-1:11"},
	{"list", "l = [1, \"a\"]\n", "let@1:1-1:13 name@1:1-1:2 list@1:5-1:13 num@1:6-1:7 str@1:9-1:12"},
	{"statement after a comment line", "# c\n  loss mse(p, y)\n",
	 "loss@2:3-2:17 call@2:8-2:17 callee@2:8-2:11 name@2:12-2:13 name@2:15-2:16"},
	{"train block", "train {\n  batch: 8\n  seed: f(1)\n}\n",
	 "train@1:1-4:2 batch@2:3-2:8 num@2:10-2:11 seed@3:3-3:7 call@3:9-3:13 callee@3:9-3:10 num@3:11-3:12"},
	{"decimal and exponent spans", "v = [0.05, 2.5E+4]\n",
	 "let@1:1-1:19 name@1:1-1:2 list@1:5-1:19 num@1:6-1:10 num@1:12-1:18"},
	/* "\r\n" is one line end, a lone "\r" another */
	{"lines counted across CR, CRLF and LF", "# a\r\r\n\n  p = a\r  |> f\n",
	 "let@4:3-5:7 name@4:3-4:4 call@4:7-5:7 callee@5:6-5:7 name@4:7-4:8"},
};

Test(parser, locations)
{
	for (size_t i = 0; i < sizeof loc_cases / sizeof *loc_cases; i++) {
		const dump_case *c = &loc_cases[i];
		nnc_buf diags = {0}, locs = {0};
		nnc_program *prog = parse_text(c->src, &diags);
		cr_expect(prog != NULL, "[%s] did not parse:\n%s", c->name, out_text(&diags));
		if (prog) {
			loc_dump(&locs, prog);
			cr_expect_str_eq(out_text(&locs), c->dump, "[%s] spans are\n%s\nexpected\n%s", c->name,
					 out_text(&locs), c->dump);
		}
		nnc_buf_free(&diags);
		nnc_buf_free(&locs);
	}
}

/* ---- the example programs ---- */

static nnc_program *parse_file(const char *path, nnc_buf *diags)
{
	nnc_source *src = nnc_alloc(sizeof *src);
	src->path = path;
	src->text = nnc_read_file(path, &src->len);
	cr_assert(src->text != NULL, "cannot read %s", path);
	nnc_diag_reset();
	nnc_diag_capture(diags);
	nnc_program *prog = nnc_parse(src);
	nnc_diag_capture(NULL);
	return prog;
}

/* Every .nn file in examples/ parses without a message; the original
 * four are checked by name so that none can go missing. */
Test(parser, examples_parse)
{
	static const struct {
		const char *file;
		int nstmts;
	} known[] = {{"linear.nn", 7}, {"mlp.nn", 8}, {"moons.nn", 9}, {"seed.nn", 8}};
	int found[sizeof known / sizeof *known] = {0};
	int nfiles = 0;

	DIR *dir = opendir(NNC_SOURCE_DIR "/examples");
	cr_assert_not_null(dir, "cannot open %s/examples", NNC_SOURCE_DIR);
	for (struct dirent *d; (d = readdir(dir));) {
		size_t len = strlen(d->d_name);
		if (len < 4 || strcmp(d->d_name + len - 3, ".nn") != 0)
			continue;
		nfiles++;
		const char *path = nnc_sprintf("%s/examples/%s", NNC_SOURCE_DIR, d->d_name);
		nnc_buf diags = {0};
		nnc_program *prog = parse_file(path, &diags);
		cr_expect(prog != NULL, "%s did not parse:\n%s", path, out_text(&diags));
		cr_expect_eq(nnc_diag_error_count(), 0, "%s", path);
		cr_expect_str_eq(out_text(&diags), "", "%s", path);
		for (size_t i = 0; prog && i < sizeof known / sizeof *known; i++) {
			if (strcmp(d->d_name, known[i].file) != 0)
				continue;
			found[i] = 1;
			cr_expect_eq(prog->nstmts, known[i].nstmts, "%s: %d statements", path, prog->nstmts);
		}
		nnc_buf_free(&diags);
	}
	closedir(dir);
	for (size_t i = 0; i < sizeof known / sizeof *known; i++)
		cr_expect(found[i], "examples/%s is missing or did not parse", known[i].file);
	cr_expect_geq(nfiles, 4);
}

Test(parser, example_linear_dump)
{
	nnc_buf diags = {0}, dump = {0};
	nnc_program *prog = parse_file(NNC_SOURCE_DIR "/examples/linear.nn", &diags);
	cr_assert(prog != NULL, "%s", out_text(&diags));
	nnc_ast_dump(prog, &dump);
	cr_expect_str_eq(out_text(&dump),
			 "(model linear)\n"
			 "(input x (f32 2))\n"
			 "(label y (f32 1))\n"
			 "(let pred (pipe dense x 1 init: zeros))\n"
			 "(loss (call mse pred y))\n"
			 "(optimizer (call sgd lr: 0.05))\n"
			 "(train\n"
			 "  data: (call csv \"data/linear.csv\" header: true x: (list \"x1\" \"x2\") y: (list \"y\"))\n"
			 "  batch: 16\n"
			 "  epochs: 60\n"
			 "  seed: 1)\n");
	nnc_buf_free(&diags);
	nnc_buf_free(&dump);
}

/* ---- malformed programs -> diagnostics ---- */

typedef struct err_case {
	const char *name;
	const char *src;
	int nerr;
	const char *first; /* the first line of the output, exactly */
	const char *full;  /* if not NULL: the whole output, exactly */
} err_case;

static const err_case err_cases[] = {
	/* blocks */
	{"a block without parameters in parentheses: one error for its lines", "block a {\n  return x\n}\n", 1,
	 "<input>:1:9: error: unexpected '{', expected '('", NULL},
	{"a block's '}' missing", "block a(x) {\n  return x\n\nloss mse(x, y)\n", 1,
	 "<input>:4:1: error: unexpected keyword 'loss'",
	 "<input>:4:1: error: unexpected keyword 'loss'\n"
	 "    4 | loss mse(x, y)\n"
	 "      | ^~~~\n"
	 "<input>:1:12: note: to match this '{'\n"
	 "    1 | block a(x) {\n"
	 "      |            ^\n"
	 "hint: a '}' is missing before this statement\n"},
	{"a misspelt return", "block a(x) {\n  retrun x\n}\n", 1, "<input>:2:10: error: unexpected identifier 'x', expected '='",
	 "<input>:2:10: error: unexpected identifier 'x', expected '='\n"
	 "    2 |   retrun x\n"
	 "      |          ^\n"
	 "hint: did you mean 'return'?\n"},
	{"return at the top level", "return x\n", 1, "<input>:1:1: error: unexpected keyword 'return', expected a statement",
	 "<input>:1:1: error: unexpected keyword 'return', expected a statement\n"
	 "    1 | return x\n"
	 "      | ^~~~~~\n"
	 "hint: 'return' is only allowed inside a block's body\n"},
	{"a number as a parameter", "block a(1, x) {\n  return x\n}\n", 1,
	 "<input>:1:9: error: a block's parameter is a name, or 'name: default'", NULL},
	{"'or' in a condition", "block a(x, s: 1) {\n  if s != 1 or s > 2 { x = x }\n  return x\n}\n", 1,
	 "<input>:2:13: error: unexpected identifier 'or', expected '{'",
	 "<input>:2:13: error: unexpected identifier 'or', expected '{'\n"
	 "    2 |   if s != 1 or s > 2 { x = x }\n"
	 "      |             ^~\n"
	 "hint: conditions are combined with '&&', '||' and '!'\n"},
	{"chained comparisons", "c = a < b < 2\n", 1, "<input>:1:11: error: unexpected '<', expected end of line", NULL},
	/* the scanner */
	{"unknown character", "x = 1 $ 2\n", 1, "<input>:1:7: error: unexpected character '$'",
	 "<input>:1:7: error: unexpected character '$'\n"
	 "    1 | x = 1 $ 2\n"
	 "      |       ^\n"
	 "hint: the symbols of .nn are = : , ; ( ) [ ] { } + - * / |> == != < <= > >= && || ! and # for a comment\n"},
	{"lone '|'", "y = a | b\n", 1, "<input>:1:7: error: unexpected character '|'",
	 "<input>:1:7: error: unexpected character '|'\n"
	 "    1 | y = a | b\n"
	 "      |       ^\n"
	 "hint: the pipe operator is written '|>'\n"},
	{"non-ASCII character", "x = a \xe2\x86\x92 b\n", 1, "<input>:1:7: error: unexpected character '\xe2\x86\x92'",
	 NULL},
	{"control character", "x = 1\x01\n", 1, "<input>:1:6: error: unexpected character (byte 0x01)", NULL},
	{"single-quoted string", "x = f('a')\n", 1,
	 "<input>:1:7: error: strings are written in double quotes, not single quotes",
	 "<input>:1:7: error: strings are written in double quotes, not single quotes\n"
	 "    1 | x = f('a')\n"
	 "      |       ^~~\n"},
	{"exponent without digits", "x = 1e\n", 1, "<input>:1:5: error: malformed number '1e'",
	 "<input>:1:5: error: malformed number '1e'\n"
	 "    1 | x = 1e\n"
	 "      |     ^~\n"
	 "hint: an exponent needs digits, as in 1e-3\n"},
	{"exponent sign without digits", "x = 2.5e-\n", 1, "<input>:1:5: error: malformed number '2.5e-'", NULL},
	{"two decimal points", "x = 1.2.3\n", 1, "<input>:1:5: error: malformed number '1.2.3'", NULL},
	{"digits then letters", "x = f(2x)\n", 1, "<input>:1:7: error: malformed number '2x'", NULL},
	{"number out of range", "x = 1e999\n", 1, "<input>:1:5: error: number '1e999' is too large", NULL},
	{"newline inside a string", "x = \"abc\ny = 1\n", 1,
	 "<input>:1:5: error: unterminated string: a newline before the closing '\"'",
	 "<input>:1:5: error: unterminated string: a newline before the closing '\"'\n"
	 "    1 | x = \"abc\n"
	 "      |     ^~~~\n"
	 "hint: a string must end on the line where it starts; write \\n for a newline character\n"},
	{"unterminated string at end of file", "x = csv(\"abc", 1,
	 "<input>:1:9: error: unterminated string: the file ends before the closing '\"'", NULL},
	{"unterminated string inside a call, then more lines", "x = f(\"abc\ny = )\n", 2,
	 "<input>:1:7: error: unterminated string: a newline before the closing '\"'", NULL},
	{"unknown escape", "x = \"a\\qb\"\n", 1, "<input>:1:7: error: unknown escape sequence '\\q'",
	 "<input>:1:7: error: unknown escape sequence '\\q'\n"
	 "    1 | x = \"a\\qb\"\n"
	 "      |       ^~\n"
	 "hint: the escapes are \\n \\t \\r \\\\ \\\" \\0 and \\xHH; write \\\\ for a backslash\n"},
	{"\\x with one hex digit", "x = \"\\x4\"\n", 1, "<input>:1:6: error: \\x must be followed by two hex digits",
	 "<input>:1:6: error: \\x must be followed by two hex digits\n"
	 "    1 | x = \"\\x4\"\n"
	 "      |      ^~~\n"},
	{"two bad escapes in one string", "x = \"\\a\\xzz\"\n", 2, "<input>:1:6: error: unknown escape sequence '\\a'",
	 NULL},

	/* the grammar */
	{"missing ')' at end of file", "x = f(1, 2", 1, "<input>:1:11: error: unexpected end of file, expected ',' or ')'",
	 "<input>:1:11: error: unexpected end of file, expected ',' or ')'\n"
	 "    1 | x = f(1, 2\n"
	 "      |           ^\n"
	 "<input>:1:6: note: to match this '('\n"
	 "    1 | x = f(1, 2\n"
	 "      |      ^\n"},
	{"missing ')' before the next lines", "x = f(1, 2\ny = 3\nz = )\n", 2,
	 "<input>:2:1: error: unexpected identifier 'y', expected ',' or ')'", NULL},
	{"missing operand", "x = )\n", 1, "<input>:1:5: error: unexpected ')', expected an expression",
	 "<input>:1:5: error: unexpected ')', expected an expression\n"
	 "    1 | x = )\n"
	 "      |     ^\n"},
	{"missing expression at end of line", "x = 2 *\n", 1,
	 "<input>:1:8: error: unexpected end of line, expected an expression", NULL},
	{"unary minus with nothing after it", "x = -", 1,
	 "<input>:1:6: error: unexpected end of line, expected an expression", NULL},
	{"mismatched bracket", "x = [1, 2)\n", 1, "<input>:1:10: error: unexpected ')', expected ',' or ']'", NULL},
	{"missing comma between arguments", "x = f(a b)\n", 1,
	 "<input>:1:9: error: unexpected identifier 'b', expected ',' or ')'", NULL},
	{"two statements on one line", "x = 1 y = 2\n", 1,
	 "<input>:1:7: error: unexpected identifier 'y', expected end of line", NULL},
	{"'=' in a train block", "train {\n  batch = 16\n}\n", 1,
	 "<input>:2:9: error: a train setting is written 'batch: value', with ':' not '='",
	 "<input>:2:9: error: a train setting is written 'batch: value', with ':' not '='\n"
	 "    2 |   batch = 16\n"
	 "      |         ^\n"
	 "hint: inside train { } each setting is 'key: value'; '=' defines a name outside it\n"},
	{"'=' as the last setting before '}'", "train { seed = 1 }\n", 1,
	 "<input>:1:14: error: a train setting is written 'seed: value', with ':' not '='", NULL},
	{"':' outside a train block", "x: 3\n", 1, "<input>:1:2: error: unexpected ':', expected '='",
	 "<input>:1:2: error: unexpected ':', expected '='\n"
	 "    1 | x: 3\n"
	 "      |  ^\n"
	 "hint: a name is defined with '='; 'key: value' is only for train settings and named arguments\n"},
	{"a call as a statement", "f(1)\n", 1, "<input>:1:2: error: unexpected '(', expected '='", NULL},
	{"'|>' followed by a number", "h = x |> 3\n", 1,
	 "<input>:1:10: error: unexpected number 3 after '|>', expected a function name or call",
	 "<input>:1:10: error: unexpected number 3 after '|>', expected a function name or call\n"
	 "    1 | h = x |> 3\n"
	 "      |          ^\n"
	 "hint: the right side of '|>' must be a name or a call, as in 'x |> relu' or 'x |> dense(10)'\n"},
	{"'|>' followed by a parenthesis", "h = x |> (f)\n", 1,
	 "<input>:1:10: error: unexpected '(' after '|>', expected a function name or call", NULL},
	{"'|>' with nothing after it", "h = x |>\n", 1,
	 "<input>:1:9: error: unexpected end of line after '|>', expected a function name or call", NULL},
	{"operator after a pipe", "h = x |> f + 1\n", 1, "<input>:1:12: error: unexpected '+', expected end of line",
	 NULL},
	{"'|>' starting the program", "|> f\n", 1, "<input>:1:1: error: unexpected '|>', expected a statement", NULL},
	{"stray ')'", ")\n", 1, "<input>:1:1: error: unexpected ')', expected a statement", NULL},
	{"missing type", "input x :\n", 1,
	 "<input>:1:10: error: unexpected end of line, expected a type such as f32[4] or class(10)", NULL},
	{"missing ':' before the type", "input x f32[2]\n", 1,
	 "<input>:1:9: error: unexpected identifier 'f32', expected ':'", NULL},
	{"missing name", "input : f32[2]\n", 1, "<input>:1:7: error: unexpected ':', expected an identifier", NULL},
	{"model without a name", "model\n", 1, "<input>:1:6: error: unexpected end of line, expected an identifier",
	 NULL},
	{"zero dimension", "input x : f32[0]\n", 1, "<input>:1:15: error: the dimension must be a positive integer, not 0",
	 "<input>:1:15: error: the dimension must be a positive integer, not 0\n"
	 "    1 | input x : f32[0]\n"
	 "      |               ^\n"},
	{"no dimensions", "input x : f32[]\n", 1,
	 "<input>:1:11: error: a tensor type needs at least one dimension, as in f32[4]", NULL},
	{"fractional dimension", "input x : f32[2.5]\n", 1,
	 "<input>:1:15: error: the dimension must be a positive integer, not 2.5", NULL},
	{"negative dimension", "input x : f32[4, -3]\n", 1,
	 "<input>:1:18: error: the dimension must be a positive integer, not -3", NULL},
	{"huge dimension", "input x : f32[3000000000]\n", 1,
	 "<input>:1:15: error: the dimension 3000000000 is too large (at most 2147483647)", NULL},
	{"five dimensions", "input x : f32[1, 2, 3, 4, 5]\n", 1,
	 "<input>:1:15: error: a tensor type has at most 4 dimensions, not 5", NULL},
	{"unknown type name", "input x : f64[3]\n", 1,
	 "<input>:1:11: error: unknown type 'f64'; expected f32[dims] or class(N)",
	 "<input>:1:11: error: unknown type 'f64'; expected f32[dims] or class(N)\n"
	 "    1 | input x : f64[3]\n"
	 "      |           ^~~\n"
	 "hint: the only element type is f32\n"},
	{"misspelt type name", "input x : F32[3]\n", 1,
	 "<input>:1:11: error: unknown type 'F32'; expected f32[dims] or class(N)",
	 "<input>:1:11: error: unknown type 'F32'; expected f32[dims] or class(N)\n"
	 "    1 | input x : F32[3]\n"
	 "      |           ^~~\n"
	 "hint: did you mean 'f32'?\n"},
	{"unknown type name with parentheses", "label y : klass(3)\n", 1,
	 "<input>:1:11: error: unknown type 'klass'; expected f32[dims] or class(N)", NULL},
	{"class with brackets", "label y : class[3]\n", 1,
	 "<input>:1:11: error: 'class' takes its number of classes in parentheses, as in class(10)", NULL},
	{"class with brackets and a trailing comma", "label y : class[3,]\n", 1,
	 "<input>:1:11: error: 'class' takes its number of classes in parentheses, as in class(10)", NULL},
	{"f32 with parentheses", "input x : f32(3)\n", 1,
	 "<input>:1:11: error: 'f32' takes its dimensions in brackets, as in f32[4]", NULL},
	{"zero classes", "label y : class(0)\n", 1,
	 "<input>:1:17: error: the number of classes must be a positive integer, not 0", NULL},
	{"keyword as a defined name", "model = 3\n", 1, "<input>:1:7: error: unexpected '=', expected an identifier",
	 "<input>:1:7: error: unexpected '=', expected an identifier\n"
	 "    1 | model = 3\n"
	 "      |       ^\n"
	 "hint: 'model' is a reserved keyword and cannot be used as a name\n"},
	{"keyword as an input name", "input loss : f32[2]\n", 1,
	 "<input>:1:7: error: unexpected keyword 'loss', expected an identifier", NULL},
	{"keyword in an expression", "x = train\n", 1,
	 "<input>:1:5: error: unexpected keyword 'train', expected an expression", NULL},
	{"keyword as a setting key", "train {\n  loss: 1\n}\n", 1,
	 "<input>:2:3: error: unexpected keyword 'loss', expected an identifier, end of line or '}'", NULL},
	{"train without '{'", "train\n  batch: 1\n  seed: 2\n}\nx = 1\n", 1,
	 "<input>:2:3: error: unexpected identifier 'batch', expected '{'", NULL},
	{"misspelt train", "trian {\n  batch: 1\n}\n", 1, "<input>:1:1: error: unknown statement 'trian'",
	 "<input>:1:1: error: unknown statement 'trian'\n"
	 "    1 | trian {\n"
	 "      | ^~~~~\n"
	 "hint: did you mean 'train'?\n"},
	{"misspelt statement keyword", "optimzer sgd(lr: 0.1)\n", 1,
	 "<input>:1:10: error: unexpected identifier 'sgd', expected '='",
	 "<input>:1:10: error: unexpected identifier 'sgd', expected '='\n"
	 "    1 | optimzer sgd(lr: 0.1)\n"
	 "      |          ^~~\n"
	 "hint: did you mean 'optimizer'?\n"},
	{"settings outside a train block", "batch: 1\nseed: 2\n}\nz = )\n", 2,
	 "<input>:1:6: error: unexpected ':', expected '='", NULL},
	{"'}' inside a setting ends the block early", "train {\n  batch: } 16\n  seed: 2\n}\nx = )\n", 2,
	 "<input>:2:10: error: unexpected '}', expected an expression", NULL},
	{"bad train statement with its block", "trai|>n {\n  batch: 1\n  seed: 2\n}\nx = )\n", 2,
	 "<input>:1:5: error: unexpected '|>', expected '='", NULL},
	{"missing '}' before the next statements", "train {\n  batch: 1\nloss mse(a, b)\noptimizer sgd(lr: )\n", 1,
	 "<input>:3:1: error: unexpected keyword 'loss', expected an identifier, end of line or '}'",
	 "<input>:3:1: error: unexpected keyword 'loss', expected an identifier, end of line or '}'\n"
	 "    3 | loss mse(a, b)\n"
	 "      | ^~~~\n"
	 "<input>:1:7: note: to match this '{'\n"
	 "    1 | train {\n"
	 "      |       ^\n"
	 "hint: a '}' is missing before this statement\n"},
	{"missing '}' at end of file", "train {\n  batch: 1\n", 1,
	 "<input>:2:11: error: unexpected end of file, expected an identifier, end of line or '}'", NULL},

	/* recovery: independent errors are each reported once */
	{"two bad lines", "x = )\nmodel m\ny = (1 +)\n", 2, "<input>:1:5: error: unexpected ')', expected an expression",
	 "<input>:1:5: error: unexpected ')', expected an expression\n"
	 "    1 | x = )\n"
	 "      |     ^\n"
	 "<input>:3:9: error: unexpected ')', expected an expression\n"
	 "    3 | y = (1 +)\n"
	 "      |         ^\n"},
	{"bad lines next to each other", "x = )\ny = )\nz = )\n", 3,
	 "<input>:1:5: error: unexpected ')', expected an expression", NULL},
	{"scanner and parser errors", "x = 1 $ 2\ninput y : f32[0]\nz = f(,)\n", 3,
	 "<input>:1:7: error: unexpected character '$'", NULL},
	{"two bad settings", "train {\n  batch: )\n  seed: 1\n  epochs: *\n}\nx = 1\n", 2,
	 "<input>:2:10: error: unexpected ')', expected an expression", NULL},
	{"short bad settings", "train {\n  a: )\n  )\n}\n", 2, "<input>:2:6: error: unexpected ')', expected an expression",
	 NULL},
	{"bad setting on the line of the '}'", "train { batch: ) }\n)\n", 2,
	 "<input>:1:16: error: unexpected ')', expected an expression", NULL},
	{"short bad lines", "x = )\n)\n]\n", 3, "<input>:1:5: error: unexpected ')', expected an expression", NULL},
	{"bad line inside a multi-line call", "x = f(1,\n      2 3)\ny = )\n", 2,
	 "<input>:2:9: error: unexpected number 3, expected ',' or ')'", NULL},
	{"error then garbage on the same line", "x = ) ) ) ]\ny = 1\n", 1,
	 "<input>:1:5: error: unexpected ')', expected an expression", NULL},
	{"malformed number, rest of the statement skipped", "x = f(1e 0.05)\ny = )\n", 2,
	 "<input>:1:7: error: malformed number '1e'", NULL},
	{"scanner errors in a skipped statement", "x = ) $ 1.2.3 \"\\q\" 'a'\ny = 1\n", 1,
	 "<input>:1:5: error: unexpected ')', expected an expression", NULL},
	{"two unknown characters in one statement", "h = x |$> f\nz = )\n", 2,
	 "<input>:1:7: error: unexpected character '|'", NULL},
	{"error on the last line without newline", "model m\nx = )", 1,
	 "<input>:2:5: error: unexpected ')', expected an expression", NULL},

	/* other line ends: the right line and column, and that line shown */
	{"error in a file with CR-only line ends", "model m\rx = 1\ry = )\rz = 2\r", 1,
	 "<input>:3:5: error: unexpected ')', expected an expression",
	 "<input>:3:5: error: unexpected ')', expected an expression\n"
	 "    3 | y = )\n"
	 "      |     ^\n"},
	{"error in a file with CRLF line ends", "model m\r\n\r\ny = 1 2\r\n", 1,
	 "<input>:3:7: error: unexpected number 2, expected end of line",
	 "<input>:3:7: error: unexpected number 2, expected end of line\n"
	 "    3 | y = 1 2\n"
	 "      |       ^\n"},
	{"end of a CR-only file inside brackets", "model m\rx = f(1,\r", 1,
	 "<input>:2:9: error: unexpected end of file, expected an expression or ')'", NULL},
	{"end of a CRLF file inside brackets", "model m\r\nx = f(1,\r\n", 1,
	 "<input>:2:9: error: unexpected end of file, expected an expression or ')'", NULL},

	/* bytes of the source never reach the terminal raw: the source line
	 * shows them as \xHH and the caret still lines up */
	{"control character, escaped where the line is shown", "x = 1\x01 + 2\n", 1,
	 "<input>:1:6: error: unexpected character (byte 0x01)",
	 "<input>:1:6: error: unexpected character (byte 0x01)\n"
	 "    1 | x = 1\\x01 + 2\n"
	 "      |      ^~~~\n"},
	{"escape sequence in a comment of an echoed line", "x = ) # \x1b[2J\x07\n", 1,
	 "<input>:1:5: error: unexpected ')', expected an expression",
	 "<input>:1:5: error: unexpected ')', expected an expression\n"
	 "    1 | x = ) # \\x1b[2J\\x07\n"
	 "      |     ^\n"},
	{"caret after an escaped byte", "# \x7f\x1b\n\tx = \x1b )\n", 1,
	 "<input>:2:6: error: unexpected character (byte 0x1b)",
	 "<input>:2:6: error: unexpected character (byte 0x1b)\n"
	 "    2 | \tx = \\x1b )\n"
	 "      | \t    ^~~~\n"},
	{"C1 control and invalid UTF-8 in a string", "s = \"\xc2\x9b" "2J \xff \xc3\xa9\" )\n", 1,
	 "<input>:1:17: error: unexpected ')', expected end of line",
	 "<input>:1:17: error: unexpected ')', expected end of line\n"
	 "    1 | s = \"\\xc2\\x9b" "2J \\xff \xc3\xa9\" )\n"
	 "      |                         ^\n"},
};

Test(parser, diagnostics)
{
	for (size_t i = 0; i < sizeof err_cases / sizeof *err_cases; i++) {
		const err_case *c = &err_cases[i];
		nnc_buf diags = {0};
		nnc_program *prog = parse_text(c->src, &diags);
		const char *out = out_text(&diags);
		cr_expect(prog == NULL, "[%s] parsed without error", c->name);
		cr_expect_eq(nnc_diag_error_count(), c->nerr, "[%s] %d errors, expected %d:\n%s", c->name,
			     nnc_diag_error_count(), c->nerr, out);
		const char *nl = strchr(out, '\n');
		const char *first = nnc_strndup(out, nl ? (size_t)(nl - out) : strlen(out));
		cr_expect_str_eq(first, c->first, "[%s] first line is\n%s\nexpected\n%s", c->name, first, c->first);
		if (c->full)
			cr_expect_str_eq(out, c->full, "[%s] output is\n%s\nexpected\n%s", c->name, out, c->full);
		nnc_buf_free(&diags);
	}
}

/* Each '}' searches the open brackets for its '{' only when there is one:
 * 3000 '(' and 100,000 stray '}' searched 3e8 times. */
Test(parser, stray_braces_do_not_search_every_open_bracket)
{
	nnc_buf text = {0}, diags = {0};
	nnc_buf_puts(&text, "model m\nx = ");
	for (int i = 0; i < 3000; i++)
		nnc_buf_puts(&text, "(");
	for (int i = 0; i < 100000; i++)
		nnc_buf_puts(&text, "}");
	nnc_buf_puts(&text, "\ntrain {\n  batch: f((1}\n");
	nnc_work = (nnc_work_counts){0};
	cr_expect_null(parse_text(text.data, &diags));
	cr_expect_leq(nnc_work.bracket_steps, 10, "%ld steps", nnc_work.bracket_steps);
	nnc_buf_free(&text);
	nnc_buf_free(&diags);
}

/* A file's name appears in its messages; the count spans several parses. */
Test(parser, path_in_messages)
{
	nnc_source src = {"dir/bad.nn", "x = )\n", 6};
	nnc_buf diags = {0};
	nnc_diag_reset();
	nnc_diag_capture(&diags);
	cr_expect_null(nnc_parse(&src));
	nnc_diag_capture(NULL);
	cr_expect(strncmp(out_text(&diags), "dir/bad.nn:1:5: error: ", 23) == 0, "%s", out_text(&diags));
	nnc_buf_free(&diags);

	/* errors are counted before and after, so without a reset in between
	 * a clean parse after a failed one still succeeds */
	nnc_source ok = {"good.nn", "model m\n", 8};
	cr_expect_not_null(nnc_parse(&ok));
	cr_expect_eq(nnc_diag_error_count(), 1);
}
