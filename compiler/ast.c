/*
 * ast.c - running the parser, and the printed form of the tree.
 *
 * nnc_parse drives the reentrant scanner (grammar/lexer.l) and parser
 * (grammar/parser.y) over the program text; they do all the work and
 * report every error themselves.
 *
 * nnc_ast_dump prints one statement per line, as S-expressions:
 *
 *     (model mlp)
 *     (input x (f32 784))
 *     (label y (class 10))
 *     (let h (pipe relu (pipe dense x 128)))
 *     (output (pipe softmax logits))
 *     (loss (call softmax_cross_entropy logits y))
 *     (optimizer (call sgd lr: 0.05 momentum: 0.9))
 *     (train
 *       data: (call idx "a.gz" "b.gz" scale: (/ 1 255))
 *       batch: 64)
 *
 * Expressions: a name is bare; a whole number prints as such (60), any
 * other in the shortest %g form that reads back exactly (0.05, 1e-05), and
 * ".0" marks a number written with '.' or an exponent whose value is whole
 * (`5.` and `5e0` print 5.0, `5` prints 5); strings are quoted with C
 * escapes (\n \t \r \\ \" and \xHH for other control bytes; a NUL from \0
 * ends the string, as it does for every reader of the tree); (call f ARGS)
 * is a call and (pipe f ARGS) one whose first argument came from '|>'; a
 * named argument prints as `name: value`; (+ a b), (- a b), (* a b),
 * (/ a b), (neg a), (list ...); conditions print as (== a b), (&& a b),
 * (! a).  Locations are not printed.
 *
 * A block prints its parameters and then its body, one statement a line,
 * indented; `if` and `repeat` likewise:
 *
 *     (block res (x f stride: 1)
 *       (let h (pipe conv2d x f 3))
 *       (if (!= stride 1)
 *         (let h (pipe relu h))
 *        else
 *         (let h x))
 *       (repeat 2
 *         (let h (pipe relu h)))
 *       (return h))
 *     (layer enc (call dense 64))
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "diag.h"
#include "util.h"

#include "parser.h"
#include "lexer.h"

/* ---- parsing ---- */

/* Expressions nested deeper than this are refused: the later phases walk
 * them recursively, and no real program comes near it (a chain of 256
 * operators or brackets), while a generated or corrupt file might. */
#define MAX_DEPTH 256

/* The depth of e below level d, not looking further than MAX_DEPTH + 1. */
static int ast_depth(const nnc_ast *e, int d)
{
	if (!e || d > MAX_DEPTH)
		return d;
	int m = d + 1, k;
	if ((k = ast_depth(e->lhs, d + 1)) > m)
		m = k;
	if ((k = ast_depth(e->rhs, d + 1)) > m)
		m = k;
	for (int i = 0; i < e->nargs && m <= MAX_DEPTH; i++)
		if ((k = ast_depth(e->args[i].value, d + 1)) > m)
			m = k;
	return m;
}

static void check_depth(const nnc_source *src, const nnc_ast *e)
{
	if (e && ast_depth(e, 0) > MAX_DEPTH)
		nnc_error(src, e->loc, "this expression is nested too deeply (more than %d levels)", MAX_DEPTH);
}

/* The expressions of statements, also inside bodies, nested at most
 * MAX_DEPTH deep themselves (sema walks bodies recursively too). */
static void check_stmts(const nnc_source *src, const nnc_stmt *st, int n, int level)
{
	for (int i = 0; i < n; i++) {
		const nnc_stmt *s = &st[i];
		check_depth(src, s->expr);
		if (s->kind == STMT_TRAIN)
			for (int k = 0; k < s->nsettings; k++)
				check_depth(src, s->settings[k].value);
		if (s->kind == STMT_BLOCK)
			for (int k = 0; k < s->nparams; k++)
				check_depth(src, s->params[k].value);
		if (!nnc_stmt_has_body(s->kind))
			continue;
		if (level >= MAX_DEPTH) {
			nnc_error(src, s->loc, "statements are nested too deeply here (more than %d levels)", MAX_DEPTH);
			continue;
		}
		check_stmts(src, s->body, s->nbody, level + 1);
		check_stmts(src, s->else_body, s->nelse, level + 1);
	}
}

bool nnc_stmt_has_body(nnc_stmt_kind k)
{
	return k == STMT_BLOCK || k == STMT_IF || k == STMT_REPEAT;
}

const char *nnc_ast_op_name(char op)
{
	switch (op) {
	case AST_OP_EQ: return "==";
	case AST_OP_NE: return "!=";
	case AST_OP_LE: return "<=";
	case AST_OP_GE: return ">=";
	case AST_OP_AND: return "&&";
	case AST_OP_OR: return "||";
	case '+': return "+";
	case '-': return "-";
	case '*': return "*";
	case '/': return "/";
	case '<': return "<";
	case '>': return ">";
	}
	nnc_unreachable();
}

nnc_program *nnc_parse(const nnc_source *src)
{
	int errors = nnc_diag_error_count();
	if (src->len > INT_MAX) {
		nnc_error_plain("%s: the program is too large", src->path ? src->path : "<input>");
		return NULL;
	}

	nnc_parser ps = {.src = src, .line = 1, .col = 1, .at_line_start = true};
	yyscan_t scanner;
	if (yylex_init_extra(&ps, &scanner) != 0)
		nnc_internal_error(__FILE__, __LINE__, "cannot create the scanner");
	YY_BUFFER_STATE buf = yy_scan_bytes(src->text, (int)src->len, scanner);
	int rc = yyparse(scanner, &ps);
	yy_delete_buffer(buf, scanner);
	yylex_destroy(scanner);

	/* The parser only gives up after reporting why. */
	NNC_ASSERT(rc == 0 || nnc_diag_error_count() > errors);
	check_stmts(src, ps.stmts, ps.nstmts, 0);
	if (nnc_diag_error_count() > errors)
		return NULL;
	nnc_program *prog = nnc_alloc(sizeof *prog);
	prog->src = src;
	prog->stmts = ps.stmts;
	prog->nstmts = ps.nstmts;
	return prog;
}

/* ---- dumping ---- */

static void dump_number(double v, bool is_int, nnc_buf *out)
{
	char text[64];
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(text, sizeof text, "%.0f", v);
	} else {
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(text, sizeof text, "%.*g", prec, v);
			if (strtod(text, NULL) == v)
				break;
		}
	}
	nnc_buf_puts(out, text);
	if (!is_int && !strpbrk(text, ".eni"))
		nnc_buf_puts(out, ".0");
}

static void dump_string(const char *s, nnc_buf *out)
{
	nnc_buf_puts(out, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '\n': nnc_buf_puts(out, "\\n"); break;
		case '\t': nnc_buf_puts(out, "\\t"); break;
		case '\r': nnc_buf_puts(out, "\\r"); break;
		case '\\': nnc_buf_puts(out, "\\\\"); break;
		case '"': nnc_buf_puts(out, "\\\""); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				nnc_buf_printf(out, "\\x%02x", *p);
			else
				nnc_buf_printf(out, "%c", *p);
		}
	}
	nnc_buf_puts(out, "\"");
}

static void dump_expr(const nnc_ast *e, nnc_buf *out);

static void dump_args(const nnc_arg *args, int n, nnc_buf *out)
{
	for (int i = 0; i < n; i++) {
		nnc_buf_puts(out, " ");
		if (args[i].name)
			nnc_buf_printf(out, "%s: ", args[i].name);
		dump_expr(args[i].value, out);
	}
}

static void dump_expr(const nnc_ast *e, nnc_buf *out)
{
	switch (e->kind) {
	case AST_NUM:
		dump_number(e->num, e->is_int, out);
		return;
	case AST_STR:
		dump_string(e->str, out);
		return;
	case AST_NAME:
		nnc_buf_puts(out, e->str);
		return;
	case AST_CALL:
		nnc_buf_printf(out, "(%s %s", e->piped ? "pipe" : "call", e->str);
		dump_args(e->args, e->nargs, out);
		nnc_buf_puts(out, ")");
		return;
	case AST_BINOP:
		nnc_buf_printf(out, "(%s ", nnc_ast_op_name(e->op));
		dump_expr(e->lhs, out);
		nnc_buf_puts(out, " ");
		dump_expr(e->rhs, out);
		nnc_buf_puts(out, ")");
		return;
	case AST_NEG:
	case AST_NOT:
		nnc_buf_puts(out, e->kind == AST_NEG ? "(neg " : "(! ");
		dump_expr(e->lhs, out);
		nnc_buf_puts(out, ")");
		return;
	case AST_LIST:
		nnc_buf_puts(out, "(list");
		dump_args(e->args, e->nargs, out);
		nnc_buf_puts(out, ")");
		return;
	}
	nnc_unreachable();
}

static void dump_type(const nnc_type *t, nnc_buf *out)
{
	if (t->vocab) {
		nnc_buf_printf(out, "(%s %lld [%lld])", t->kind == TYPE_TOKEN ? "token" : "class", (long long)t->vocab,
			       (long long)t->dims[0]);
		return;
	}
	if (t->kind == TYPE_CLASS) {
		nnc_buf_printf(out, "(class %lld)", (long long)t->dims[0]);
		return;
	}
	nnc_buf_puts(out, "(f32");
	for (int i = 0; i < t->rank; i++)
		nnc_buf_printf(out, " %lld", (long long)t->dims[i]);
	nnc_buf_puts(out, ")");
}

static void dump_stmt(const nnc_stmt *s, int level, nnc_buf *out);

/* The statements of a body, each on a new line indented to `level`. */
static void dump_body(const nnc_stmt *st, int n, int level, nnc_buf *out)
{
	for (int i = 0; i < n; i++) {
		nnc_buf_printf(out, "\n%*s", 2 * level, "");
		dump_stmt(&st[i], level, out);
	}
}

/* One statement at nesting `level`, without its final newline. */
static void dump_stmt(const nnc_stmt *s, int level, nnc_buf *out)
{
	switch (s->kind) {
	case STMT_BLOCK:
		nnc_buf_printf(out, "(block %s (", s->name);
		for (int i = 0; i < s->nparams; i++) {
			nnc_buf_puts(out, i ? " " : "");
			if (s->params[i].name)
				nnc_buf_printf(out, "%s: ", s->params[i].name);
			dump_expr(s->params[i].value, out);
		}
		nnc_buf_puts(out, ")");
		dump_body(s->body, s->nbody, level + 1, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_LAYER:
		nnc_buf_printf(out, "(layer %s ", s->name);
		dump_expr(s->expr, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_RETURN:
		nnc_buf_puts(out, "(return ");
		dump_expr(s->expr, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_IF:
	case STMT_REPEAT:
		nnc_buf_puts(out, s->kind == STMT_IF ? "(if " : "(repeat ");
		dump_expr(s->expr, out);
		dump_body(s->body, s->nbody, level + 1, out);
		if (s->else_body) {
			nnc_buf_printf(out, "\n%*s else", 2 * level, "");
			dump_body(s->else_body, s->nelse, level + 1, out);
		}
		nnc_buf_puts(out, ")");
		return;
	case STMT_MODEL:
		nnc_buf_printf(out, "(model %s)", s->name);
		return;
	case STMT_INPUT:
	case STMT_LABEL:
		nnc_buf_printf(out, "(%s %s ", s->kind == STMT_INPUT ? "input" : "label", s->name);
		dump_type(&s->type, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_LET:
		nnc_buf_printf(out, "(let %s ", s->name);
		dump_expr(s->expr, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_OUTPUT:
	case STMT_LOSS:
	case STMT_OPTIMIZER:
		nnc_buf_printf(out, "(%s ",
			       s->kind == STMT_OUTPUT ? "output" : s->kind == STMT_LOSS ? "loss" : "optimizer");
		dump_expr(s->expr, out);
		nnc_buf_puts(out, ")");
		return;
	case STMT_TRAIN:
		nnc_buf_puts(out, "(train");
		for (int i = 0; i < s->nsettings; i++) {
			nnc_buf_printf(out, "\n  %s: ", s->settings[i].name);
			dump_expr(s->settings[i].value, out);
		}
		nnc_buf_puts(out, ")");
		return;
	}
	nnc_unreachable();
}

void nnc_ast_dump(const nnc_program *prog, nnc_buf *out)
{
	for (int i = 0; i < prog->nstmts; i++) {
		dump_stmt(&prog->stmts[i], 0, out);
		nnc_buf_puts(out, "\n");
	}
}
