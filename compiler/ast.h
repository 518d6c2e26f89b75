/*
 * ast.h - the syntax tree of a .nn program, as built by the parser
 * (grammar/parser.y) and read by the semantic checks (compiler/sema.c).
 *
 * The tree is a plain record of what was written: no names are resolved and
 * no shapes are known yet.  `a |> f(args)` is desugared by the parser into the
 * call `f(a, args)` (with `piped` set), and a bare name after `|>` becomes a
 * call with no other arguments.  All memory comes from the compiler's arena
 * (nnc_alloc), freed once at exit.
 */
#ifndef NNC_AST_H
#define NNC_AST_H

#include <stdbool.h>
#include <stdint.h>

/* A source span: 1-based line and column of the first character, and of the
 * character just past the last one (end_col is exclusive). */
typedef struct nnc_loc {
	int line, col;
	int end_line, end_col;
} nnc_loc;

typedef struct nnc_ast nnc_ast;

/* One argument of a call, positional (name == NULL) or named (`lr: 0.1`). */
typedef struct nnc_arg {
	const char *name; /* NULL for a positional argument */
	nnc_loc name_loc;
	nnc_ast *value;
} nnc_arg;

typedef enum nnc_ast_kind {
	AST_NUM,   /* num, is_int */
	AST_STR,   /* str: contents with escapes already decoded */
	AST_NAME,  /* str: the identifier */
	AST_CALL,  /* str: callee name; args/nargs; callee_loc; piped */
	AST_BINOP, /* op: '+', '-', '*', '/', or a comparison or logical op
	            * (AST_OP_EQ ...: see nnc_ast_op_name); lhs, rhs */
	AST_NEG,   /* lhs */
	AST_NOT,   /* lhs: `!a`, a compile-time condition */
	AST_LIST,  /* args/nargs, all positional: `[0, 1, "x"]` */
} nnc_ast_kind;

struct nnc_ast {
	nnc_ast_kind kind;
	nnc_loc loc;       /* the whole expression */
	double num;        /* AST_NUM */
	bool is_int;       /* AST_NUM: written without '.' or exponent */
	const char *str;   /* AST_STR, AST_NAME, AST_CALL */
	char op;           /* AST_BINOP: the character, or one of AST_OP_* */
	bool piped;        /* AST_CALL: the first argument came from `|>` */
	nnc_ast *lhs;      /* AST_BINOP, AST_NEG */
	nnc_ast *rhs;      /* AST_BINOP */
	nnc_arg *args;     /* AST_CALL, AST_LIST */
	int nargs;
	nnc_loc callee_loc; /* AST_CALL: the callee name */
};

/* The two-character operators of AST_BINOP (the others are their own
 * character: '+' '-' '*' '/' '<' '>'). */
enum {
	AST_OP_EQ = 'e', /* == */
	AST_OP_NE = 'n', /* != */
	AST_OP_LE = 'l', /* <= */
	AST_OP_GE = 'g', /* >= */
	AST_OP_AND = '&', /* && */
	AST_OP_OR = '|',  /* || */
};
/* How op is written: "+", "==", "&&", ... */
const char *nnc_ast_op_name(char op);

/* A declared type: `f32[784]`, `f32[1, 28, 28]`, `class(10)`. */
typedef enum nnc_type_kind {
	TYPE_TENSOR, /* rank, dims */
	TYPE_CLASS,  /* dims[0] = number of classes; or, with vocab > 0, class(V)[T]: dims[0] = T */
	TYPE_TOKEN,  /* token(V)[T]: vocab = V, dims[0] = T */
} nnc_type_kind;

typedef struct nnc_type {
	nnc_type_kind kind;
	int rank;
	int64_t dims[4];
	int64_t vocab; /* class(V)[T], token(V)[T]: V; else 0 */
	nnc_loc loc;
} nnc_type;

typedef enum nnc_stmt_kind {
	STMT_MODEL,     /* model NAME             : name */
	STMT_INPUT,     /* input NAME : TYPE      : name, type */
	STMT_LABEL,     /* label NAME : TYPE      : name, type */
	STMT_LET,       /* NAME = EXPR            : name, expr */
	STMT_OUTPUT,    /* output EXPR            : expr (the value prediction reports) */
	STMT_LOSS,      /* loss EXPR              : expr (a call) */
	STMT_OPTIMIZER, /* optimizer EXPR         : expr (a call) */
	STMT_TRAIN,     /* train { KEY: EXPR ... } : settings/nsettings */
	STMT_BLOCK,     /* block NAME(PARAMS) { BODY } : name, params/nparams, body/nbody */
	STMT_LAYER,     /* layer NAME = CALL      : name, expr (a layer instance to share) */
	/* only in a block's body: */
	STMT_RETURN,    /* return EXPR            : expr */
	STMT_IF,        /* if EXPR { BODY } [else { ELSE }] : expr, body/nbody, else_body/nelse
	                 * (`else if` is an else body holding one STMT_IF) */
	STMT_REPEAT,    /* repeat EXPR { BODY }   : expr, body/nbody */
} nnc_stmt_kind;

typedef struct nnc_stmt {
	nnc_stmt_kind kind;
	nnc_loc loc;       /* the whole statement */
	const char *name;  /* MODEL, INPUT, LABEL, LET, BLOCK, LAYER */
	nnc_loc name_loc;
	nnc_ast *expr;     /* LET, OUTPUT, LOSS, OPTIMIZER, LAYER, RETURN, IF, REPEAT */
	/* which of these is valid depends on the kind (a union keeps a program
	 * of many statements small) */
	union {
		nnc_type type; /* INPUT, LABEL */
		struct {
			struct nnc_stmt *body; /* BLOCK, IF (the then part), REPEAT */
			int nbody;
			struct nnc_stmt *else_body; /* IF */
			int nelse;
		};
	};
	union {
		struct {
			nnc_arg *settings; /* TRAIN: every entry is named */
			int nsettings;
		};
		struct {
			nnc_arg *params; /* BLOCK: a positional one is a parameter
					  * without default (its value an AST_NAME), a
					  * named one has its default as the value */
			int nparams;
		};
	};
} nnc_stmt;

/* Whether statements of kind k have body/nbody (and else_body/nelse). */
bool nnc_stmt_has_body(nnc_stmt_kind k);

/* The program text, kept for diagnostics. */
typedef struct nnc_source {
	const char *path; /* as given on the command line */
	const char *text; /* whole file, NUL-terminated */
	long len;
} nnc_source;

typedef struct nnc_program {
	const nnc_source *src;
	nnc_stmt *stmts;
	int nstmts;
} nnc_program;

/* Parses `src`.  Reports every syntax error through diag.h (the parser
 * recovers at the next statement) and returns NULL if there was any. */
nnc_program *nnc_parse(const nnc_source *src);

/* Prints the tree (for --emit-ast and the parser tests). */
struct nnc_buf;
void nnc_ast_dump(const nnc_program *prog, struct nnc_buf *out);

#endif
