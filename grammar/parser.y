/*
 * parser.y - the grammar of .nn programs; builds the tree of compiler/ast.h.
 *
 * A pure (reentrant) LALR(1) parser driven by the reentrant scanner in
 * lexer.l.  Both share one nnc_parser record (the scanner's "extra" data):
 * the scanner keeps positions, the stack of open brackets and the last two
 * tokens in it, and the grammar actions append statements to it.
 *
 * Statements end at NEWLINE (or ';').  The scanner already drops newlines
 * inside ( ) and [ ], collapses blank and comment lines, and joins a line
 * that starts with '|>' to the previous one, so the grammar sees one
 * NEWLINE per logical line.  Memory is the compiler's arena: nothing here
 * is ever freed, hence no %destructor.
 *
 * Error handling: syntax errors go through yyreport_syntax_error below,
 * which words them with friendly token names ("unexpected ')', expected an
 * expression").  Recovery skips to the end of the statement (`error
 * stmt_end`) or, inside a train block, to the end of the line; the scanner
 * reports its own errors and returns YYerror, which enters recovery without
 * a second message.  A few heuristics (in the reporter and the scanner)
 * keep one mistake from being reported again on the lines that follow: an
 * unclosed bracket, a missing '}', a train block whose statement failed.
 */

%code top {
#include <string.h>
}

%code requires {
#include <stdbool.h>
#include <stdint.h>

#include "ast.h"
#include "util.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Locations are nnc_loc itself; a rule spans its first to its last symbol,
 * and an empty rule sits just after the previous symbol. */
#define YYLTYPE nnc_loc
#define YYLTYPE_IS_DECLARED 1
#define YYLLOC_DEFAULT(cur, rhs, n) \
	do { \
		if (n) { \
			(cur).line = YYRHSLOC(rhs, 1).line; \
			(cur).col = YYRHSLOC(rhs, 1).col; \
			(cur).end_line = YYRHSLOC(rhs, n).end_line; \
			(cur).end_col = YYRHSLOC(rhs, n).end_col; \
		} else { \
			(cur).line = (cur).end_line = YYRHSLOC(rhs, 0).end_line; \
			(cur).col = (cur).end_col = YYRHSLOC(rhs, 0).end_col; \
		} \
	} while (0)

/* An open '(', '[' or '{' and where it was opened. */
typedef struct nnc_bracket {
	char c;
	nnc_loc loc;
} nnc_bracket;

/* A growing list of call arguments, list elements or train settings. */
typedef struct nnc_arglist {
	nnc_arg *v;
	int n, cap;
} nnc_arglist;

/* A growing list of statements: a block's body. */
typedef struct nnc_stmtlist {
	nnc_stmt *v;
	int n, cap;
} nnc_stmtlist;

/* State shared by the scanner and the parser for one nnc_parse() call. */
typedef struct nnc_parser {
	const nnc_source *src;

	/* scanner position: next character to read */
	long offset;
	int line, col;
	int prev_line_end; /* column of the last '\n' consumed (for EOF) */
	bool at_line_start;
	bool eof_newline_sent;
	nnc_loc pending_nl; /* the line end held back in AFTER_NL */

	/* open brackets, innermost last */
	nnc_bracket *open;
	int nopen, capopen;
	int nbraces; /* how many of them are '{' (only a '}' closes one) */

	/* the last two tokens returned (the parser's lookahead is `tok`) */
	int tok, prev_tok;
	const char *tok_text, *prev_text; /* an identifier, keyword or number */
	bool tok_first_on_line;
	bool tok_before_colon; /* keyword followed by ':' (a misused setting key) */
	long ntokens;

	/* set from an error until the parser has skipped to where it resumes */
	bool recovering;

	/* A train block went wrong (it was closed right after an error, or
	 * its '{' was skipped with a bad statement): its remaining lines, a
	 * stray '}' and the rest of block_broken_line would only repeat the
	 * error, so they are not reported until a statement parses again. */
	bool block_broken;
	int block_broken_line;

	/* syntax errors are not reported while the '{' at this depth - 1 is
	 * still open (0 = report): set once a missing '}' is diagnosed */
	int quiet_depth;

	/* the program so far */
	nnc_stmt *stmts;
	int nstmts, capstmts;
} nnc_parser;
}

%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);

/* The reserved words, for the scanner and for "did you mean" hints. */
#define NNC_KEYWORDS(X) \
	X("model", TOK_MODEL) X("input", TOK_INPUT) X("label", TOK_LABEL) X("output", TOK_OUTPUT) \
	X("loss", TOK_LOSS) X("optimizer", TOK_OPTIMIZER) X("train", TOK_TRAIN)

/* Contextual keywords: the scanner makes these words keywords only where a
 * statement starts (`else` after a '}'), so values keep every name. */
#define NNC_CONTEXT_KEYWORDS(X) \
	X("block", TOK_BLOCK) X("layer", TOK_LAYER) X("return", TOK_RETURN) X("if", TOK_IF) \
	X("else", TOK_ELSE) X("repeat", TOK_REPEAT)
}

%code {
#include "diag.h"

static void yyerror(YYLTYPE *loc, yyscan_t scanner, nnc_parser *ps, const char *msg);

static nnc_ast *new_node(nnc_ast_kind kind, nnc_loc loc)
{
	nnc_ast *e = nnc_alloc(sizeof *e);
	e->kind = kind;
	e->loc = loc;
	return e;
}

static nnc_stmt *new_stmt(nnc_stmt_kind kind, nnc_loc loc)
{
	nnc_stmt *s = nnc_alloc(sizeof *s);
	s->kind = kind;
	s->loc = loc;
	return s;
}

static nnc_arglist *arglist_push(nnc_arglist *l, const char *name, nnc_loc name_loc, nnc_ast *value)
{
	if (!l)
		l = nnc_alloc(sizeof *l);
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 4;
		l->v = nnc_realloc_array(l->v, (size_t)l->n, (size_t)cap, sizeof *l->v);
		l->cap = cap;
	}
	l->v[l->n++] = (nnc_arg){name, name_loc, value};
	return l;
}

/* f(args), or `lhs |> f(args)` when lhs is not NULL. */
static nnc_ast *new_call(nnc_loc loc, const char *f, nnc_loc f_loc, nnc_ast *lhs, const nnc_arglist *args)
{
	nnc_ast *e = new_node(AST_CALL, loc);
	e->str = f;
	e->callee_loc = f_loc;
	e->piped = lhs != NULL;
	int n = (lhs ? 1 : 0) + (args ? args->n : 0);
	e->args = nnc_alloc((size_t)(n ? n : 1) * sizeof *e->args);
	if (lhs)
		e->args[e->nargs++] = (nnc_arg){NULL, {0, 0, 0, 0}, lhs};
	for (int i = 0; args && i < args->n; i++)
		e->args[e->nargs++] = args->v[i];
	return e;
}

static nnc_stmtlist *stmtlist_push(nnc_stmtlist *l, const nnc_stmt *s)
{
	if (!l)
		l = nnc_alloc(sizeof *l);
	if (!s)
		return l;
	if (l->n == l->cap) {
		int cap = l->cap ? l->cap * 2 : 8;
		l->v = nnc_realloc_array(l->v, (size_t)l->n, (size_t)cap, sizeof *l->v);
		l->cap = cap;
	}
	l->v[l->n++] = *s;
	return l;
}

static nnc_ast *new_binop(nnc_loc loc, char op, nnc_ast *lhs, nnc_ast *rhs)
{
	nnc_ast *e = new_node(AST_BINOP, loc);
	e->op = op;
	e->lhs = lhs;
	e->rhs = rhs;
	return e;
}

/* block NAME(PARAMS): a parameter is a name, or `name: default`. */
static nnc_stmt *new_block(nnc_parser *ps, nnc_loc loc, const char *name, nnc_loc name_loc,
			   const nnc_arglist *params, const nnc_stmtlist *body)
{
	nnc_stmt *s = new_stmt(STMT_BLOCK, loc);
	s->name = name;
	s->name_loc = name_loc;
	s->params = params ? params->v : NULL;
	s->nparams = params ? params->n : 0;
	s->body = body ? body->v : NULL;
	s->nbody = body ? body->n : 0;
	for (int i = 0; i < s->nparams; i++)
		if (!s->params[i].name && s->params[i].value->kind != AST_NAME) {
			nnc_error(ps->src, s->params[i].value->loc,
				  "a block's parameter is a name, or 'name: default'");
			return NULL;
		}
	return s;
}

static void push_stmt(nnc_parser *ps, const nnc_stmt *s)
{
	if (ps->nstmts == ps->capstmts) {
		int cap = ps->capstmts ? ps->capstmts * 2 : 16;
		ps->stmts = nnc_realloc_array(ps->stmts, (size_t)ps->nstmts, (size_t)cap, sizeof *ps->stmts);
		ps->capstmts = cap;
	}
	ps->stmts[ps->nstmts++] = *s;
}

/* One dimension of f32[...] or the count of class(N): a positive integer.
 * Returns 0 (after reporting) if it is not one. */
static int64_t check_dim(nnc_parser *ps, double v, bool is_int, const char *text, nnc_loc loc,
			 const char *what)
{
	if (!is_int || v < 1) {
		nnc_error(ps->src, loc, "the %s must be a positive integer, not %s", what, text);
		return 0;
	}
	if (v > 2147483647.0) {
		nnc_error(ps->src, loc, "the %s %s is too large (at most 2147483647)", what, text);
		return 0;
	}
	return (int64_t)v;
}

static const char *const type_names[] = {"f32", "class", "token", NULL};

/* Reports `name` (seen where a type was expected, before '[' if
 * `tensor`) as unknown. */
static void unknown_type(nnc_parser *ps, const char *name, nnc_loc loc, bool tensor)
{
	nnc_error(ps->src, loc, "unknown type '%s'; expected f32[dims] or class(N)", name);
	const char *best = nnc_suggest(name, type_names);
	if (best)
		nnc_hint("did you mean '%s'?", best);
	else if (tensor)
		nnc_hint("the only element type is f32");
}

/* Whether `name`, written before '[' in a type spanning `loc`, is f32
 * (reports it if not). */
static bool check_tensor_name(nnc_parser *ps, const char *name, nnc_loc name_loc, nnc_loc loc)
{
	if (!strcmp(name, "f32"))
		return true;
	if (!strcmp(name, "class"))
		nnc_error(ps->src, loc, "'class' takes its number of classes in parentheses, as in class(10)");
	else
		unknown_type(ps, name, name_loc, true);
	return false;
}
}

%define api.pure full
%define api.token.prefix {TOK_}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {nnc_parser *ps}

%union {
	nnc_ast *ast;
	const char *str;
	struct {
		double v;
		bool is_int;
		const char *text;
	} num;
	nnc_arglist *list;
	nnc_type type;
	nnc_stmt *stmt;
	nnc_arg arg;
	nnc_stmtlist *body;
}

/* The order of declaration is the order in which expected tokens are
 * listed in messages. */
%token <str> IDENT "identifier"
%token <num> NUMBER "number"
%token <str> STRING "string"
%token NEWLINE "end of line"
%token PIPE "|>"
%token MODEL "model"
%token INPUT "input"
%token LABEL "label"
%token OUTPUT "output"
%token LOSS "loss"
%token OPTIMIZER "optimizer"
%token TRAIN "train"
%token BLOCK "block"
%token LAYER "layer"
%token RETURN "return"
%token IF "if"
%token ELSE "else"
%token REPEAT "repeat"
%token EQ "=="
%token NE "!="
%token LE "<="
%token GE ">="
%token AND "&&"
%token OR "||"
%token ',' ')' ']' '}' ':' '=' ';' '<' '>' '!'

%type <stmt> stmt bstmt if_stmt
%type <ast> expr disj conj neg cmp sum term unary primary
%type <body> body bseq blines
%type <list> args arglist elems elemlist items block
%type <type> type dims
%type <num> dim
%type <arg> setting

%%

program:
	%empty
|	program stmt stmt_end {
		if ($2)
			push_stmt(ps, $2);
		ps->block_broken = false;
	}
|	program error stmt_end		{ yyerrok; ps->recovering = false; }
;

stmt_end: NEWLINE | ';' | ';' NEWLINE ;

stmt:
	MODEL IDENT {
		$$ = new_stmt(STMT_MODEL, @$);
		$$->name = $2;
		$$->name_loc = @2;
	}
|	INPUT IDENT ':' type {
		$$ = new_stmt(STMT_INPUT, @$);
		$$->name = $2;
		$$->name_loc = @2;
		$$->type = $4;
	}
|	LABEL IDENT ':' type {
		$$ = new_stmt(STMT_LABEL, @$);
		$$->name = $2;
		$$->name_loc = @2;
		$$->type = $4;
	}
|	IDENT '=' expr {
		$$ = new_stmt(STMT_LET, @$);
		$$->name = $1;
		$$->name_loc = @1;
		$$->expr = $3;
	}
|	OUTPUT expr {
		$$ = new_stmt(STMT_OUTPUT, @$);
		$$->expr = $2;
	}
|	LOSS expr {
		$$ = new_stmt(STMT_LOSS, @$);
		$$->expr = $2;
	}
|	OPTIMIZER expr {
		$$ = new_stmt(STMT_OPTIMIZER, @$);
		$$->expr = $2;
	}
|	TRAIN opt_newline block {
		$$ = new_stmt(STMT_TRAIN, @$);
		$$->settings = $3 ? $3->v : NULL;
		$$->nsettings = $3 ? $3->n : 0;
	}
|	BLOCK IDENT '(' args ')' body	{ $$ = new_block(ps, @$, $2, @2, $4, $6); }
|	LAYER IDENT '=' expr {
		$$ = new_stmt(STMT_LAYER, @$);
		$$->name = $2;
		$$->name_loc = @2;
		$$->expr = $4;
	}
|	IDENT block {
		/* most likely a misspelt 'train': check the block anyway */
		nnc_error(ps->src, @1, "unknown statement '%s'", $1);
		if (nnc_suggest($1, (const char *const[]){"train", NULL}))
			nnc_hint("did you mean 'train'?");
		$$ = NULL;
	}
;

/* The { } of a train block. */
block:
	'{' items '}'			{ $$ = $2; }
|	'{' items error '}' {
		yyerrok;
		ps->recovering = false;
		ps->block_broken = true;
		ps->block_broken_line = @4.line;
		$$ = $2;
	}
;

opt_newline: %empty | NEWLINE ;

/* The { } of a block, an if or a repeat: statements, one a line; the last
 * one may end at the '}' (`if c { s = x }`). */
body:
	'{' bseq '}'			{ $$ = $2; }
;

bseq:
	blines
|	blines bstmt			{ $$ = stmtlist_push($1, $2); }
;

blines:
	%empty				{ $$ = stmtlist_push(NULL, NULL); }
|	blines NEWLINE			{ $$ = $1; }
|	blines bstmt NEWLINE		{ $$ = stmtlist_push($1, $2); }
|	blines bstmt ';'		{ $$ = stmtlist_push($1, $2); }
|	blines error NEWLINE {
		yyerrok;
		ps->recovering = false;
		$$ = $1;
	}
;

bstmt:
	IDENT '=' expr {
		$$ = new_stmt(STMT_LET, @$);
		$$->name = $1;
		$$->name_loc = @1;
		$$->expr = $3;
	}
|	LAYER IDENT '=' expr {
		$$ = new_stmt(STMT_LAYER, @$);
		$$->name = $2;
		$$->name_loc = @2;
		$$->expr = $4;
	}
|	RETURN expr {
		$$ = new_stmt(STMT_RETURN, @$);
		$$->expr = $2;
	}
|	if_stmt
|	REPEAT expr body {
		$$ = new_stmt(STMT_REPEAT, @$);
		$$->expr = $2;
		$$->body = $3->v;
		$$->nbody = $3->n;
	}
;

if_stmt:
	IF expr body {
		$$ = new_stmt(STMT_IF, @$);
		$$->expr = $2;
		$$->body = $3->v;
		$$->nbody = $3->n;
	}
|	IF expr body ELSE body {
		$$ = new_stmt(STMT_IF, @$);
		$$->expr = $2;
		$$->body = $3->v;
		$$->nbody = $3->n;
		$$->else_body = $5->v;
		$$->nelse = $5->n;
	}
|	IF expr body ELSE if_stmt {
		$$ = new_stmt(STMT_IF, @$);
		$$->expr = $2;
		$$->body = $3->v;
		$$->nbody = $3->n;
		$$->else_body = $5;
		$$->nelse = 1;
	}
;

/* The settings of a train block, separated by newlines, commas, or just
 * spaces (`batch: 64  epochs: 5`: a setting's value cannot continue with a
 * name, so the next `key:` starts a new one).  After an error the rest of
 * the line is skipped: a ',' is no place to resume, as it may be inside the
 * arguments of a call. */
items:
	%empty				{ $$ = NULL; }
|	items NEWLINE			{ $$ = $1; }
|	items setting opt_comma		{ $$ = arglist_push($1, $2.name, $2.name_loc, $2.value); }
|	items error NEWLINE {
		yyerrok;
		ps->recovering = false;
		$$ = $1;
	}
;

setting:
	IDENT ':' expr		{ $$ = (nnc_arg){$1, @1, $3}; }
|	IDENT '=' expr {
		nnc_error(ps->src, @2, "a train setting is written '%s: value', with ':' not '='", $1);
		nnc_hint("inside train { } each setting is 'key: value'; '=' defines a name outside it");
		$$ = (nnc_arg){$1, @1, $3};
	}
;

/* f32[d1, ...] or class(N). */
type:
	IDENT '[' dims opt_comma ']' {
		$$ = $3;
		$$.loc = @$;
		if (check_tensor_name(ps, $1, @1, @$) && $$.rank > 4)
			nnc_error(ps->src, @3, "a tensor type has at most 4 dimensions, not %d", $$.rank);
		if ($$.rank > 4)
			$$.rank = 4;
	}
|	IDENT '[' ']' {
		memset(&$$, 0, sizeof $$);
		$$.loc = @$;
		if (check_tensor_name(ps, $1, @1, @$))
			nnc_error(ps->src, @$, "a tensor type needs at least one dimension, as in f32[4]");
	}
|	IDENT '(' dim ')' {
		memset(&$$, 0, sizeof $$);
		$$.kind = TYPE_CLASS;
		$$.rank = 1;
		$$.loc = @$;
		if (strcmp($1, "class") != 0) {
			if (!strcmp($1, "f32"))
				nnc_error(ps->src, @$, "'f32' takes its dimensions in brackets, as in f32[4]");
			else if (!strcmp($1, "token"))
				nnc_error(ps->src, @$, "'token' needs its number of positions too, as in token(%s)[64]", $3.text);
			else
				unknown_type(ps, $1, @1, false);
		} else {
			$$.dims[0] = check_dim(ps, $3.v, $3.is_int, $3.text, @3, "number of classes");
		}
	}
	/* class(V)[T] (a class per position) or token(V)[T] (docs/language.md
	 * "Sequences"): vocab = V, rank/dims the positions */
|	IDENT '(' dim ')' '[' dims opt_comma ']' {
		$$ = $6;
		$$.loc = @$;
		bool token = !strcmp($1, "token");
		$$.kind = token ? TYPE_TOKEN : TYPE_CLASS;
		if (!token && strcmp($1, "class") != 0)
			unknown_type(ps, $1, @1, false);
		$$.vocab = check_dim(ps, $3.v, $3.is_int, $3.text, @3, token ? "vocabulary size" : "number of classes");
		if ($$.rank != 1)
			nnc_error(ps->src, @6, "a sequence has one axis of positions, as in %s(%lld)[64], not %d", $1,
				  (long long)$$.vocab, $$.rank);
		$$.rank = 1;
	}
;

opt_comma: %empty | ',' ;

/* rank counts every dimension written, dims[] keeps the first four. */
dims:
	dim {
		memset(&$$, 0, sizeof $$);
		$$.kind = TYPE_TENSOR;
		$$.rank = 1;
		$$.dims[0] = check_dim(ps, $1.v, $1.is_int, $1.text, @1, "dimension");
	}
|	dims ',' dim {
		$$ = $1;
		int64_t d = check_dim(ps, $3.v, $3.is_int, $3.text, @3, "dimension");
		if ($$.rank < 4)
			$$.dims[$$.rank] = d;
		$$.rank++;
	}
;

/* A negative dimension is parsed so that it gets a clear message. */
dim:
	NUMBER		{ $$ = $1; }
|	'-' NUMBER	{ $$ = $2; $$.v = -$2.v; $$.text = nnc_sprintf("-%s", $2.text); }
;

/* Lowest precedence: `a |> f(args)` and `a |> f`, left-associative. */
expr:
	disj
|	expr PIPE IDENT				{ $$ = new_call(@$, $3, @3, $1, NULL); }
|	expr PIPE IDENT '(' args ')'		{ $$ = new_call(@$, $3, @3, $1, $5); }
;

/* Conditions, computed at compile time: a || b, a && b, !a, and one
 * comparison (a < b < c is not one). */
disj:
	conj
|	disj OR conj			{ $$ = new_binop(@$, AST_OP_OR, $1, $3); }
;

conj:
	neg
|	conj AND neg			{ $$ = new_binop(@$, AST_OP_AND, $1, $3); }
;

neg:
	cmp
|	'!' neg {
		$$ = new_node(AST_NOT, @$);
		$$->lhs = $2;
	}
;

cmp:
	sum
|	sum EQ sum			{ $$ = new_binop(@$, AST_OP_EQ, $1, $3); }
|	sum NE sum			{ $$ = new_binop(@$, AST_OP_NE, $1, $3); }
|	sum '<' sum			{ $$ = new_binop(@$, '<', $1, $3); }
|	sum LE sum			{ $$ = new_binop(@$, AST_OP_LE, $1, $3); }
|	sum '>' sum			{ $$ = new_binop(@$, '>', $1, $3); }
|	sum GE sum			{ $$ = new_binop(@$, AST_OP_GE, $1, $3); }
;

sum:
	term
|	sum '+' term {
		$$ = new_node(AST_BINOP, @$);
		$$->op = '+';
		$$->lhs = $1;
		$$->rhs = $3;
	}
|	sum '-' term {
		$$ = new_node(AST_BINOP, @$);
		$$->op = '-';
		$$->lhs = $1;
		$$->rhs = $3;
	}
;

term:
	unary
|	term '*' unary {
		$$ = new_node(AST_BINOP, @$);
		$$->op = '*';
		$$->lhs = $1;
		$$->rhs = $3;
	}
|	term '/' unary {
		$$ = new_node(AST_BINOP, @$);
		$$->op = '/';
		$$->lhs = $1;
		$$->rhs = $3;
	}
;

unary:
	primary
|	'-' unary {
		$$ = new_node(AST_NEG, @$);
		$$->lhs = $2;
	}
;

primary:
	NUMBER {
		$$ = new_node(AST_NUM, @$);
		$$->num = $1.v;
		$$->is_int = $1.is_int;
	}
|	STRING {
		$$ = new_node(AST_STR, @$);
		$$->str = $1;
	}
|	IDENT {
		$$ = new_node(AST_NAME, @$);
		$$->str = $1;
	}
|	IDENT '(' args ')'	{ $$ = new_call(@$, $1, @1, NULL, $3); }
|	'[' elems ']' {
		$$ = new_node(AST_LIST, @$);
		$$->args = $2 ? $2->v : NULL;
		$$->nargs = $2 ? $2->n : 0;
	}
|	'(' expr ')'		{ $$ = $2; }
;

/* Call arguments: positional or `name: value`, trailing comma allowed. */
args:
	%empty			{ $$ = NULL; }
|	arglist
|	arglist ','
;

arglist:
	expr				{ $$ = arglist_push(NULL, NULL, (nnc_loc){0, 0, 0, 0}, $1); }
|	IDENT ':' expr			{ $$ = arglist_push(NULL, $1, @1, $3); }
|	arglist ',' expr		{ $$ = arglist_push($1, NULL, (nnc_loc){0, 0, 0, 0}, $3); }
|	arglist ',' IDENT ':' expr	{ $$ = arglist_push($1, $3, @3, $5); }
;

/* List elements: positional only, trailing comma allowed. */
elems:
	%empty			{ $$ = NULL; }
|	elemlist
|	elemlist ','
;

elemlist:
	expr			{ $$ = arglist_push(NULL, NULL, (nnc_loc){0, 0, 0, 0}, $1); }
|	elemlist ',' expr	{ $$ = arglist_push($1, NULL, (nnc_loc){0, 0, 0, 0}, $3); }
;

%%

/* ---- syntax error messages ---- */

static bool is_keyword(yysymbol_kind_t s)
{
	return s >= YYSYMBOL_MODEL && s <= YYSYMBOL_REPEAT;
}

static bool is_context_keyword(yysymbol_kind_t s)
{
	return s >= YYSYMBOL_BLOCK && s <= YYSYMBOL_REPEAT;
}

static const char *const keyword_names[] = {
#define KEYWORD(name, tok) name,
	NNC_KEYWORDS(KEYWORD) NNC_CONTEXT_KEYWORDS(KEYWORD)
#undef KEYWORD
	NULL,
};

/* Whether `s` can be the first token of an expression. */
static bool starts_expr(yysymbol_kind_t s)
{
	return s == YYSYMBOL_NUMBER || s == YYSYMBOL_STRING || s == YYSYMBOL_IDENT || s == YYTRANSLATE('(') ||
	       s == YYTRANSLATE('[') || s == YYTRANSLATE('-');
}

/* Binary operators: they could continue almost any expression, so they
 * are left out of "expected ..." lists. */
static bool is_binop(yysymbol_kind_t s)
{
	return s == YYSYMBOL_PIPE || s == YYTRANSLATE('+') || s == YYTRANSLATE('-') || s == YYTRANSLATE('*') ||
	       s == YYTRANSLATE('/') || s == YYSYMBOL_EQ || s == YYSYMBOL_NE || s == YYSYMBOL_LE || s == YYSYMBOL_GE ||
	       s == YYTRANSLATE('<') || s == YYTRANSLATE('>') || s == YYSYMBOL_AND || s == YYSYMBOL_OR;
}

/* The lookahead token as the message names it: "identifier 'x'". */
static const char *describe_token(const nnc_parser *ps, yysymbol_kind_t s)
{
	switch (s) {
	case YYSYMBOL_YYEOF:
		return "end of file";
	case YYSYMBOL_NEWLINE:
		return "end of line";
	case YYSYMBOL_IDENT:
		return nnc_sprintf("identifier '%s'", ps->tok_text);
	case YYSYMBOL_NUMBER:
		return nnc_sprintf("number %s", ps->tok_text);
	case YYSYMBOL_STRING:
		return "string";
	case YYSYMBOL_PIPE:
		return "'|>'";
	default:
		if (is_keyword(s))
			return nnc_sprintf("keyword '%s'", yysymbol_name(s));
		return yysymbol_name(s); /* a character token: "')'" */
	}
}

/* An expected token as the message lists it: "an identifier". */
static const char *describe_expected(yysymbol_kind_t s)
{
	switch (s) {
	case YYSYMBOL_YYEOF:
		return "end of file";
	case YYSYMBOL_NEWLINE:
		return "end of line";
	case YYSYMBOL_IDENT:
		return "an identifier";
	case YYSYMBOL_NUMBER:
		return "a number";
	case YYSYMBOL_STRING:
		return "a string";
	case YYSYMBOL_PIPE:
		return "'|>'";
	default:
		if (is_keyword(s))
			return nnc_sprintf("'%s'", yysymbol_name(s));
		return yysymbol_name(s);
	}
}

static yysymbol_kind_t closer_symbol(char open)
{
	return open == '(' ? YYTRANSLATE(')') : open == '[' ? YYTRANSLATE(']') : YYTRANSLATE('}');
}

/* What the parser was looking at when it found a syntax error. */
typedef struct syntax_error {
	yysymbol_kind_t la;     /* the unexpected token */
	nnc_loc loc;
	bool has[YYNTOKENS];    /* the tokens it would have accepted */
	int n;
	yysymbol_kind_t prev;   /* the token before */
	bool want_stmt;         /* the start of a statement */
	bool want_expr;         /* any token that starts an expression */
	bool want_type;         /* the type after `input x :` */
	bool want_callee;       /* the name after '|>' */
	bool bad_start;         /* a statement that starts with a name and no '=' */
	bool orphan_setting;    /* `key: value` outside a train block */
	const nnc_bracket *open; /* the innermost open bracket, if any */
	bool later_line;        /* ... and the error is on a later line (or at EOF) */
	bool stmt_in_block;     /* a statement keyword where a setting belongs */
} syntax_error;

static void describe_error(const yypcontext_t *ctx, const nnc_parser *ps, syntax_error *e)
{
	e->la = yypcontext_token(ctx);
	e->loc = *yypcontext_location(ctx);
	yysymbol_kind_t exp[YYNTOKENS];
	e->n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
	if (e->n < 0)
		e->n = 0;
	for (int i = 0; i < e->n; i++)
		e->has[exp[i]] = true;
	e->prev = YYTRANSLATE(ps->prev_tok);

	e->want_expr = true;
	for (int s = 0; s < YYNTOKENS; s++)
		if (starts_expr((yysymbol_kind_t)s))
			e->want_expr = e->want_expr && e->has[s];
	e->want_stmt = e->has[YYSYMBOL_MODEL];
	e->want_type = e->n == 1 && e->has[YYSYMBOL_IDENT] && e->prev == YYTRANSLATE(':');
	e->want_callee = e->n == 1 && e->has[YYSYMBOL_IDENT] && e->prev == YYSYMBOL_PIPE;
	/* in a train block a name may be followed by ':' too */
	e->bad_start = e->has[YYTRANSLATE('=')] && !e->has[YYTRANSLATE(':')] && e->prev == YYSYMBOL_IDENT;
	e->orphan_setting = e->bad_start && e->la == YYTRANSLATE(':');

	e->open = ps->nopen ? &ps->open[ps->nopen - 1] : NULL;
	e->later_line = e->la == YYSYMBOL_YYEOF || (e->open && e->loc.line > e->open->loc.line);
	e->stmt_in_block = e->open && e->open->c == '{' && is_keyword(e->la) && !is_context_keyword(e->la) &&
			   ps->tok_first_on_line &&
			   !ps->tok_before_colon;
}

/*
 * "unexpected X, expected A, B or C", where the expected tokens are
 * summarised: every token that can start an expression becomes "an
 * expression", the start of a statement becomes "a statement", and binary
 * operators (which could always continue what came before) are left out.
 */
static void print_message(const nnc_parser *ps, const syntax_error *e)
{
	const char *items[YYNTOKENS + 1];
	int k = 0;
	if (e->want_stmt)
		items[k++] = "a statement";
	else if (e->want_type)
		items[k++] = "a type such as f32[4] or class(10)";
	else if (e->want_callee)
		items[k++] = "a function name or call";
	else {
		if (e->want_expr)
			items[k++] = "an expression";
		/* After a name that could end an expression, '(' (a call) and ':'
		 * (a named argument) are as optional as an operator. */
		bool name_done = e->prev == YYSYMBOL_IDENT &&
				 (e->has[YYSYMBOL_NEWLINE] || e->has[YYTRANSLATE(',')] || e->has[YYTRANSLATE(')')] ||
				  e->has[YYTRANSLATE(']')] || e->has[YYTRANSLATE('}')]);
		for (int s = 0; s < YYNTOKENS; s++) {
			if (!e->has[s] || (e->want_expr && (starts_expr(s) || s == YYTRANSLATE('!'))) || is_binop(s))
				continue;
			if (s == YYTRANSLATE(';') && e->has[YYSYMBOL_NEWLINE])
				continue;
			if (name_done && (s == YYTRANSLATE('(') || s == YYTRANSLATE(':')))
				continue;
			if (e->bad_start && s == YYTRANSLATE('{')) /* there only to catch a misspelt 'train' */
				continue;
			items[k++] = describe_expected(s);
		}
	}

	nnc_buf msg = {0};
	nnc_buf_printf(&msg, "unexpected %s", describe_token(ps, e->la));
	if (e->want_callee)
		nnc_buf_puts(&msg, " after '|>'");
	if (k > 0 && k <= 5) {
		nnc_buf_puts(&msg, ", expected ");
		for (int i = 0; i < k; i++)
			nnc_buf_printf(&msg, "%s%s", i == 0 ? "" : i == k - 1 ? " or " : ", ", items[i]);
	}
	nnc_error(ps->src, e->loc, "%s", msg.data);
	nnc_buf_free(&msg);
}

/* The likely cause, where the context shows it. */
static void print_hints(const nnc_parser *ps, const syntax_error *e)
{
	/* A bracket still open from an earlier line is the likely culprit; for
	 * a '{', only if the file ends or a statement starts inside it. */
	const nnc_bracket *b = e->open;
	if (b && e->later_line && e->has[closer_symbol(b->c)] &&
	    (b->c != '{' || e->la == YYSYMBOL_YYEOF || e->stmt_in_block))
		nnc_note(ps->src, b->loc, "to match this '%c'", b->c);

	const char *suggestion = e->bad_start && ps->prev_text ? nnc_suggest(ps->prev_text, keyword_names) : NULL;
	if (e->stmt_in_block)
		nnc_hint("a '}' is missing before this statement");
	else if (e->la == YYSYMBOL_ELSE && !e->has[YYSYMBOL_ELSE])
		nnc_hint("'else' follows the '}' of its 'if' on the same line: '} else {'");
	else if (is_context_keyword(e->la) && e->la != YYSYMBOL_LAYER && e->la != YYSYMBOL_BLOCK && e->want_stmt)
		nnc_hint("'%s' is only allowed inside a block's body", yysymbol_name(e->la));
	else if (is_keyword(e->la) && !is_context_keyword(e->la) && (e->want_expr || e->has[YYSYMBOL_IDENT]))
		nnc_hint("'%s' is a reserved keyword and cannot be used as a name", yysymbol_name(e->la));
	else if (e->la == YYTRANSLATE('=') && is_keyword(e->prev))
		nnc_hint("'%s' is a reserved keyword and cannot be used as a name", yysymbol_name(e->prev));
	else if (e->want_callee)
		nnc_hint("the right side of '|>' must be a name or a call, as in 'x |> relu' or 'x |> dense(10)'");
	else if (e->bad_start && e->la == YYTRANSLATE('('))
		nnc_hint("a call is not a statement by itself; give its value a name: 'y = f(...)'");
	else if (e->orphan_setting)
		nnc_hint("a name is defined with '='; 'key: value' is only for train settings and named arguments");
	else if (suggestion)
		nnc_hint("did you mean '%s'?", suggestion);
	else if (e->la == YYSYMBOL_IDENT && ps->tok_text &&
		 (!strcmp(ps->tok_text, "and") || !strcmp(ps->tok_text, "or") || !strcmp(ps->tok_text, "not")))
		nnc_hint("conditions are combined with '&&', '||' and '!'");
	else if (e->has[YYTRANSLATE('{')] && !e->bad_start)
		nnc_hint("a train block is written 'train { key: value, ... }'");
}

/*
 * Reports a syntax error, unless it only repeats an earlier one, and
 * prepares the recovery, which skips to the end of the statement or line.
 */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, nnc_parser *ps)
{
	(void)scanner;
	ps->recovering = true;
	/* a missing '}' was reported: the rest of the block is noise */
	if (ps->quiet_depth && ps->nopen >= ps->quiet_depth)
		return 0;
	ps->quiet_depth = 0;

	syntax_error e = {0};
	describe_error(ctx, ps, &e);
	/* (a broken block's body: its return, if, repeat lines too) */
	if (ps->block_broken && (e.orphan_setting ||
				 (e.want_stmt && (e.la == YYTRANSLATE('}') || is_context_keyword(e.la))) ||
				 e.loc.line == ps->block_broken_line))
		return 0;
	/* after a setting outside a block, a 'train' without its '{' or an
	 * unexpected '{', the block's other lines follow */
	ps->block_broken = e.orphan_setting || (e.has[YYTRANSLATE('{')] && !e.bad_start) || e.la == YYTRANSLATE('{');
	ps->block_broken_line = 0;

	print_message(ps, &e);
	print_hints(ps, &e);

	/* If the error is on a later line than an open '(' or '[', that bracket
	 * was most likely never closed: forget it so that the end of this line
	 * ends the statement instead of the whole rest of the file being
	 * skipped.  A statement keyword inside a train block likewise means a
	 * missing '}': say nothing more until that block is closed. */
	if (e.open && e.later_line && e.open->c != '{') {
		while (ps->nopen > 0 && ps->open[ps->nopen - 1].c != '{')
			ps->nopen--;
	} else if (e.stmt_in_block) {
		ps->quiet_depth = ps->nopen;
	}
	return 0;
}

/* Only bison's own failures get here: syntax errors go through
 * yyreport_syntax_error.  The one a program can cause is a stack overflow,
 * from thousands of nested brackets or unary minuses. */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, nnc_parser *ps, const char *msg)
{
	(void)scanner;
	if (!strcmp(msg, "memory exhausted"))
		nnc_error(ps->src, *loc, "the program is nested too deeply here for the parser (more than %d levels)",
			  YYMAXDEPTH);
	else
		nnc_error(ps->src, *loc, "%s", msg);
}
