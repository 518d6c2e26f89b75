/*
 * sema.c - semantic checks of a parsed program, and construction of the
 * forward graph with shape inference.
 *
 * Statements are checked in order; a name must be defined before it is used
 * (so the graph is built already in topological order).  Every value is
 * either a tensor (an IR node) or a compile-time number (`1/255`).  Errors
 * are reported and checking continues with the next statement, so one run
 * shows every independent mistake; a statement whose value could not be
 * built binds its name to an error marker that silences follow-on errors.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* realpath, PATH_MAX (LLVM's flags set it too) */
#endif
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

typedef struct binding {
	const char *name;
	nnc_loc loc;
	int node;    /* -1 when its definition had an error */
	bool used;
	bool is_let; /* NAME = EXPR (not input or label) */
} binding;

typedef struct sema {
	ir_graph *g;
	const nnc_source *src;
	binding *names;
	int nnames, cap;
	int *table;    /* hash table of names: index + 1 into names, 0 = free */
	int tsize;     /* a power of two, at least twice nnames */
	const nnc_stmt *defining; /* the NAME = EXPR being evaluated */
	int ndense;
	int nconv_weights; /* parameters named conv*.weight so far */
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

static const char *const builtin_layers[] = {"dense", "conv2d", "maxpool", "avgpool", "global_avgpool", "flatten",
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) name,
#include "acts.def"
#undef ACT
					     "softmax", NULL};
static const char *const loss_names[] = {"softmax_cross_entropy", "mse", "binary_cross_entropy", NULL};
static const char *const opt_names[] = {"sgd", "adam", NULL};
static const char *const data_names[] = {"idx", "csv", "xor", "moons", "circles", "spiral", "parity", "majority", NULL};
static const char *const init_names[] = {"glorot", "xavier", "he", "lecun", "zeros", "normal", "uniform", "constant", NULL};
static const char *const train_keys[] = {"data", "test", "batch", "epochs", "seed", NULL};

/* ---- names ---- */

/* Names live in a hash table: a program of 100,000 definitions looked
 * each one up in the list of all before it (16 s for 20,000). */
static unsigned name_slot(const sema *s, const char *name)
{
	return (unsigned)nnc_hash(NNC_HASH_INIT, name, strlen(name)) & (unsigned)(s->tsize - 1);
}

static binding *lookup(sema *s, const char *name)
{
	if (!s->tsize)
		return NULL;
	for (unsigned i = name_slot(s, name);; i = (i + 1) & (unsigned)(s->tsize - 1)) {
		if (!s->table[i])
			return NULL;
		nnc_work.name_compares++;
		if (!strcmp(s->names[s->table[i] - 1].name, name))
			return &s->names[s->table[i] - 1];
	}
}

/* Puts names[k] in the table, growing it to keep it at most half full. */
static void table_insert(sema *s, int k)
{
	if (2 * (k + 1) > s->tsize) {
		s->tsize = s->tsize ? s->tsize * 2 : 64;
		s->table = nnc_alloc(sizeof(int) * (size_t)s->tsize);
		for (int j = 0; j < k; j++)
			table_insert(s, j);
	}
	unsigned i = name_slot(s, s->names[k].name);
	while (s->table[i])
		i = (i + 1) & (unsigned)(s->tsize - 1);
	s->table[i] = k + 1;
}

static bool bind(sema *s, const char *name, nnc_loc loc, int node)
{
	binding *old = lookup(s, name);
	if (old) {
		nnc_error(s->src, loc, "'%s' is already defined", name);
		nnc_note(s->src, old->loc, "'%s' was first defined here", name);
		return false;
	}
	if (s->nnames == s->cap) {
		int cap = s->cap ? s->cap * 2 : 16;
		s->names = nnc_realloc_array(s->names, (size_t)s->nnames, (size_t)cap, sizeof(binding));
		s->cap = cap;
	}
	s->names[s->nnames++] = (binding){name, loc, node, false, false};
	table_insert(s, s->nnames - 1);
	return true;
}

/* The names an unknown one is compared with: the last ones defined, so that
 * a hint costs the same in a program of any size. */
#define HINT_NAMES 4096

/* Suggestion for an unknown name: defined values first, then layer names.
 * Nothing is compared once the errors are no longer printed. */
static void hint_unknown(sema *s, const char *name, const char *const *extra)
{
	if (nnc_diag_too_many())
		return;
	nnc_suggester sg;
	nnc_suggest_begin(&sg, name);
	for (int i = s->nnames > HINT_NAMES ? s->nnames - HINT_NAMES : 0; i < s->nnames; i++)
		nnc_suggest_try(&sg, s->names[i].name);
	for (int i = 0; extra && extra[i]; i++)
		nnc_suggest_try(&sg, extra[i]);
	if (sg.best)
		nnc_hint("did you mean '%s'?", sg.best);
}

static char *join_choices(const char *const *c)
{
	nnc_buf b = {0};
	for (int i = 0; c[i]; i++)
		nnc_buf_printf(&b, "%s%s", i ? ", " : "", c[i]);
	char *r = nnc_strdup(b.data ? b.data : "");
	nnc_buf_free(&b);
	return r;
}

/* ---- values ---- */

static val verr(nnc_loc loc) { return (val){.kind = V_ERROR, .loc = loc}; }

static val vtensor(int node, nnc_loc loc) { return (val){.kind = V_TENSOR, .node = node, .loc = loc}; }

static int add_node(sema *s, ir_op op, int nin, const int *in, nnc_loc loc)
{
	int id = ir_add(s->g, op, nin, in);
	s->g->nodes[id].loc = loc;
	return id;
}

/* Adds a node and runs its shape rule; returns -1 (after the rule's error). */
static int add_shaped(sema *s, ir_op op, int nin, const int *in, nnc_loc loc)
{
	int id = add_node(s, op, nin, in, loc);
	if (!ir_infer_shape(s->g, id)) {
		s->g->nodes[id].dead = true;
		return -1;
	}
	return id;
}

static val eval(sema *s, const nnc_ast *e);
static int relayout(sema *s, int node, ir_layout want);

static const char *kind_name(val_kind k)
{
	switch (k) {
	case V_ERROR: return "an erroneous value";
	case V_TENSOR: return "a tensor";
	case V_NUM: return "a number";
	case V_STR: return "a string";
	case V_NAME: return "a name";
	}
	return "?";
}

/* A named or positional argument lookup for calls. */
typedef struct callargs {
	const nnc_ast *call;
	bool *seen;
} callargs;

static const nnc_arg *find_named(const nnc_ast *call, const char *name)
{
	for (int i = 0; i < call->nargs; i++)
		if (call->args[i].name && !strcmp(call->args[i].name, name))
			return &call->args[i];
	return NULL;
}

static const nnc_arg *positional(const nnc_ast *call, int k)
{
	for (int i = 0; i < call->nargs; i++)
		if (!call->args[i].name && k-- == 0)
			return &call->args[i];
	return NULL;
}

/* Checks that every named argument of `call` is in `allowed` and appears once,
 * and that there are at most `max_pos` positional arguments. */
static bool check_args(sema *s, const nnc_ast *call, int max_pos, const char *const *allowed)
{
	bool ok = true;
	int npos = 0;
	for (int i = 0; i < call->nargs; i++) {
		const nnc_arg *a = &call->args[i];
		if (!a->name) {
			if (++npos > max_pos) {
				nnc_error(s->src, a->value->loc, "too many arguments to '%s' (it takes %d%s)", call->str,
					  max_pos, allowed && allowed[0] ? " plus named options" : "");
				ok = false;
			}
			continue;
		}
		bool known = false;
		for (int k = 0; allowed && allowed[k]; k++)
			known |= !strcmp(allowed[k], a->name);
		if (!known) {
			nnc_error(s->src, a->name_loc, "'%s' has no option '%s'", call->str, a->name);
			const char *best = allowed ? nnc_suggest(a->name, allowed) : NULL;
			if (best)
				nnc_hint("did you mean '%s'?", best);
			else if (allowed && allowed[0])
				nnc_hint("the options of '%s' are: %s", call->str, join_choices(allowed));
			else
				nnc_hint("'%s' takes no options", call->str);
			ok = false;
			continue;
		}
		/* the first earlier one: with every one, a call repeating an
		 * option N times cost N^2 comparisons */
		for (int j = 0; j < i; j++)
			if (call->args[j].name && !strcmp(call->args[j].name, a->name)) {
				nnc_error(s->src, a->name_loc, "option '%s' is given twice", a->name);
				nnc_note(s->src, call->args[j].name_loc, "first given here");
				ok = false;
				break;
			}
	}
	return ok;
}

/* Evaluates an argument expected to be a compile-time number. */
static bool arg_num(sema *s, const nnc_arg *a, const char *what, double *out)
{
	val v = eval(s, a->value);
	if (v.kind == V_ERROR)
		return false;
	if (v.kind != V_NUM) {
		nnc_error(s->src, a->value->loc, "%s must be a number, not %s", what, kind_name(v.kind));
		return false;
	}
	*out = v.num;
	return true;
}

/* A whole number in [lo, hi]. */
static bool arg_int_in(sema *s, const nnc_arg *a, const char *what, int64_t lo, double hi, int64_t *out)
{
	double d;
	if (!arg_num(s, a, what, &d))
		return false;
	if (d != floor(d) || d < (double)lo) {
		nnc_error(s->src, a->value->loc, "%s must be a whole number >= %lld, not %g", what, (long long)lo, d);
		return false;
	}
	if (d > hi) {
		nnc_error(s->src, a->value->loc, "%s must be at most %.0f, not %g", what, hi, d);
		return false;
	}
	*out = (int64_t)d;
	return true;
}

static bool arg_int(sema *s, const nnc_arg *a, const char *what, int64_t lo, int64_t *out)
{
	return arg_int_in(s, a, what, lo, MAX_INT_ARG, out);
}

/* Whether v, which the runtime keeps as a 32-bit float, is one. */
static bool float_ok(sema *s, nnc_loc loc, const char *what, double v)
{
	if (fabs(v) > FLT_MAX) {
		nnc_error(s->src, loc, "%s is too large: %g is beyond the range of a 32-bit float (about 3.4e38)", what, v);
		return false;
	}
	return true;
}

/* Whether a tensor of shape dims[0..rank) is within MAX_ELEMS (reported at
 * loc, as `what`, if not).  Checked before the shape reaches the IR, whose
 * size arithmetic assumes it fits. */
static bool size_ok(sema *s, nnc_loc loc, const char *what, int rank, const int64_t *dims)
{
	double n = 1;
	for (int i = 0; i < rank; i++)
		n *= (double)dims[i];
	if (n <= (double)MAX_ELEMS)
		return true;
	nnc_error(s->src, loc, "%s would have shape %s, %.4g values; at most %lld per tensor are supported", what,
		  ir_dims_str(false, rank, dims), n, (long long)MAX_ELEMS);
	return false;
}

static bool arg_str(sema *s, const nnc_arg *a, const char *what, const char **out)
{
	if (a->value->kind != AST_STR) {
		nnc_error(s->src, a->value->loc, "%s must be a string", what);
		return false;
	}
	*out = a->value->str;
	return true;
}

static bool arg_bool(sema *s, const nnc_arg *a, const char *what, bool *out)
{
	if (a->value->kind == AST_NAME && (!strcmp(a->value->str, "true") || !strcmp(a->value->str, "false"))) {
		*out = !strcmp(a->value->str, "true");
		return true;
	}
	nnc_error(s->src, a->value->loc, "%s must be true or false", what);
	return false;
}

static val tensor_arg(sema *s, const nnc_ast *call, int k, const char *what)
{
	const nnc_arg *a = positional(call, k);
	if (!a) {
		nnc_error(s->src, call->loc, "'%s' needs %s", call->str, what);
		return verr(call->loc);
	}
	val v = eval(s, a->value);
	if (v.kind == V_ERROR)
		return v;
	if (v.kind != V_TENSOR) {
		nnc_error(s->src, a->value->loc, "'%s' needs %s, not %s", call->str, what, kind_name(v.kind));
		return verr(a->value->loc);
	}
	return v;
}

/* ---- layers ---- */

/* init: glorot | he | lecun | zeros | normal(std) | uniform(bound) | constant(v) */
static bool parse_init(sema *s, const nnc_arg *a, int *init, double *arg)
{
	const nnc_ast *e = a->value;
	const char *name = e->kind == AST_NAME ? e->str : e->kind == AST_CALL ? e->str : NULL;
	if (!name) {
		nnc_error(s->src, e->loc, "an initialiser must be a name like 'he' or a call like 'normal(0.01)'");
		return false;
	}
	static const struct { const char *name; int init; int nargs; } inits[] = {
		{"glorot", NNRT_INIT_GLOROT_UNIFORM, 0}, {"xavier", NNRT_INIT_GLOROT_UNIFORM, 0},
		{"he", NNRT_INIT_HE_UNIFORM, 0},         {"lecun", NNRT_INIT_LECUN_UNIFORM, 0},
		{"zeros", NNRT_INIT_ZEROS, 0},           {"normal", NNRT_INIT_NORMAL, 1},
		{"uniform", NNRT_INIT_UNIFORM, 1},       {"constant", NNRT_INIT_CONSTANT, 1},
	};
	for (size_t i = 0; i < sizeof inits / sizeof inits[0]; i++) {
		if (strcmp(inits[i].name, name))
			continue;
		int given = e->kind == AST_CALL ? e->nargs : 0;
		if (given != inits[i].nargs || (e->kind == AST_CALL && e->args[0].name)) {
			nnc_error(s->src, e->loc, "initialiser '%s' takes %s", name,
				  inits[i].nargs ? "one number, e.g. normal(0.01)" : "no arguments");
			return false;
		}
		*init = inits[i].init;
		*arg = 0;
		if (given && (!arg_num(s, &e->args[0], "the initialiser's argument", arg) ||
			      !float_ok(s, e->args[0].value->loc, "the initialiser's argument", *arg)))
			return false;
		if ((*init == NNRT_INIT_NORMAL || *init == NNRT_INIT_UNIFORM) && *arg < 0) {
			nnc_error(s->src, e->args[0].value->loc, "'%s' needs a non-negative scale", name);
			return false;
		}
		return true;
	}
	nnc_error(s->src, e->loc, "unknown initialiser '%s'", name);
	const char *best = nnc_suggest(name, init_names);
	if (best)
		nnc_hint("did you mean '%s'?", best);
	else
		nnc_hint("initialisers are: %s", join_choices(init_names));
	return false;
}

static int add_param(sema *s, const char *name, int rank, const int64_t *dims, int init, double init_arg,
		     bool init_set, double fan_in, double fan_out, nnc_loc loc)
{
	ir_graph *g = s->g;
	int id = add_node(s, IR_PARAM, 0, NULL, loc);
	ir_node *n = &g->nodes[id];
	ir_set_shape(n, false, rank, dims);
	n->name = name;
	n->param = g->nparams;
	/* grown by doubling (at each power of two): grown by one, the whole
	 * table was copied into the arena for every parameter (10,000 dense
	 * layers: 23 GB) */
	if ((g->nparams & (g->nparams - 1)) == 0)
		g->params = nnc_realloc_array(g->params, (size_t)g->nparams,
					      g->nparams ? 2 * (size_t)g->nparams : 1, sizeof(ir_param));
	ir_param *p = &g->params[g->nparams++];
	/* counted here, not by a scan of all parameters per layer */
	s->nconv_weights += strstr(name, "conv") == name && strstr(name, ".weight") != NULL;
	p->name = name;
	p->node = id;
	p->rank = rank;
	memcpy(p->dims, dims, sizeof(int64_t) * (size_t)rank);
	p->size = n->size;
	p->offset = g->param_floats;
	/* keep every tensor 16-float (64-byte) aligned for vector loads */
	g->param_floats += (n->size + 15) / 16 * 16;
	p->init = init;
	p->init_arg = init_arg;
	p->init_set = init_set;
	p->fan_in = fan_in;
	p->fan_out = fan_out;
	p->loc = loc;
	return id;
}

/* The options every layer with weights takes:
 * init:, bias_init:, bias: true|false, name: "fc1". */
typedef struct weight_opts {
	int winit, binit;   /* NNRT_INIT_* */
	double warg, barg;  /* their arguments */
	bool wset, bset;    /* the user chose them (else defaults apply later) */
	bool has_bias;
	const char *name;   /* NULL: numbered automatically */
} weight_opts;

static bool parse_weight_opts(sema *s, const nnc_ast *call, weight_opts *o)
{
	*o = (weight_opts){.winit = NNRT_INIT_GLOROT_UNIFORM, .binit = NNRT_INIT_ZEROS, .has_bias = true};
	bool ok = true;
	const nnc_arg *a;
	if ((a = find_named(call, "init"))) {
		ok &= parse_init(s, a, &o->winit, &o->warg);
		o->wset = true;
	}
	if ((a = find_named(call, "bias_init"))) {
		ok &= parse_init(s, a, &o->binit, &o->barg);
		o->bset = true;
	}
	if ((a = find_named(call, "bias")))
		ok &= arg_bool(s, a, "'bias'", &o->has_bias);
	if ((a = find_named(call, "name")))
		ok &= arg_str(s, a, "a layer name", &o->name);
	return ok;
}

static const char *const dense_opts[] = {"units", "init", "bias_init", "bias", "name", NULL};

/* dense(x, units, init: ..., bias_init: ..., bias: true, name: "fc1") */
static val eval_dense(sema *s, const nnc_ast *call)
{
	bool ok = check_args(s, call, 2, dense_opts);
	val x = tensor_arg(s, call, 0, "an input tensor");
	int64_t units = 0;
	const nnc_arg *ua = positional(call, 1);
	const nnc_arg *un = find_named(call, "units");
	if (ua && un) {
		nnc_error(s->src, un->name_loc, "the number of units is given twice");
		ok = false;
	} else if (!ua && !un) {
		nnc_error(s->src, call->loc, "'dense' needs the number of units, e.g. dense(128)");
		ok = false;
	} else if (!arg_int_in(s, ua ? ua : un, "the number of units", 1, (double)MAX_ELEMS, &units))
		ok = false;
	weight_opts wo;
	ok &= parse_weight_opts(s, call, &wo);
	if (!ok || x.kind != V_TENSOR)
		return verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (!xn->batched) {
		nnc_error(s->src, call->loc, "'dense' needs a per-sample value, but its input has shape %s",
			  ir_shape_str(xn));
		return verr(call->loc);
	}
	s->ndense++;
	if (!wo.name)
		wo.name = nnc_sprintf("dense%d", s->ndense);
	int64_t in = xn->size;
	int64_t wd[2] = {in, units}, bd[1] = {units};
	if (!size_ok(s, call->loc, "the weight of this layer", 2, wd))
		return verr(call->loc);
	int w = add_param(s, nnc_sprintf("%s.weight", wo.name), 2, wd, wo.winit, wo.warg, wo.wset, (double)in, (double)units,
			  call->loc);
	int b = wo.has_bias ? add_param(s, nnc_sprintf("%s.bias", wo.name), 1, bd, wo.binit, wo.barg, wo.bset, (double)in,
				     (double)units, call->loc)
			 : -1;
	if (!wo.has_bias) {
		/* DENSE with two operands has no bias */
		int ins[2] = {x.node, w};
		int id = add_shaped(s, IR_DENSE, 2, ins, call->loc);
		return id < 0 ? verr(call->loc) : vtensor(id, call->loc);
	}
	int ins[3] = {x.node, w, b};
	int id = add_shaped(s, IR_DENSE, 3, ins, call->loc);
	return id < 0 ? verr(call->loc) : vtensor(id, call->loc);
}

/* The per-sample tensor an element-wise layer applies to. */
static val eval_unary_layer_input(sema *s, const nnc_ast *call)
{
	val x = tensor_arg(s, call, 0, "an input tensor");
	if (x.kind != V_TENSOR)
		return x;
	if (!s->g->nodes[x.node].batched) {
		nnc_error(s->src, call->loc, "'%s' needs a per-sample value", call->str);
		return verr(call->loc);
	}
	return x;
}

static val eval_unary_layer(sema *s, const nnc_ast *call, ir_op op)
{
	if (!check_args(s, call, 1, NULL))
		return verr(call->loc);
	val x = eval_unary_layer_input(s, call);
	if (x.kind != V_TENSOR)
		return x;
	int xin = op == IR_SOFTMAX ? relayout(s, x.node, LAYOUT_NC) : x.node;
	int id = add_shaped(s, op, 1, &xin, call->loc);
	return id < 0 ? verr(call->loc) : vtensor(id, call->loc);
}

/* An activation of acts.def: `x |> name` or `x |> name(option: value)`,
 * the option a number (at least the row's minimum) or true/false, with the
 * row's default when not given; it rides on the node in fa[IR_FA_ACT]. */
static val eval_act(sema *s, const nnc_ast *call, ir_act a)
{
	const ir_act_info *ai = ir_act_get(a);
	const char *opts[2] = {ai->opt, NULL};
	bool ok = check_args(s, call, 1, opts);
	double v = ai->opt_default;
	const nnc_arg *oa = ai->opt ? find_named(call, ai->opt) : NULL;
	const char *what = oa ? nnc_sprintf("'%s' of %s", ai->opt, ai->name) : NULL;
	if (oa && ai->opt_kind == ACT_OPT_BOOL) {
		bool b = false;
		ok &= arg_bool(s, oa, what, &b);
		v = b;
	} else if (oa && arg_num(s, oa, what, &v)) {
		if (!(v >= ai->opt_min)) {
			nnc_error(s->src, oa->value->loc, "%s must be at least %g, not %g", what, ai->opt_min, v);
			ok = false;
		} else {
			ok &= float_ok(s, oa->value->loc, what, v);
		}
	} else if (oa) {
		ok = false;
	}
	if (!ok)
		return verr(call->loc);
	val x = eval_unary_layer_input(s, call);
	if (x.kind != V_TENSOR)
		return x;
	int id = add_shaped(s, ir_act_op(a), 1, &x.node, call->loc);
	if (id < 0)
		return verr(call->loc);
	s->g->nodes[id].fa[IR_FA_ACT] = v;
	return vtensor(id, call->loc);
}

/* Layout conversions the user never writes: convolution and pooling work on
 * batch-innermost (CN) tensors, losses and softmax on sample-major (NC) ones. */
static int relayout(sema *s, int node, ir_layout want)
{
	ir_node *n = &s->g->nodes[node];
	if (!n->batched || n->layout == want)
		return node;
	nnc_loc loc = n->loc;
	int id = add_node(s, want == LAYOUT_CN ? IR_TO_CN : IR_TO_NC, 1, &node, loc);
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return id;
}

/* A number, or a list of two numbers [a, b], for kernel/stride/pad. */
static bool pair_arg(sema *s, const nnc_arg *a, const char *what, int64_t lo, int64_t out[2])
{
	const nnc_ast *e = a->value;
	if (e->kind == AST_LIST) {
		if (e->nargs != 2) {
			nnc_error(s->src, e->loc, "%s must be a number or a list of two numbers [height, width]", what);
			return false;
		}
		return arg_int_in(s, &e->args[0], what, lo, (double)INT32_MAX, &out[0]) &&
		       arg_int_in(s, &e->args[1], what, lo, (double)INT32_MAX, &out[1]);
	}
	if (e->kind == AST_NAME && !lookup(s, e->str)) {
		nnc_error(s->src, e->loc, "%s must be a number or a list of two numbers [height, width], not '%s'", what,
			  e->str);
		return false;
	}
	if (!arg_int_in(s, a, what, lo, (double)INT32_MAX, &out[0]))
		return false;
	out[1] = out[0];
	return true;
}

/* The per-sample [C, H, W] input of an image layer, or an error. */
static bool image_input(sema *s, const nnc_ast *call, val x)
{
	ir_node *xn = &s->g->nodes[x.node];
	if (!xn->batched || xn->rank != 3) {
		nnc_error(s->src, call->loc, "'%s' needs an image input of shape [C, H, W], but its input has shape %s",
			  call->str, ir_shape_str(xn));
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input%s%s is defined here", xn->name ? " " : "", xn->name ? xn->name : "");
		return false;
	}
	return true;
}

static const char *const conv_opts[] = {"filters", "kernel", "stride", "pad", "init", "bias_init", "bias", "name", NULL};

/* conv2d(x, filters, kernel, stride: 1, pad: 0 | [ph, pw] | same, init:, bias_init:, bias:, name:) */
static val eval_conv(sema *s, const nnc_ast *call)
{
	bool ok = check_args(s, call, 3, conv_opts);
	val x = tensor_arg(s, call, 0, "an input tensor");
	int64_t filters = 0, k[2] = {0, 0}, st[2] = {1, 1}, pd[2] = {0, 0};
	const nnc_arg *a;
	const nnc_arg *fa = positional(call, 1) ? positional(call, 1) : find_named(call, "filters");
	const nnc_arg *ka = positional(call, 2) ? positional(call, 2) : find_named(call, "kernel");
	if (!fa || !ka) {
		nnc_error(s->src, call->loc, "'conv2d' needs the number of filters and the kernel size, e.g. conv2d(6, 5)");
		return verr(call->loc);
	}
	ok &= arg_int_in(s, fa, "the number of filters", 1, (double)INT32_MAX, &filters);
	ok &= pair_arg(s, ka, "the kernel size", 1, k);
	if ((a = find_named(call, "stride")))
		ok &= pair_arg(s, a, "the stride", 1, st);
	bool same = false;
	if ((a = find_named(call, "pad"))) {
		if (a->value->kind == AST_NAME && !strcmp(a->value->str, "same")) {
			same = true;
		} else if (a->value->kind == AST_NAME && !lookup(s, a->value->str)) {
			nnc_error(s->src, a->value->loc, "unknown padding '%s'", a->value->str);
			nnc_hint(!strcmp(a->value->str, "valid") ? "no padding is pad: 0"
								: "the padding is a number, a list [height, width], or same");
			ok = false;
		} else {
			ok &= pair_arg(s, a, "the padding", 0, pd);
		}
	}
	weight_opts wo;
	ok &= parse_weight_opts(s, call, &wo);
	if (!ok || x.kind != V_TENSOR || !image_input(s, call, x))
		return verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	int64_t C = xn->dims[0], H = xn->dims[1], W = xn->dims[2];
	if (same) {
		if (st[0] != 1 || st[1] != 1 || k[0] % 2 == 0 || k[1] % 2 == 0) {
			nnc_error(s->src, find_named(call, "pad")->value->loc,
				  "pad: same needs stride 1 and an odd kernel, but the kernel is %lldx%lld with stride %lldx%lld",
				  (long long)k[0], (long long)k[1], (long long)st[0], (long long)st[1]);
			return verr(call->loc);
		}
		pd[0] = (k[0] - 1) / 2;
		pd[1] = (k[1] - 1) / 2;
	}
	if (k[0] > H + 2 * pd[0] || k[1] > W + 2 * pd[1]) {
		nnc_error(s->src, call->loc,
			  "conv2d kernel %lldx%lld is larger than its input %lldx%lldx%lld padded by %lldx%lld",
			  (long long)k[0], (long long)k[1], (long long)C, (long long)H, (long long)W, (long long)pd[0],
			  (long long)pd[1]);
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input has shape %s", ir_shape_str(xn));
		return verr(call->loc);
	}
	if (pd[0] >= k[0] || pd[1] >= k[1]) {
		nnc_error(s->src, find_named(call, "pad")->value->loc, "the padding must be smaller than the kernel");
		return verr(call->loc);
	}
	int nconv = 1 + s->nconv_weights;
	if (!wo.name)
		wo.name = nnc_sprintf("conv%d", nconv);
	int64_t wd[4] = {filters, C, k[0], k[1]}, bd[1] = {filters};
	int64_t od[3] = {filters, (H + 2 * pd[0] - k[0]) / st[0] + 1, (W + 2 * pd[1] - k[1]) / st[1] + 1};
	if (!size_ok(s, call->loc, "the weight of this layer", 4, wd) ||
	    !size_ok(s, call->loc, "the output of this layer", 3, od))
		return verr(call->loc);
	int xin = relayout(s, x.node, LAYOUT_CN);
	double fan_in = (double)(C * k[0] * k[1]), fan_out = (double)(filters * k[0] * k[1]);
	int w = add_param(s, nnc_sprintf("%s.weight", wo.name), 4, wd, wo.winit, wo.warg, wo.wset, fan_in, fan_out, call->loc);
	int ins[3] = {xin, w, -1};
	int nin = 2;
	if (wo.has_bias) {
		ins[2] = add_param(s, nnc_sprintf("%s.bias", wo.name), 1, bd, wo.binit, wo.barg, wo.bset, fan_in, fan_out, call->loc);
		nin = 3;
	}
	int id = add_node(s, IR_CONV2D, nin, ins, call->loc);
	int64_t at[6] = {k[0], k[1], st[0], st[1], pd[0], pd[1]};
	memcpy(s->g->nodes[id].ia, at, sizeof at);
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return vtensor(id, call->loc);
}

static const char *const pool_opts[] = {"size", "stride", NULL};

/* maxpool(x, size, stride) / avgpool(...): stride defaults to size */
static val eval_pool(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = check_args(s, call, 3, pool_opts);
	val x = tensor_arg(s, call, 0, "an input tensor");
	int64_t k[2] = {0, 0}, st[2] = {0, 0};
	const nnc_arg *ka = positional(call, 1) ? positional(call, 1) : find_named(call, "size");
	const nnc_arg *sa = positional(call, 2) ? positional(call, 2) : find_named(call, "stride");
	if (!ka) {
		nnc_error(s->src, call->loc, "'%s' needs the window size, e.g. %s(2)", call->str, call->str);
		return verr(call->loc);
	}
	ok &= pair_arg(s, ka, "the window size", 1, k);
	if (sa)
		ok &= pair_arg(s, sa, "the stride", 1, st);
	else
		st[0] = k[0], st[1] = k[1];
	if (!ok || x.kind != V_TENSOR || !image_input(s, call, x))
		return verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (k[0] > xn->dims[1] || k[1] > xn->dims[2]) {
		nnc_error(s->src, call->loc, "%s window %lldx%lld is larger than its input %lldx%lldx%lld", call->str,
			  (long long)k[0], (long long)k[1], (long long)xn->dims[0], (long long)xn->dims[1],
			  (long long)xn->dims[2]);
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input has shape %s", ir_shape_str(xn));
		return verr(call->loc);
	}
	int xin = relayout(s, x.node, LAYOUT_CN);
	int id = add_node(s, op, 1, &xin, call->loc);
	int64_t at[4] = {k[0], k[1], st[0], st[1]};
	memcpy(s->g->nodes[id].ia, at, sizeof at);
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return vtensor(id, call->loc);
}

static val eval_gpool(sema *s, const nnc_ast *call)
{
	if (!check_args(s, call, 1, NULL))
		return verr(call->loc);
	val x = tensor_arg(s, call, 0, "an input tensor");
	if (x.kind != V_TENSOR || !image_input(s, call, x))
		return verr(call->loc);
	int xin = relayout(s, x.node, LAYOUT_CN);
	int id = add_shaped(s, IR_GAVGPOOL, 1, &xin, call->loc);
	return id < 0 ? verr(call->loc) : vtensor(id, call->loc);
}

/* flatten(x): every tensor is stored contiguously per sample, so this is free:
 * the value is the same node, and dense reads any rank as a vector. */
static val eval_flatten(sema *s, const nnc_ast *call)
{
	if (!check_args(s, call, 1, NULL))
		return verr(call->loc);
	val x = tensor_arg(s, call, 0, "an input tensor");
	if (x.kind == V_TENSOR && !s->g->nodes[x.node].batched) {
		nnc_error(s->src, call->loc, "'flatten' needs a per-sample value");
		return verr(call->loc);
	}
	return x;
}

static val eval_call(sema *s, const nnc_ast *call)
{
	const char *f = call->str;
	if (!strcmp(f, "dense"))
		return eval_dense(s, call);
	if (!strcmp(f, "conv2d"))
		return eval_conv(s, call);
	if (!strcmp(f, "maxpool"))
		return eval_pool(s, call, IR_MAXPOOL);
	if (!strcmp(f, "avgpool"))
		return eval_pool(s, call, IR_AVGPOOL);
	if (!strcmp(f, "global_avgpool"))
		return eval_gpool(s, call);
	if (!strcmp(f, "flatten"))
		return eval_flatten(s, call);
	for (ir_act a = ACT_NONE + 1; a < IR_NUM_ACTS; a++)
		if (!strcmp(f, ir_act_get(a)->name))
			return eval_act(s, call, a);
	if (!strcmp(f, "softmax"))
		return eval_unary_layer(s, call, IR_SOFTMAX);
	for (int i = 0; loss_names[i]; i++)
		if (!strcmp(f, loss_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is a loss; use it in a 'loss' statement", f);
			return verr(call->loc);
		}
	for (int i = 0; opt_names[i]; i++)
		if (!strcmp(f, opt_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is an optimizer; use it in an 'optimizer' statement", f);
			return verr(call->loc);
		}
	for (int i = 0; data_names[i]; i++)
		if (!strcmp(f, data_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is a data source; use it in the 'train' block", f);
			return verr(call->loc);
		}
	nnc_error(s->src, call->callee_loc, "unknown layer or function '%s'", f);
	const char *best = nnc_suggest(f, builtin_layers);
	if (best)
		nnc_hint("did you mean '%s'?", best);
	else
		nnc_hint("layers and activations are: %s", join_choices(builtin_layers));
	return verr(call->loc);
}

static val eval_binop(sema *s, const nnc_ast *e)
{
	val a = eval(s, e->lhs), b = eval(s, e->rhs);
	if (a.kind == V_ERROR || b.kind == V_ERROR)
		return verr(e->loc);
	if (a.kind == V_NUM && b.kind == V_NUM) {
		double r = 0;
		switch (e->op) {
		case '+': r = a.num + b.num; break;
		case '-': r = a.num - b.num; break;
		case '*': r = a.num * b.num; break;
		case '/':
			if (b.num == 0) {
				nnc_error(s->src, e->rhs->loc, "division by zero");
				return verr(e->loc);
			}
			r = a.num / b.num;
			break;
		}
		if (!isfinite(r)) {
			nnc_error(s->src, e->loc, "the value of this expression is too large (it overflows)");
			return verr(e->loc);
		}
		return (val){.kind = V_NUM, .num = r, .loc = e->loc};
	}
	if ((a.kind != V_TENSOR && a.kind != V_NUM) || (b.kind != V_TENSOR && b.kind != V_NUM)) {
		nnc_error(s->src, e->loc, "operator '%c' cannot be applied to %s and %s", e->op, kind_name(a.kind),
			  kind_name(b.kind));
		return verr(e->loc);
	}
	if (a.kind == V_TENSOR && b.kind == V_TENSOR) {
		if (e->op == '/') {
			nnc_error(s->src, e->loc, "dividing a tensor by a tensor is not supported; divide by a number");
			return verr(e->loc);
		}
		ir_op op = e->op == '+' ? IR_ADD : e->op == '-' ? IR_SUB : IR_MUL;
		int ins[2] = {a.node, b.node};
		if (ir_same_shape(&s->g->nodes[a.node], &s->g->nodes[b.node]) &&
		    s->g->nodes[a.node].layout != s->g->nodes[b.node].layout) {
			ins[0] = relayout(s, a.node, LAYOUT_CN);
			ins[1] = relayout(s, b.node, LAYOUT_CN);
		}
		int id = add_shaped(s, op, 2, ins, e->loc);
		return id < 0 ? verr(e->loc) : vtensor(id, e->loc);
	}
	/* tensor with number: an affine map a*x + b */
	bool tl = a.kind == V_TENSOR;
	int t = tl ? a.node : b.node;
	double c = tl ? b.num : a.num, fa = 1, fb = 0;
	switch (e->op) {
	case '+': fb = c; break;
	case '-': if (tl) fb = -c; else { fa = -1; fb = c; } break;
	case '*': fa = c; break;
	case '/':
		if (!tl) {
			nnc_error(s->src, e->loc, "dividing a number by a tensor is not supported");
			return verr(e->loc);
		}
		if (c == 0) {
			nnc_error(s->src, e->rhs->loc, "division by zero");
			return verr(e->loc);
		}
		fa = 1 / c;
		break;
	}
	if (!float_ok(s, e->loc, "the factor of this expression", fa) ||
	    !float_ok(s, e->loc, "the offset of this expression", fb))
		return verr(e->loc);
	int id = add_shaped(s, IR_AFFINE, 1, &t, e->loc);
	if (id < 0)
		return verr(e->loc);
	s->g->nodes[id].fa[0] = fa;
	s->g->nodes[id].fa[1] = fb;
	return vtensor(id, e->loc);
}

static val eval(sema *s, const nnc_ast *e)
{
	switch (e->kind) {
	case AST_NUM:
		return (val){.kind = V_NUM, .num = e->num, .loc = e->loc};
	case AST_STR:
		return (val){.kind = V_STR, .str = e->str, .loc = e->loc};
	case AST_LIST:
		nnc_error(s->src, e->loc, "a list is only allowed as an option value");
		return verr(e->loc);
	case AST_NAME: {
		binding *b = lookup(s, e->str);
		if (b) {
			b->used = true;
			if (b->node >= 0 && b->node == s->g->label && !s->label_ok) {
				/* inference has no label to read */
				nnc_error(s->src, e->loc, "the label '%s' can only be the target of the loss", e->str);
				nnc_hint("the prediction must not depend on the label: it is not known when the model "
					 "predicts");
				return verr(e->loc);
			}
			return b->node < 0 ? verr(e->loc) : vtensor(b->node, e->loc);
		}
		for (int i = 0; builtin_layers[i]; i++)
			if (!strcmp(builtin_layers[i], e->str)) {
				nnc_error(s->src, e->loc, "'%s' is a layer; apply it to a value, e.g. x |> %s", e->str, e->str);
				return verr(e->loc);
			}
		if (s->defining && !strcmp(e->str, s->defining->name)) {
			nnc_error(s->src, e->loc, "'%s' is used in its own definition", e->str);
			nnc_hint("a value cannot use itself; to extend '%s', give the result a new name: '%s2 = %s |> ...'",
				 e->str, e->str, e->str);
			return verr(e->loc);
		}
		nnc_error(s->src, e->loc, "unknown name '%s'", e->str);
		hint_unknown(s, e->str, builtin_layers);
		return verr(e->loc);
	}
	case AST_CALL:
		return eval_call(s, e);
	case AST_NEG: {
		val v = eval(s, e->lhs);
		if (v.kind == V_NUM)
			return (val){.kind = V_NUM, .num = -v.num, .loc = e->loc};
		if (v.kind != V_TENSOR) {
			if (v.kind != V_ERROR)
				nnc_error(s->src, e->loc, "cannot negate %s", kind_name(v.kind));
			return verr(e->loc);
		}
		int id = add_shaped(s, IR_AFFINE, 1, &v.node, e->loc);
		if (id < 0)
			return verr(e->loc);
		s->g->nodes[id].fa[0] = -1;
		return vtensor(id, e->loc);
	}
	case AST_BINOP:
		return eval_binop(s, e);
	}
	nnc_unreachable();
}

/* ---- statements ---- */

static void stmt_tensor_decl(sema *s, const nnc_stmt *st)
{
	ir_graph *g = s->g;
	bool is_input = st->kind == STMT_INPUT;
	if (is_input ? g->input >= 0 : g->label >= 0) {
		nnc_error(s->src, st->loc, "only one '%s' is supported", is_input ? "input" : "label");
		nnc_note(s->src, g->nodes[is_input ? g->input : g->label].loc, "the first one is here");
		bind(s, st->name, st->name_loc, -1);
		return;
	}
	const nnc_type *t = &st->type;
	int id = add_node(s, is_input ? IR_INPUT : IR_LABEL, 0, NULL, st->name_loc);
	ir_node *n = &g->nodes[id];
	n->name = st->name;
	if (t->kind == TYPE_CLASS) {
		if (is_input) {
			nnc_error(s->src, t->loc, "an input must be a tensor type like f32[784], not class(...)");
			n->dead = true;
			bind(s, st->name, st->name_loc, -1);
			return;
		}
		if (t->dims[0] < 2) {
			nnc_error(s->src, t->loc, "class(%lld) needs at least 2 classes", (long long)t->dims[0]);
			n->dead = true;
			bind(s, st->name, st->name_loc, -1);
			return;
		}
		int64_t one[1] = {1};
		ir_set_shape(n, true, 1, one);
		g->label_kind = NNRT_LABEL_CLASS;
		g->label_size = t->dims[0];
	} else {
		if (!size_ok(s, t->loc, is_input ? "the input" : "the label", t->rank, t->dims)) {
			n->dead = true;
			bind(s, st->name, st->name_loc, -1);
			return;
		}
		ir_set_shape(n, true, t->rank, t->dims);
		if (!is_input) {
			g->label_kind = NNRT_LABEL_REAL;
			g->label_size = n->size;
		}
	}
	if (is_input)
		g->input = id;
	else
		g->label = id;
	/* labels are consumed by the loss; never report them unused */
	bind(s, st->name, st->name_loc, id);
}

static void stmt_loss(sema *s, const nnc_stmt *st)
{
	ir_graph *g = s->g;
	const nnc_ast *e = st->expr;
	if (s->loss_stmt) {
		nnc_error(s->src, st->loc, "the loss is already defined");
		nnc_note(s->src, s->loss_stmt->loc, "first defined here");
		return;
	}
	s->loss_stmt = st;
	if (e->kind != AST_CALL) {
		nnc_error(s->src, e->loc, "a loss must be a call such as softmax_cross_entropy(logits, y)");
		return;
	}
	ir_op op;
	int want_label;
	if (!strcmp(e->str, "softmax_cross_entropy")) {
		op = IR_XENT;
		want_label = NNRT_LABEL_CLASS;
	} else if (!strcmp(e->str, "mse")) {
		op = IR_MSE;
		want_label = NNRT_LABEL_REAL;
	} else if (!strcmp(e->str, "binary_cross_entropy")) {
		op = IR_BCE;
		want_label = NNRT_LABEL_REAL;
	} else {
		nnc_error(s->src, e->callee_loc, "unknown loss '%s'", e->str);
		const char *best = nnc_suggest(e->str, loss_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("losses are: %s", join_choices(loss_names));
		return;
	}
	if (!check_args(s, e, 2, NULL))
		return;
	val p = tensor_arg(s, e, 0, "a prediction");
	const nnc_arg *ya = positional(e, 1);
	if (!ya) {
		nnc_error(s->src, e->loc, "'%s' needs the label as its second argument", e->str);
		return;
	}
	s->label_ok = true;
	val y = eval(s, ya->value);
	s->label_ok = false;
	if (p.kind != V_TENSOR || y.kind == V_ERROR)
		return;
	if (y.kind != V_TENSOR || y.node != g->label) {
		nnc_error(s->src, ya->value->loc, "the second argument of '%s' must be the label", e->str);
		if (g->label >= 0)
			nnc_note(s->src, g->nodes[g->label].loc, "the label is declared here");
		return;
	}
	if (g->label_kind != want_label) {
		nnc_error(s->src, ya->value->loc, "'%s' needs %s label, but '%s' is %s", e->str,
			  want_label == NNRT_LABEL_CLASS ? "a class(N)" : "a real-valued f32[...]",
			  g->nodes[g->label].name,
			  g->label_kind == NNRT_LABEL_CLASS ? "class(N)" : "a real-valued f32[...]");
		nnc_hint(want_label == NNRT_LABEL_CLASS ? "declare it as: label %s : class(N)"
							: "declare it as: label %s : f32[k], or use softmax_cross_entropy",
			 g->nodes[g->label].name);
		return;
	}
	int ins[2] = {relayout(s, p.node, LAYOUT_NC), y.node};
	int id = add_shaped(s, op, 2, ins, e->loc);
	if (id < 0)
		return;
	/* Legal, but almost certainly not what was meant. */
	const ir_node *pn = &g->nodes[p.node];
	if (op == IR_XENT && pn->op == IR_SOFTMAX) {
		nnc_warning(s->src, pn->loc, "'softmax_cross_entropy' applies softmax itself, but its input has already "
			    "been through softmax");
		nnc_hint("pass the logits, the values before softmax");
	} else if (op == IR_BCE && pn->op != IR_SIGMOID) {
		nnc_warning(s->src, pn->loc, "'binary_cross_entropy' needs probabilities in (0, 1), but its input is not "
			    "the output of sigmoid");
		nnc_hint("end the network with '|> sigmoid'");
	}
	g->loss = id;
	g->loss_kind = op == IR_XENT ? NNRT_LOSS_SOFTMAX_XENT : op == IR_MSE ? NNRT_LOSS_MSE : NNRT_LOSS_BCE;
}

static const char *const sgd_opts[] = {"lr", "momentum", NULL};
static const char *const adam_opts[] = {"lr", "beta1", "beta2", "eps", NULL};

static void stmt_optimizer(sema *s, const nnc_stmt *st)
{
	ir_optimizer *o = &s->g->opt;
	const nnc_ast *e = st->expr;
	if (s->opt_stmt) {
		nnc_error(s->src, st->loc, "the optimizer is already defined");
		nnc_note(s->src, s->opt_stmt->loc, "first defined here");
		return;
	}
	s->opt_stmt = st;
	if (e->kind != AST_CALL && e->kind != AST_NAME) {
		nnc_error(s->src, e->loc, "an optimizer must be a call such as sgd(lr: 0.05)");
		return;
	}
	const char *const *opts;
	o->lr = 0.01;
	o->momentum = 0;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	if (!strcmp(e->str, "sgd")) {
		o->kind = NNRT_OPT_SGD;
		opts = sgd_opts;
	} else if (!strcmp(e->str, "adam")) {
		o->kind = NNRT_OPT_ADAM;
		o->lr = 0.001;
		opts = adam_opts;
	} else {
		nnc_error(s->src, e->kind == AST_CALL ? e->callee_loc : e->loc, "unknown optimizer '%s'", e->str);
		const char *best = nnc_suggest(e->str, opt_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("optimizers are: %s", join_choices(opt_names));
		return;
	}
	if (e->kind == AST_NAME)
		return;
	if (!check_args(s, e, 0, opts))
		return;
	for (int i = 0; i < e->nargs; i++) {
		const nnc_arg *a = &e->args[i];
		double v = 0;
		if (!arg_num(s, a, nnc_sprintf("'%s'", a->name), &v))
			continue;
		const char *bad = NULL;
		if (!strcmp(a->name, "lr")) {
			o->lr = v;
			if (!(v > 0) || !isfinite(v))
				bad = "the learning rate must be positive";
		} else if (!strcmp(a->name, "momentum")) {
			o->momentum = v;
			if (!(v >= 0 && v < 1))
				bad = "momentum must be in [0, 1)";
		} else if (!strcmp(a->name, "beta1")) {
			o->beta1 = v;
			if (!(v >= 0 && v < 1))
				bad = "beta1 must be in [0, 1)";
		} else if (!strcmp(a->name, "beta2")) {
			o->beta2 = v;
			if (!(v >= 0 && v < 1))
				bad = "beta2 must be in [0, 1)";
		} else if (!strcmp(a->name, "eps")) {
			o->eps = v;
			if (!(v > 0))
				bad = "eps must be positive";
		}
		if (bad)
			nnc_error(s->src, a->value->loc, "%s, not %g", bad, v);
		else if (!float_ok(s, a->value->loc, nnc_sprintf("'%s'", a->name), v))
			;
		else if (v > 0 && (float)v == 0)
			nnc_error(s->src, a->value->loc, "'%s' is too small: %g is 0 as a 32-bit float", a->name, v);
	}
}

/* Resolves `path` relative to the directory of the .nn file. */
static const char *resolve_path(sema *s, const char *path)
{
	if (path[0] == '/')
		return path;
	const char *slash = strrchr(s->src->path, '/');
	char *dir = slash ? nnc_strndup(s->src->path, (size_t)(slash - s->src->path)) : nnc_strdup(".");
	char buf[PATH_MAX];
	char *abs = realpath(dir, buf);
	return nnc_sprintf("%s/%s", abs ? abs : dir, path);
}

/* Column list for csv: a string, a number, or a list of them -> "a,b,3". */
static const char *csv_cols(sema *s, const nnc_arg *a)
{
	const nnc_ast *e = a->value;
	nnc_buf b = {0};
	const nnc_ast *one[1] = {e};
	int n = e->kind == AST_LIST ? e->nargs : 1;
	const char *r = NULL;
	for (int i = 0; i < n; i++) {
		const nnc_ast *it = e->kind == AST_LIST ? e->args[i].value : one[0];
		if (it->kind == AST_STR) {
			if (strchr(it->str, ',')) {
				nnc_error(s->src, it->loc, "a column name cannot contain ','");
				goto out;
			}
			nnc_buf_printf(&b, "%s%s", i ? "," : "", it->str);
		} else if (it->kind == AST_NUM && it->is_int && it->num >= 0 && it->num <= INT32_MAX) {
			nnc_buf_printf(&b, "%s%lld", i ? "," : "", (long long)it->num);
		} else {
			nnc_error(s->src, it->loc, "a CSV column is a name (string) or a 0-based index");
			goto out;
		}
	}
	if (n == 0) {
		nnc_error(s->src, e->loc, "the column list is empty");
		goto out;
	}
	r = nnc_strdup(b.data);
out:
	nnc_buf_free(&b);
	return r;
}

static const char *const idx_opts[] = {"scale", "shift", "limit", NULL};
static const char *const csv_opts[] = {"header", "x", "y", "scale", "shift", "limit", NULL};
static const char *const synth_opts[] = {"count", "noise", "seed", NULL};
static const char *const spiral_opts[] = {"count", "noise", "seed", "classes", NULL};
static const char *const bits_opts[] = {"bits", "count", NULL};

/* Number of features a synthetic set produces (or 0 if not synthetic). */
static int64_t synth_features(const nnrt_data_spec *d)
{
	switch (d->kind) {
	case NNRT_DATA_XOR: case NNRT_DATA_MOONS: case NNRT_DATA_CIRCLES: case NNRT_DATA_SPIRAL: return 2;
	case NNRT_DATA_PARITY: case NNRT_DATA_MAJORITY: return d->classes;
	default: return 0;
	}
}

static bool data_source(sema *s, const nnc_arg *setting, nnrt_data_spec *d)
{
	const nnc_ast *e = setting->value;
	if (e->kind != AST_CALL) {
		nnc_error(s->src, e->loc, "'%s' must be a data source such as idx(\"images\", \"labels\") or moons(count: 1000)",
			  setting->name);
		return false;
	}
	memset(d, 0, sizeof *d);
	d->scale = 1;
	const char *f = e->str;
	bool ok = true;
	const nnc_arg *a;
	double v = 0;
	if (!strcmp(f, "idx")) {
		d->kind = NNRT_DATA_IDX;
		if (!check_args(s, e, 2, idx_opts))
			return false;
		const nnc_arg *pi = positional(e, 0), *pl = positional(e, 1);
		if (!pi || !pl) {
			nnc_error(s->src, e->loc, "idx() needs two paths: the image file and the label file");
			return false;
		}
		const char *p1, *p2;
		if (!arg_str(s, pi, "the image file", &p1) || !arg_str(s, pl, "the label file", &p2))
			return false;
		d->path_x = resolve_path(s, p1);
		d->path_y = resolve_path(s, p2);
	} else if (!strcmp(f, "csv")) {
		d->kind = NNRT_DATA_CSV;
		if (!check_args(s, e, 1, csv_opts))
			return false;
		const nnc_arg *pp = positional(e, 0);
		const char *p;
		if (!pp) {
			nnc_error(s->src, e->loc, "csv() needs the path of the file");
			return false;
		}
		if (!arg_str(s, pp, "the CSV file", &p))
			return false;
		d->path_x = resolve_path(s, p);
		bool hdr = false;
		if ((a = find_named(e, "header")))
			ok &= arg_bool(s, a, "'header'", &hdr);
		d->has_header = hdr;
		if (!(a = find_named(e, "x"))) {
			nnc_error(s->src, e->loc, "csv() needs the feature columns, e.g. x: [\"x1\", \"x2\"]");
			return false;
		}
		ok &= (d->cols_x = csv_cols(s, a)) != NULL;
		if (!(a = find_named(e, "y"))) {
			nnc_error(s->src, e->loc, "csv() needs the label column(s), e.g. y: \"label\"");
			return false;
		}
		ok &= (d->cols_y = csv_cols(s, a)) != NULL;
	} else {
		static const struct { const char *name; int kind; } synth[] = {
			{"xor", NNRT_DATA_XOR}, {"moons", NNRT_DATA_MOONS}, {"circles", NNRT_DATA_CIRCLES},
			{"spiral", NNRT_DATA_SPIRAL}, {"parity", NNRT_DATA_PARITY}, {"majority", NNRT_DATA_MAJORITY},
		};
		for (size_t i = 0; i < sizeof synth / sizeof synth[0]; i++)
			if (!strcmp(f, synth[i].name))
				d->kind = synth[i].kind;
		if (!d->kind) {
			nnc_error(s->src, e->callee_loc, "unknown data source '%s'", f);
			const char *best = nnc_suggest(f, data_names);
			if (best)
				nnc_hint("did you mean '%s'?", best);
			else
				nnc_hint("data sources are: %s", join_choices(data_names));
			return false;
		}
		bool bits = d->kind == NNRT_DATA_PARITY || d->kind == NNRT_DATA_MAJORITY;
		if (!check_args(s, e, 0, bits ? bits_opts : d->kind == NNRT_DATA_SPIRAL ? spiral_opts : synth_opts))
			return false;
		d->seed = 1;
		d->classes = d->kind == NNRT_DATA_SPIRAL ? 3 : 2;
		if (bits) {
			if (!(a = find_named(e, "bits"))) {
				nnc_error(s->src, e->loc, "%s() needs the number of bits, e.g. %s(bits: 3)", f, f);
				return false;
			}
			if (!arg_int(s, a, "'bits'", 1, &d->classes))
				return false;
			if (d->classes > 20) {
				nnc_error(s->src, a->value->loc, "'bits' must be at most 20");
				return false;
			}
		}
		if ((a = find_named(e, "noise"))) {
			if (!arg_num(s, a, "'noise'", &v) || !float_ok(s, a->value->loc, "'noise'", v)) {
				ok = false;
			} else if (!(v >= 0)) {
				nnc_error(s->src, a->value->loc, "'noise' must be non-negative");
				ok = false;
			} else {
				d->noise = (float)v;
			}
		}
		if ((a = find_named(e, "seed")))
			ok &= arg_int(s, a, "'seed'", 0, &d->seed);
		if ((a = find_named(e, "classes")))
			ok &= arg_int_in(s, a, "'classes'", 2, 1000, &d->classes);
		if ((a = find_named(e, "count"))) {
			/* the runtime's limit: the set is generated whole in memory */
			ok &= arg_int_in(s, a, "'count'", 1, 4294967296.0, &d->count);
		} else if (!bits)
			d->count = 1000;
	}
	if ((a = find_named(e, "scale"))) {
		if (arg_num(s, a, "'scale'", &v) && float_ok(s, a->value->loc, "'scale'", v)) {
			d->scale = (float)v;
			if (d->scale == 0) {
				/* the runtime would read 0 as "not given" */
				nnc_error(s->src, a->value->loc, "'scale' must not be 0: every feature would be 0");
				ok = false;
			}
		} else {
			ok = false;
		}
	}
	if ((a = find_named(e, "shift"))) {
		if (arg_num(s, a, "'shift'", &v) && float_ok(s, a->value->loc, "'shift'", v))
			d->shift = (float)v;
		else
			ok = false;
	}
	if ((a = find_named(e, "limit")))
		ok &= arg_int(s, a, "'limit'", 1, &d->count);
	if (!ok)
		return false;
	ir_graph *g = s->g;
	/* CSV columns chosen in the program: as many as the model reads?  The
	 * training binary refuses the data otherwise (--data keeps the column
	 * choice), but the file may not exist yet, so this is a warning.  Only
	 * for an error-free model, whose declarations can be trusted. */
	if (d->kind == NNRT_DATA_CSV && nnc_diag_error_count() == s->errors0 && g->input >= 0 && g->label >= 0) {
		const nnc_arg *xa = find_named(e, "x"), *ya = find_named(e, "y");
		int nx = 1, ny = 1;
		for (const char *c = d->cols_x; *c; c++)
			nx += *c == ',';
		for (const char *c = d->cols_y; *c; c++)
			ny += *c == ',';
		const ir_node *in = &g->nodes[g->input], *lb = &g->nodes[g->label];
		int64_t want_y = g->label_kind == NNRT_LABEL_CLASS ? 1 : g->label_size;
		if (nx != in->size) {
			nnc_warning(s->src, xa->value->loc,
				    "csv() reads %d feature column%s, but input '%s' has shape %s: %lld value%s per sample", nx,
				    nx == 1 ? "" : "s", in->name, ir_shape_str(in), (long long)in->size,
				    in->size == 1 ? "" : "s");
			nnc_note(s->src, in->loc, "'%s' is declared here", in->name);
			nnc_hint("the training program will refuse this data");
		} else if (ny != want_y) {
			if (g->label_kind == NNRT_LABEL_CLASS)
				nnc_warning(s->src, ya->value->loc,
					    "csv() reads %d label columns, but label '%s' is class(%lld): one column, the class "
					    "index", ny, lb->name, (long long)g->label_size);
			else
				nnc_warning(s->src, ya->value->loc,
					    "csv() reads %d label column%s, but label '%s' has shape %s: %lld value%s per sample",
					    ny, ny == 1 ? "" : "s", lb->name, ir_shape_str(lb), (long long)want_y,
					    want_y == 1 ? "" : "s");
			nnc_note(s->src, lb->loc, "'%s' is declared here", lb->name);
			nnc_hint("the training program will refuse this data");
		}
	}
	/* synthetic sets have a known sample shape: check it against the model */
	int64_t nf = synth_features(d);
	if (nf && g->input >= 0 && g->nodes[g->input].size != nf) {
		nnc_error(s->src, e->loc, "%s() gives %lld features per sample, but input '%s' has shape %s", f,
			  (long long)nf, g->nodes[g->input].name, ir_shape_str(&g->nodes[g->input]));
		return false;
	}
	if (nf && g->label >= 0) {
		int64_t classes = d->kind == NNRT_DATA_SPIRAL ? d->classes : 2;
		if (g->label_kind == NNRT_LABEL_CLASS && g->label_size != classes) {
			nnc_error(s->src, e->loc, "%s() has %lld classes, but label '%s' is class(%lld)", f,
				  (long long)classes, g->nodes[g->label].name, (long long)g->label_size);
			return false;
		}
		if (g->label_kind == NNRT_LABEL_REAL && (g->label_size != 1 || classes != 2)) {
			nnc_error(s->src, e->loc, "%s() gives class labels; declare the label as class(%lld)%s", f,
				  (long long)classes, classes == 2 ? " or f32[1] (0 or 1)" : "");
			return false;
		}
	}
	return true;
}

static void stmt_train(sema *s, const nnc_stmt *st)
{
	ir_graph *g = s->g;
	if (s->train_stmt) {
		nnc_error(s->src, st->loc, "the train block is already defined");
		nnc_note(s->src, s->train_stmt->loc, "first defined here");
		return;
	}
	s->train_stmt = st;
	for (int i = 0; i < st->nsettings; i++) {
		const nnc_arg *a = &st->settings[i];
		bool known = false;
		for (int k = 0; train_keys[k]; k++)
			known |= !strcmp(train_keys[k], a->name);
		if (!known) {
			nnc_error(s->src, a->name_loc, "unknown train setting '%s'", a->name);
			const char *best = nnc_suggest(a->name, train_keys);
			if (best)
				nnc_hint("did you mean '%s'?", best);
			else
				nnc_hint("train settings are: %s", join_choices(train_keys));
			continue;
		}
		bool dup = false;
		for (int j = 0; j < i; j++)
			if (!strcmp(st->settings[j].name, a->name)) {
				nnc_error(s->src, a->name_loc, "train setting '%s' is given twice", a->name);
				nnc_note(s->src, st->settings[j].name_loc, "first given here");
				dup = true;
				break;
			}
		if (dup)
			continue;
		if (!strcmp(a->name, "data"))
			data_source(s, a, &g->train);
		else if (!strcmp(a->name, "test"))
			data_source(s, a, &g->test);
		else if (!strcmp(a->name, "batch")) {
			if (arg_int(s, a, "the batch size", 1, &g->batch) && g->batch > 65536)
				nnc_error(s->src, a->value->loc, "the batch size must be at most 65536");
		} else if (!strcmp(a->name, "epochs"))
			arg_int(s, a, "the number of epochs", 1, &g->epochs);
		else if (!strcmp(a->name, "seed"))
			arg_int(s, a, "the seed", 0, &g->seed);
	}
	bool has_data = false;
	for (int i = 0; i < st->nsettings; i++)
		has_data |= nnc_suggest(st->settings[i].name, (const char *const[]){"data", NULL}) != NULL;
	if (!has_data) {
		nnc_error(s->src, st->loc, "the train block needs a 'data' source");
		nnc_hint("for example: data: moons(count: 1000, noise: 0.1)");
	}
}

/* Values the loss and the output do not depend on: legal, but a layer left
 * out by mistake is better pointed at.  Warned about once the program has no
 * error, so that a value whose user failed is not reported too. */
static void warn_unused(sema *s)
{
	ir_graph *g = s->g;
	bool *live = nnc_alloc((size_t)g->n);
	if (g->loss >= 0)
		live[g->loss] = true;
	if (g->output >= 0)
		live[g->output] = true;
	for (int i = g->n - 1; i >= 0; i--)
		for (int k = 0; live[i] && k < g->nodes[i].nin; k++)
			live[g->nodes[i].in[k]] = true;
	for (int i = 0; i < s->nnames; i++) {
		const binding *b = &s->names[i];
		if (!b->is_let || b->node < 0 || live[b->node])
			continue;
		if (!b->used)
			nnc_warning(s->src, b->loc, "'%s' is never used", b->name);
		else
			nnc_warning(s->src, b->loc, "'%s' is used, but neither the loss nor the output depends on it",
				    b->name);
	}
}

/* The default initialiser of a dense weight depends on what follows it:
 * He when every reader is an activation whose table row asks for it (relu
 * and its kin keep the variance of their layers), Glorot otherwise. */
static void default_inits(ir_graph *g)
{
	/* the readers of every node, counted in one pass */
	int *users = nnc_alloc(sizeof(int) * (size_t)g->n);
	bool *not_he = nnc_alloc((size_t)g->n); /* some reader does not want He */
	for (int j = 0; j < g->n; j++) {
		const ir_node *u = &g->nodes[j];
		bool he = ir_op_act(u->op) != ACT_NONE && ir_act_get(ir_op_act(u->op))->init == NNRT_INIT_HE_UNIFORM;
		for (int k = 0; !u->dead && k < u->nin; k++) {
			users[u->in[k]]++;
			not_he[u->in[k]] |= !he;
		}
	}
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || (n->op != IR_DENSE && n->op != IR_CONV2D))
			continue;
		ir_param *w = &g->params[g->nodes[n->in[1]].param];
		if (w->init_set)
			continue;
		w->init = users[i] && !not_he[i] ? NNRT_INIT_HE_UNIFORM : NNRT_INIT_GLOROT_UNIFORM;
	}
}

/* Appends the inference tail: the value prediction reports, into ST_OUT. */
static void add_output_tail(sema *s)
{
	ir_graph *g = s->g;
	int out = g->output;
	if (out < 0 && g->loss >= 0)
		out = g->nodes[g->loss].in[0];
	if (out < 0)
		return;
	out = relayout(s, out, LAYOUT_NC);
	ir_op op = (g->output < 0 && g->loss_kind == NNRT_LOSS_SOFTMAX_XENT) ? IR_SOFTMAX : IR_COPY;
	int id = add_shaped(s, op, 1, &out, g->nodes[out].loc);
	NNC_ASSERT(id >= 0);
	g->output = id;
}

ir_graph *nnc_sema(const nnc_program *prog)
{
	sema S = {0}, *s = &S;
	s->src = prog->src;
	s->g = ir_new(prog->src);
	ir_graph *g = s->g;
	int errors0 = nnc_diag_error_count();
	s->errors0 = errors0;

	for (int i = 0; i < prog->nstmts && !nnc_diag_too_many(); i++) {
		const nnc_stmt *st = &prog->stmts[i];
		switch (st->kind) {
		case STMT_MODEL:
			if (s->model_stmt) {
				nnc_error(s->src, st->loc, "the model name is already given");
				nnc_note(s->src, s->model_stmt->loc, "first given here");
			} else {
				s->model_stmt = st;
				g->model_name = st->name;
			}
			break;
		case STMT_INPUT:
		case STMT_LABEL:
			stmt_tensor_decl(s, st);
			break;
		case STMT_LET: {
			s->defining = st;
			val v = eval(s, st->expr);
			s->defining = NULL;
			if (v.kind == V_NUM || v.kind == V_STR) {
				nnc_error(s->src, st->expr->loc, "'%s' must be a tensor, not %s", st->name, kind_name(v.kind));
				v = verr(st->loc);
			}
			if (v.kind == V_TENSOR && !g->nodes[v.node].name)
				g->nodes[v.node].name = st->name;
			if (bind(s, st->name, st->name_loc, v.kind == V_TENSOR ? v.node : -1))
				s->names[s->nnames - 1].is_let = true;
			break;
		}
		case STMT_OUTPUT: {
			if (s->output_stmt) {
				nnc_error(s->src, st->loc, "the output is already defined");
				nnc_note(s->src, s->output_stmt->loc, "first defined here");
				break;
			}
			s->output_stmt = st;
			val v = eval(s, st->expr);
			if (v.kind == V_TENSOR)
				g->output = v.node;
			else if (v.kind != V_ERROR)
				nnc_error(s->src, st->expr->loc, "the output must be a tensor, not %s", kind_name(v.kind));
			break;
		}
		case STMT_LOSS:
			stmt_loss(s, st);
			break;
		case STMT_OPTIMIZER:
			stmt_optimizer(s, st);
			break;
		case STMT_TRAIN:
			stmt_train(s, st);
			break;
		}
	}

	nnc_loc top = {1, 1, 1, 2};
	if (!s->model_stmt) {
		nnc_error(s->src, top, "the program has no 'model NAME' line");
		nnc_hint("start the file with, for example: model mlp");
	}
	if (g->input < 0 && nnc_diag_error_count() == errors0)
		nnc_error(s->src, top, "the program declares no input; add e.g. 'input x : f32[784]'");
	if (g->label < 0 && nnc_diag_error_count() == errors0)
		nnc_error(s->src, top, "the program declares no label; add e.g. 'label y : class(10)'");
	/* A missing statement is independent of any other mistake. */
	if (!s->loss_stmt) {
		nnc_error(s->src, top, "the program has no loss");
		nnc_hint("add e.g. 'loss softmax_cross_entropy(logits, y)'");
	}
	if (!s->opt_stmt) {
		nnc_error(s->src, top, "the program has no optimizer");
		nnc_hint("add e.g. 'optimizer sgd(lr: 0.05, momentum: 0.9)'");
	}
	if (!s->train_stmt) {
		nnc_error(s->src, top, "the program has no train block");
		nnc_hint("add e.g. 'train { data: moons(count: 1000)  batch: 32  epochs: 10 }'");
	}
	if (nnc_diag_error_count() != errors0)
		return NULL;
	if (g->nparams == 0) {
		nnc_error(s->src, g->nodes[g->loss].loc, "the model has no parameters to train");
		nnc_hint("add a layer with weights, e.g. dense(10)");
		return NULL;
	}
	bool *reaches = ir_ancestors(g, g->loss), trains = false;
	for (int p = 0; p < g->nparams; p++)
		trains |= reaches[g->params[p].node];
	if (!trains) /* legal (the metrics are still right), but trains nothing */
		nnc_warning(s->src, g->nodes[g->loss].loc,
			    "the loss depends on no parameter, so training will not change the model");
	warn_unused(s);
	default_inits(g);
	g->bpad = (g->batch + 15) / 16 * 16;
	g->fingerprint = ir_fingerprint(g);
	return g;
}

/* Appends the inference tail (see add_output_tail), which only inference
 * runs, and adds inference to the entries of the nodes the output reads. */
void nnc_add_inference_tail(ir_graph *g)
{
	sema S = {0};
	S.g = g;
	S.src = g->src;
	g->adding = IR_ENTRY_INFER;
	add_output_tail(&S);
	if (g->output >= 0) {
		bool *need = ir_ancestors(g, g->output);
		for (int i = 0; i < g->n; i++)
			if (need[i])
				g->nodes[i].entries |= IR_ENTRY_INFER;
	}
}
