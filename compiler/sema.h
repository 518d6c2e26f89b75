/*
 * sema.h - what the files of the semantic phase share (internal to them).
 *
 *   sema.c         names, values, statements, constant folding, the driver nnc_sema
 *   sema_layers.c  the layer builders (dense, conv2d, pooling, activations)
 *   sema_train.c   the training configuration: optimizer, train block, data sources
 *   pass_init.c    the default-initialiser heuristic (a pass over the forward graph)
 *   pass_infer.c   the inference tail (a pass run after autodiff)
 *
 * Values are checked and built as in sema.c's header comment; every helper
 * here reports its own user errors and returns false, -1 or an error value.
 */
#ifndef NNC_SEMA_H
#define NNC_SEMA_H

#include "diag.h"
#include "ir.h"

typedef enum { V_ERROR, V_TENSOR, V_NUM, V_STR, V_NAME } val_kind;

typedef struct val {
	val_kind kind;
	int node;         /* V_TENSOR */
	double num;       /* V_NUM */
	const char *str;  /* V_STR, V_NAME */
	nnc_loc loc;
} val;

struct shared_layer;

typedef struct binding {
	const char *name;
	nnc_loc loc;
	int node;    /* -1 when its definition had an error */
	bool used;
	bool is_let; /* NAME = EXPR (not input or label) */
	/* in a block's body, a compile-time value instead of a node: an
	 * AST_NUM, AST_STR, AST_NAME (a bare word such as relu) or AST_LIST of
	 * them (node is -1) */
	const nnc_ast *lit;
	struct shared_layer *layer; /* `layer NAME = CALL`: node is -1 */
} binding;

/* `layer enc = dense(64)`: one layer instance, applied by `x |> enc`
 * wherever it is used; its parameters are made at the first use (their
 * shapes depend on its input) and reused by the others. */
typedef struct shared_layer {
	const nnc_ast *call; /* the layer call as written, without its input */
	const char *name;    /* the layer's full name: its parameters' prefix */
	int *params;         /* the PARAM nodes, in the order the builder makes them */
	int nparams, cap;
	int next;            /* while a later use is built: the next one to reuse */
	bool built, failed;
	nnc_loc first_use;
	int first_input;     /* the input node of the first use */
	const nnc_ast *use;  /* the call being built, and its input: */
	val input;
} shared_layer;

/* Layer names in one scope: the file, or one block instance. */
typedef struct name_count {
	const char *kind;
	int n;
} name_count;

typedef struct layer_scope {
	const char *prefix; /* "" at the top level, "stage1.residual2." in a block instance */
	name_count *counts; /* how many layers of each kind were named in it */
	int ncounts, cap;
} layer_scope;

typedef struct block_def block_def;

typedef struct sema {
	ir_graph *g;
	nnc_train_config *cfg; /* what the optimizer and the train block set */
	const nnc_source *src;
	binding *names;
	int nnames, cap;
	int *table;    /* hash table of names: index + 1 into names, 0 = free */
	int tsize;     /* a power of two, at least twice nnames */
	const nnc_stmt *defining; /* the NAME = EXPR being evaluated */
	int nconv_weights; /* top-level parameters named conv*.weight so far */
	layer_scope *lscope; /* where layers are named now */
	shared_layer *share; /* the shared layer being applied, or NULL */
	/* blocks (sema.c): their definitions, sorted by name; the expansion in
	 * progress (depth, statements run, its top-level call) */
	block_def *blocks;
	int nblocks;
	int depth;
	long steps;
	nnc_loc site; /* the top-level call of the expansion, where its parameters are reported */
	val ret;      /* the value a block's `return` gave; V_ERROR before */
	int first_node; /* the first node of the call being expanded (it names only its own) */
	bool returned;
	int ndropout;  /* dropouts so far: the next one's random stream (stable: it picks the masks) */
	const nnc_stmt *loss_stmt, *opt_stmt, *train_stmt, *model_stmt, *output_stmt;
	int errors0;   /* errors reported before this program's checks */
	bool label_ok; /* evaluating the loss's target, where the label belongs */
} sema;

/* The largest tensor nnc accepts, in elements (per sample if batched).
 * 2^31 floats is 8 GiB, far beyond any model this compiler is meant for;
 * the cap keeps every size and offset computation well inside int64_t. */
#define MAX_ELEMS ((int64_t)1 << 31)
/* The upper bound of whole-number options that have no tighter one. */
#define MAX_INT_ARG 1e15

/* The builtin names, for suggestions and for "'x' is a loss" messages. */
extern const char *const sema_builtin_layers[];
extern const char *const sema_loss_names[];
extern const char *const sema_opt_names[];
extern const char *const sema_data_names[];

/* ---- names and values (sema.c) ---- */
static inline val sema_verr(nnc_loc loc) { return (val){.kind = V_ERROR, .loc = loc}; }
static inline val sema_vtensor(int node, nnc_loc loc) { return (val){.kind = V_TENSOR, .node = node, .loc = loc}; }
binding *sema_lookup(sema *s, const char *name);
char *sema_join_choices(const char *const *c);
int sema_add_node(sema *s, ir_op op, int nin, const int *in, nnc_loc loc);
int sema_add_shaped(sema *s, ir_op op, int nin, const int *in, nnc_loc loc);
const nnc_arg *sema_find_named(const nnc_ast *call, const char *name);
const nnc_arg *sema_positional(const nnc_ast *call, int k);
bool sema_check_args(sema *s, const nnc_ast *call, int max_pos, const char *const *allowed);
bool sema_arg_num(sema *s, const nnc_arg *a, const char *what, double *out);
bool sema_arg_int_in(sema *s, const nnc_arg *a, const char *what, int64_t lo, double hi, int64_t *out);
bool sema_arg_int(sema *s, const nnc_arg *a, const char *what, int64_t lo, int64_t *out);
bool sema_float_ok(sema *s, nnc_loc loc, const char *what, double v);
bool sema_size_ok(sema *s, nnc_loc loc, const char *what, int rank, const int64_t *dims);
bool sema_arg_str(sema *s, const nnc_arg *a, const char *what, const char **out);
bool sema_arg_bool(sema *s, const nnc_arg *a, const char *what, bool *out);
val sema_tensor_arg(sema *s, const nnc_ast *call, int k, const char *what);
/* The full name of a layer of `kind` ("dense", "conv", ...) built now:
 * `name` (from its name: option) or kind + the count of that kind in the
 * scope, after the scope's prefix ("residual2.conv1").  Every builder of a
 * layer with parameters names it here. */
const char *sema_layer_name(sema *s, const char *kind, const char *name);
/* While a shared layer is applied again: its next parameter, checked to have
 * the shape dims (-1 after an error); else -2: make a new one and give it to
 * sema_param_made. */
int sema_shared_param(sema *s, int rank, const int64_t *dims);
void sema_param_made(sema *s, int node);
/* A call of a user-defined block or a shared layer: *out is its value and
 * true is returned; false if `call` is neither. */
bool sema_eval_user_call(sema *s, const nnc_ast **call, val *out);

/* ---- layers (sema_layers.c) ---- */
int sema_relayout(sema *s, int node, ir_layout want);
val sema_eval_call(sema *s, const nnc_ast *call);

/* ---- training configuration (sema_train.c) ---- */
void sema_stmt_optimizer(sema *s, const nnc_stmt *st);
/* The checks of the schedule that need the optimizer and the train block
 * both (after every statement). */
void sema_check_schedule(sema *s);
/* The augmentation against the input's shape (after every statement). */
void sema_check_augment(sema *s);
void sema_stmt_train(sema *s, const nnc_stmt *st);

/* ---- passes over the forward graph ---- */
void nnc_default_inits(ir_graph *g); /* pass_init.c */

#endif
