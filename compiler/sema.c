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
 *
 * This file holds names, values and statements and the driver; the layer
 * builders, the training configuration and the passes sema runs are in the
 * files sema.h lists.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sema.h"

const char *const sema_loss_names[] = {"softmax_cross_entropy", "mse", "binary_cross_entropy", NULL};

/* ---- names ---- */

/* Names live in a hash table: a program of 100,000 definitions looked
 * each one up in the list of all before it (16 s for 20,000). */
static unsigned name_slot(const sema *s, const char *name)
{
	return (unsigned)nnc_hash(NNC_HASH_INIT, name, strlen(name)) & (unsigned)(s->tsize - 1);
}

binding *sema_lookup(sema *s, const char *name)
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

/* Binds name to node (-1: an error marker).  At the top level a name is
 * defined once; in a block's body it may be bound again (`h = h |> relu`),
 * which replaces the binding.  Returns the binding, NULL after an error. */
static binding *bind(sema *s, const char *name, nnc_loc loc, int node)
{
	binding *old = sema_lookup(s, name);
	if (old && s->depth > 0) {
		*old = (binding){name, loc, node, false, false, NULL, NULL};
		return old;
	}
	if (old) {
		nnc_error(s->src, loc, "'%s' is already defined", name);
		nnc_note(s->src, old->loc, "'%s' was first defined here", name);
		return NULL;
	}
	if (s->nnames == s->cap) {
		int cap = s->cap ? s->cap * 2 : 16;
		s->names = nnc_realloc_array(s->names, (size_t)s->nnames, (size_t)cap, sizeof(binding));
		s->cap = cap;
	}
	s->names[s->nnames++] = (binding){name, loc, node, false, false, NULL, NULL};
	table_insert(s, s->nnames - 1);
	return &s->names[s->nnames - 1];
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

char *sema_join_choices(const char *const *c)
{
	nnc_buf b = {0};
	for (int i = 0; c[i]; i++)
		nnc_buf_printf(&b, "%s%s", i ? ", " : "", c[i]);
	char *r = nnc_strdup(b.data ? b.data : "");
	nnc_buf_free(&b);
	return r;
}

/* ---- values ---- */

static val eval(sema *s, const nnc_ast *e);

/* The value of a block argument bound as a compile-time literal. */
static val literal_val(sema *s, const nnc_ast *lit, nnc_loc loc)
{
	switch (lit->kind) {
	case AST_NUM: return (val){.kind = V_NUM, .num = lit->num, .loc = loc};
	case AST_STR: return (val){.kind = V_STR, .str = lit->str, .loc = loc};
	case AST_NAME: return (val){.kind = V_NAME, .str = lit->str, .loc = loc};
	default:
		nnc_error(s->src, loc, "a list is only allowed as an option value");
		return sema_verr(loc);
	}
}

int sema_add_node(sema *s, ir_op op, int nin, const int *in, nnc_loc loc)
{
	int id = ir_add(s->g, op, nin, in);
	s->g->nodes[id].loc = loc;
	return id;
}

/* Adds a node and runs its shape rule; returns -1 (after the rule's error). */
int sema_add_shaped(sema *s, ir_op op, int nin, const int *in, nnc_loc loc)
{
	int id = sema_add_node(s, op, nin, in, loc);
	if (!ir_infer_shape(s->g, id)) {
		s->g->nodes[id].dead = true;
		return -1;
	}
	/* a result that keeps an operand's sequence axis (docs/architecture.md "Sequences") */
	ir_node *r = &s->g->nodes[id];
	for (int k = 0; k < nin && r->batched && r->rank >= 2; k++)
		if (in[k] >= 0 && s->g->nodes[in[k]].seq && s->g->nodes[in[k]].dims[0] == r->dims[0])
			r->seq = true;
	return id;
}


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

const nnc_arg *sema_find_named(const nnc_ast *call, const char *name)
{
	for (int i = 0; i < call->nargs; i++)
		if (call->args[i].name && !strcmp(call->args[i].name, name))
			return &call->args[i];
	return NULL;
}

const nnc_arg *sema_positional(const nnc_ast *call, int k)
{
	for (int i = 0; i < call->nargs; i++)
		if (!call->args[i].name && k-- == 0)
			return &call->args[i];
	return NULL;
}

/* Checks that every named argument of `call` is in `allowed` and appears once,
 * and that there are at most `max_pos` positional arguments. */
bool sema_check_args(sema *s, const nnc_ast *call, int max_pos, const char *const *allowed)
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
				nnc_hint("the options of '%s' are: %s", call->str, sema_join_choices(allowed));
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
bool sema_arg_num(sema *s, const nnc_arg *a, const char *what, double *out)
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
bool sema_arg_int_in(sema *s, const nnc_arg *a, const char *what, int64_t lo, double hi, int64_t *out)
{
	double d;
	if (!sema_arg_num(s, a, what, &d))
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

bool sema_arg_int(sema *s, const nnc_arg *a, const char *what, int64_t lo, int64_t *out)
{
	return sema_arg_int_in(s, a, what, lo, MAX_INT_ARG, out);
}

/* Whether v, which the runtime keeps as a 32-bit float, is one. */
bool sema_float_ok(sema *s, nnc_loc loc, const char *what, double v)
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
bool sema_size_ok(sema *s, nnc_loc loc, const char *what, int rank, const int64_t *dims)
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

bool sema_arg_str(sema *s, const nnc_arg *a, const char *what, const char **out)
{
	if (a->value->kind != AST_STR) {
		nnc_error(s->src, a->value->loc, "%s must be a string", what);
		return false;
	}
	*out = a->value->str;
	return true;
}

bool sema_arg_bool(sema *s, const nnc_arg *a, const char *what, bool *out)
{
	if (a->value->kind == AST_NAME && (!strcmp(a->value->str, "true") || !strcmp(a->value->str, "false"))) {
		*out = !strcmp(a->value->str, "true");
		return true;
	}
	nnc_error(s->src, a->value->loc, "%s must be true or false", what);
	return false;
}

val sema_tensor_arg(sema *s, const nnc_ast *call, int k, const char *what)
{
	/* a shared layer's input, evaluated once by its use */
	if (s->share && call == s->share->use && k == 0)
		return s->share->input;
	const nnc_arg *a = sema_positional(call, k);
	if (!a) {
		nnc_error(s->src, call->loc, "'%s' needs %s", call->str, what);
		return sema_verr(call->loc);
	}
	val v = eval(s, a->value);
	if (v.kind == V_ERROR)
		return v;
	if (v.kind != V_TENSOR) {
		nnc_error(s->src, a->value->loc, "'%s' needs %s, not %s", call->str, what, kind_name(v.kind));
		return sema_verr(a->value->loc);
	}
	return v;
}

/* expr == expr | != | < | <= | > | >= | expr && expr | expr || expr
 * On compile-time values only: numbers (also strings and bare words for ==
 * and !=); true is 1, false 0, and && || read any non-zero number as true. */
static val eval_condition(sema *s, const nnc_ast *e, val a, val b)
{
	const char *op = nnc_ast_op_name(e->op);
	bool eq = e->op == AST_OP_EQ || e->op == AST_OP_NE;
	if (eq && (a.kind == V_STR || a.kind == V_NAME) && (b.kind == V_STR || b.kind == V_NAME)) {
		bool same = !strcmp(a.str, b.str);
		return (val){.kind = V_NUM, .num = e->op == AST_OP_EQ ? same : !same, .loc = e->loc};
	}
	if (a.kind != V_NUM || b.kind != V_NUM) {
		bool tensor = a.kind == V_TENSOR || b.kind == V_TENSOR;
		nnc_error(s->src, e->loc, "'%s' is computed when the program is compiled: it needs %s, not %s and %s", op,
			  eq ? "two numbers or two words" : "two numbers", kind_name(a.kind), kind_name(b.kind));
		if (tensor)
			nnc_hint("a condition can test a block's arguments, not the values of a tensor");
		return sema_verr(e->loc);
	}
	double x = a.num, y = b.num, r = 0;
	switch (e->op) {
	case AST_OP_EQ: r = x == y; break;
	case AST_OP_NE: r = x != y; break;
	case '<': r = x < y; break;
	case AST_OP_LE: r = x <= y; break;
	case '>': r = x > y; break;
	case AST_OP_GE: r = x >= y; break;
	case AST_OP_AND: r = x != 0 && y != 0; break;
	case AST_OP_OR: r = x != 0 || y != 0; break;
	default: nnc_unreachable();
	}
	return (val){.kind = V_NUM, .num = r, .loc = e->loc};
}

/* expr + expr | expr - expr | expr * expr | expr / expr
 * number op number: folded at compile time; tensor op tensor (not /): an
 * element-wise node; tensor op number, number op tensor: an affine map. */
static val eval_binop(sema *s, const nnc_ast *e)
{
	val a = eval(s, e->lhs), b = eval(s, e->rhs);
	if (a.kind == V_ERROR || b.kind == V_ERROR)
		return sema_verr(e->loc);
	if (!strchr("+-*/", e->op))
		return eval_condition(s, e, a, b);
	if (a.kind == V_NUM && b.kind == V_NUM) {
		double r = 0;
		switch (e->op) {
		case '+': r = a.num + b.num; break;
		case '-': r = a.num - b.num; break;
		case '*': r = a.num * b.num; break;
		case '/':
			if (b.num == 0) {
				nnc_error(s->src, e->rhs->loc, "division by zero");
				return sema_verr(e->loc);
			}
			r = a.num / b.num;
			break;
		}
		if (!isfinite(r)) {
			nnc_error(s->src, e->loc, "the value of this expression is too large (it overflows)");
			return sema_verr(e->loc);
		}
		return (val){.kind = V_NUM, .num = r, .loc = e->loc};
	}
	if ((a.kind != V_TENSOR && a.kind != V_NUM) || (b.kind != V_TENSOR && b.kind != V_NUM)) {
		nnc_error(s->src, e->loc, "operator '%c' cannot be applied to %s and %s", e->op, kind_name(a.kind),
			  kind_name(b.kind));
		return sema_verr(e->loc);
	}
	if (a.kind == V_TENSOR && b.kind == V_TENSOR) {
		if (e->op == '/') {
			nnc_error(s->src, e->loc, "dividing a tensor by a tensor is not supported; divide by a number");
			return sema_verr(e->loc);
		}
		ir_op op = e->op == '+' ? IR_ADD : e->op == '-' ? IR_SUB : IR_MUL;
		int ins[2] = {a.node, b.node};
		if (ir_same_shape(&s->g->nodes[a.node], &s->g->nodes[b.node]) &&
		    s->g->nodes[a.node].layout != s->g->nodes[b.node].layout) {
			ins[0] = sema_relayout(s, a.node, LAYOUT_CN);
			ins[1] = sema_relayout(s, b.node, LAYOUT_CN);
		}
		int id = sema_add_shaped(s, op, 2, ins, e->loc);
		return id < 0 ? sema_verr(e->loc) : sema_vtensor(id, e->loc);
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
			return sema_verr(e->loc);
		}
		if (c == 0) {
			nnc_error(s->src, e->rhs->loc, "division by zero");
			return sema_verr(e->loc);
		}
		fa = 1 / c;
		break;
	}
	if (!sema_float_ok(s, e->loc, "the factor of this expression", fa) ||
	    !sema_float_ok(s, e->loc, "the offset of this expression", fb))
		return sema_verr(e->loc);
	int id = sema_add_shaped(s, IR_AFFINE, 1, &t, e->loc);
	if (id < 0)
		return sema_verr(e->loc);
	s->g->nodes[id].fa[0] = fa;
	s->g->nodes[id].fa[1] = fb;
	return sema_vtensor(id, e->loc);
}

/* expr: NUMBER | "string" | NAME | -expr | expr BINOP expr | call | expr |> call
 * A number stays a compile-time value until it meets a tensor. */
static val eval(sema *s, const nnc_ast *e)
{
	switch (e->kind) {
	case AST_NUM:
		return (val){.kind = V_NUM, .num = e->num, .loc = e->loc};
	case AST_STR:
		return (val){.kind = V_STR, .str = e->str, .loc = e->loc};
	case AST_LIST:
		nnc_error(s->src, e->loc, "a list is only allowed as an option value");
		return sema_verr(e->loc);
	case AST_NAME: {
		binding *b = sema_lookup(s, e->str);
		if (b && b->lit)
			return literal_val(s, b->lit, e->loc);
		if (b && b->layer) {
			b->used = true;
			nnc_error(s->src, e->loc, "'%s' is a shared layer; apply it to a value, e.g. x |> %s", e->str, e->str);
			return sema_verr(e->loc);
		}
		if (b) {
			b->used = true;
			if (b->node >= 0 && b->node == s->g->label && !s->label_ok) {
				/* inference has no label to read */
				nnc_error(s->src, e->loc, "the label '%s' can only be the target of the loss", e->str);
				nnc_hint("the prediction must not depend on the label: it is not known when the model "
					 "predicts");
				return sema_verr(e->loc);
			}
			return b->node < 0 ? sema_verr(e->loc) : sema_vtensor(b->node, e->loc);
		}
		for (int i = 0; sema_builtin_layers[i]; i++)
			if (!strcmp(sema_builtin_layers[i], e->str)) {
				nnc_error(s->src, e->loc, "'%s' is a layer; apply it to a value, e.g. x |> %s", e->str, e->str);
				return sema_verr(e->loc);
			}
		if (s->defining && !strcmp(e->str, s->defining->name)) {
			nnc_error(s->src, e->loc, "'%s' is used in its own definition", e->str);
			nnc_hint("a value cannot use itself; to extend '%s', give the result a new name: '%s2 = %s |> ...'",
				 e->str, e->str, e->str);
			return sema_verr(e->loc);
		}
		nnc_error(s->src, e->loc, "unknown name '%s'", e->str);
		hint_unknown(s, e->str, sema_builtin_layers);
		return sema_verr(e->loc);
	}
	case AST_CALL:
		return sema_eval_call(s, e);
	case AST_NEG: {
		val v = eval(s, e->lhs);
		if (v.kind == V_NUM)
			return (val){.kind = V_NUM, .num = -v.num, .loc = e->loc};
		if (v.kind != V_TENSOR) {
			if (v.kind != V_ERROR)
				nnc_error(s->src, e->loc, "cannot negate %s", kind_name(v.kind));
			return sema_verr(e->loc);
		}
		int id = sema_add_shaped(s, IR_AFFINE, 1, &v.node, e->loc);
		if (id < 0)
			return sema_verr(e->loc);
		s->g->nodes[id].fa[0] = -1;
		return sema_vtensor(id, e->loc);
	}
	case AST_BINOP:
		return eval_binop(s, e);
	case AST_NOT: {
		val v = eval(s, e->lhs);
		if (v.kind == V_ERROR)
			return v;
		if (v.kind != V_NUM) {
			nnc_error(s->src, e->loc, "'!' is computed when the program is compiled: it needs a number, not %s",
				  kind_name(v.kind));
			return sema_verr(e->loc);
		}
		return (val){.kind = V_NUM, .num = v.num == 0, .loc = e->loc};
	}
	}
	nnc_unreachable();
}

/* ---- statements ---- */

/* input NAME : f32[d, ...]
 * label NAME : class(N) | f32[d, ...] */
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
	int id = sema_add_node(s, is_input ? IR_INPUT : IR_LABEL, 0, NULL, st->name_loc);
	ir_node *n = &g->nodes[id];
	n->name = st->name;
	if (t->vocab) { /* token(V)[T] or class(V)[T] (docs/language.md "Sequences") */
		bool token = t->kind == TYPE_TOKEN;
		if (token != is_input || t->vocab < 2 || t->vocab > (1 << 24)) {
			if (token != is_input)
				nnc_error(s->src, t->loc, is_input ? "an input per position is token(V)[T], not class(V)[T]"
								   : "a label per position is class(V)[T], not token(V)[T]");
			else
				nnc_error(s->src, t->loc, "the vocabulary must have between 2 and 16777216 entries, not %lld",
					  (long long)t->vocab);
			n->dead = true;
			bind(s, st->name, st->name_loc, -1);
			return;
		}
		ir_set_shape(n, true, 1, t->dims);
		if (is_input) {
			g->input_vocab = t->vocab;
		} else {
			g->label_kind = NNRT_LABEL_REAL; /* T class ids as floats, -1: ignored */
			g->label_size = t->dims[0];
			g->label_vocab = t->vocab;
		}
	} else if (t->kind == TYPE_CLASS) {
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
		if (!sema_size_ok(s, t->loc, is_input ? "the input" : "the label", t->rank, t->dims)) {
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

/* loss softmax_cross_entropy(logits, label, smoothing: 0) | mse(pred, label)
 *      | binary_cross_entropy(pred, label) */
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
		const char *best = nnc_suggest(e->str, sema_loss_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("losses are: %s", sema_join_choices(sema_loss_names));
		return;
	}
	static const char *const xent_opts[] = {"smoothing", NULL};
	if (!sema_check_args(s, e, 2, op == IR_XENT ? xent_opts : NULL))
		return;
	double smoothing = 0;
	const nnc_arg *sa = sema_find_named(e, "smoothing");
	if (sa) {
		if (!sema_arg_num(s, sa, "'smoothing'", &smoothing))
			return;
		if (!(smoothing >= 0 && smoothing < 1)) {
			nnc_error(s->src, sa->value->loc, "'smoothing' must be in [0, 1), not %g", smoothing);
			return;
		}
	}
	val p = sema_tensor_arg(s, e, 0, "a prediction");
	const nnc_arg *ya = sema_positional(e, 1);
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
	if (g->label_vocab && op != IR_XENT) {
		nnc_error(s->src, ya->value->loc, "'%s' needs a real-valued label, but '%s' is a class per position", e->str,
			  g->nodes[g->label].name);
		nnc_hint("a class(V)[T] label goes with softmax_cross_entropy");
		return;
	}
	if (g->label_vocab) { /* a class per position */
		op = IR_SEQ_XENT;
		want_label = NNRT_LABEL_REAL;
		if (smoothing != 0) {
			nnc_error(s->src, sa->value->loc, "label smoothing is not supported with a class per position");
			return;
		}
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
	int ins[2] = {sema_relayout(s, p.node, LAYOUT_NC), y.node};
	int id = sema_add_shaped(s, op, 2, ins, e->loc);
	if (id < 0)
		return;
	g->nodes[id].fa[0] = smoothing; /* XENT: label smoothing (its gradient gets it too) */
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
	g->loss_kind = op == IR_XENT ? NNRT_LOSS_SOFTMAX_XENT : op == IR_SEQ_XENT ? NNRT_LOSS_SEQ_XENT
		     : op == IR_MSE ? NNRT_LOSS_MSE : NNRT_LOSS_BCE;
}
/* ---- blocks and shared layers ----
 *
 * A block is expanded where it is called: its body runs in a scope of its
 * own (its parameters and what it defines; nothing of the caller's), so the
 * graph gets the body's nodes once per call and the IR never sees a block.
 * Parameters are tensors, or compile-time literals (numbers, strings, bare
 * words such as relu, lists of them) that stand for themselves wherever the
 * body names them.  Layers made inside are named after the call (see
 * sema_layer_name); errors inside carry one note per call that led there. */

/* Expansion limits: nested calls (no recursion is possible, but a chain of
 * blocks may be long), iterations of one repeat, and statements run in all,
 * so that a hostile file cannot make the compiler run for hours. */
#define MAX_BLOCK_DEPTH 64
#define MAX_REPEAT 10000
#define MAX_STEPS 1000000L
#define MAX_NODES 4000000

struct block_def {
	const nnc_stmt *st; /* STMT_BLOCK */
	bool bad;           /* recursive: its calls are silent errors */
	bool told_return;   /* "ends without returning" was reported */
	int *callees;       /* the blocks its body calls (indices), and where */
	const nnc_ast **calls;
	int ncallees, capcallees;
};

static int by_block_name(const void *a, const void *b)
{
	return strcmp(((const block_def *)a)->st->name, ((const block_def *)b)->st->name);
}

static block_def *find_block(sema *s, const char *name)
{
	if (!s->nblocks)
		return NULL;
	nnc_stmt key_st = {.name = name};
	block_def key = {.st = &key_st};
	return bsearch(&key, s->blocks, (size_t)s->nblocks, sizeof key, by_block_name);
}

static bool is_builtin(const char *name)
{
	const char *const *lists[] = {sema_builtin_layers, sema_loss_names, sema_opt_names, sema_data_names};
	for (size_t l = 0; l < sizeof lists / sizeof *lists; l++)
		for (int i = 0; lists[l][i]; i++)
			if (!strcmp(lists[l][i], name))
				return true;
	return false;
}

/* The signature, for hints: "residual(x, filters, stride: 1)". */
static const char *block_signature(const nnc_stmt *def)
{
	nnc_buf b = {0};
	nnc_buf_printf(&b, "%s(", def->name);
	for (int i = 0; i < def->nparams; i++) {
		const nnc_arg *p = &def->params[i];
		nnc_buf_printf(&b, "%s%s", i ? ", " : "", p->name ? p->name : p->value->str);
		if (p->name) {
			const nnc_ast *d = p->value;
			if (d->kind == AST_NUM)
				nnc_buf_printf(&b, ": %g", d->num);
			else if (d->kind == AST_NAME)
				nnc_buf_printf(&b, ": %s", d->str);
			else
				nnc_buf_puts(&b, ": ...");
		}
	}
	nnc_buf_puts(&b, ")");
	char *r = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return r;
}

static const char *param_name(const nnc_arg *p)
{
	return p->name ? p->name : p->value->str;
}

static nnc_loc param_loc(const nnc_arg *p)
{
	return p->name ? p->name_loc : p->value->loc;
}

/* Every call of a block in an expression, as an edge of the call graph. */
static void calls_in_expr(sema *s, block_def *from, const nnc_ast *e)
{
	if (!e)
		return;
	if (e->kind == AST_CALL) {
		block_def *to = find_block(s, e->str);
		if (to) {
			if (from->ncallees == from->capcallees) {
				int cap = from->capcallees ? 2 * from->capcallees : 4;
				from->callees = nnc_realloc_array(from->callees, (size_t)from->ncallees, (size_t)cap,
								  sizeof *from->callees);
				from->calls = nnc_realloc_array(from->calls, (size_t)from->ncallees, (size_t)cap,
								sizeof *from->calls);
				from->capcallees = cap;
			}
			from->callees[from->ncallees] = (int)(to - s->blocks);
			from->calls[from->ncallees++] = e;
		}
	}
	calls_in_expr(s, from, e->lhs);
	calls_in_expr(s, from, e->rhs);
	for (int i = 0; i < e->nargs; i++)
		calls_in_expr(s, from, e->args[i].value);
}

static void calls_in_stmts(sema *s, block_def *from, const nnc_stmt *st, int n)
{
	for (int i = 0; i < n; i++) {
		calls_in_expr(s, from, st[i].expr);
		if (!nnc_stmt_has_body(st[i].kind))
			continue;
		calls_in_stmts(s, from, st[i].body, st[i].nbody);
		calls_in_stmts(s, from, st[i].else_body, st[i].nelse);
	}
}

/*
 * Recursion, direct or through other blocks, is an error at the call that
 * closes the cycle, naming it: "block 'a' is recursive: a -> b -> a".  A
 * depth-first search over the call graph with an explicit stack (a chain of
 * many blocks must not overflow the C stack); every block on a cycle is
 * marked bad, so its calls add no further errors.
 */
static void check_recursion(sema *s)
{
	int n = s->nblocks;
	int *state = nnc_alloc(sizeof(int) * (size_t)(n ? n : 1)); /* 0 new, 1 on the stack, 2 done */
	int *stack = nnc_alloc(sizeof(int) * (size_t)(n ? n : 1));
	int *edge = nnc_alloc(sizeof(int) * (size_t)(n ? n : 1)); /* the next edge of each on the stack */
	for (int root = 0; root < n; root++) {
		if (state[root])
			continue;
		int top = 0;
		stack[top++] = root;
		state[root] = 1;
		edge[root] = 0;
		while (top > 0) {
			block_def *b = &s->blocks[stack[top - 1]];
			int bi = stack[top - 1];
			if (edge[bi] == b->ncallees) {
				state[bi] = 2;
				top--;
				continue;
			}
			int k = edge[bi]++, c = b->callees[k];
			if (state[c] == 0) {
				state[c] = 1;
				edge[c] = 0;
				stack[top++] = c;
			} else if (state[c] == 1) {
				int from = top - 1;
				while (stack[from] != c)
					from--;
				nnc_buf path = {0};
				for (int j = from; j < top; j++) {
					/* a long cycle is shown by its ends */
					if (j - from < 8 || j == top - 1)
						nnc_buf_printf(&path, "%s -> ", s->blocks[stack[j]].st->name);
					else if (j - from == 8)
						nnc_buf_printf(&path, "(%d more) -> ", top - from - 9);
					s->blocks[stack[j]].bad = true;
				}
				nnc_buf_puts(&path, s->blocks[c].st->name);
				const nnc_ast *call = b->calls[k];
				nnc_error(s->src, call->callee_loc, "block '%s' is recursive: %s", s->blocks[c].st->name,
					  path.data);
				nnc_hint("blocks are expanded where they are called, so a block cannot call itself; repeat "
					 "a part with 'repeat N { ... }'");
				nnc_buf_free(&path);
			}
		}
	}
}

/* block NAME(PARAMS) { BODY }, anywhere at the top level: collected before
 * the other statements are checked, so a block may call one defined after it. */
static void collect_blocks(sema *s, const nnc_program *prog)
{
	int n = 0;
	for (int i = 0; i < prog->nstmts; i++)
		n += prog->stmts[i].kind == STMT_BLOCK;
	if (!n)
		return;
	s->blocks = nnc_alloc(sizeof *s->blocks * (size_t)n);
	for (int i = 0; i < prog->nstmts; i++) {
		const nnc_stmt *st = &prog->stmts[i];
		if (st->kind != STMT_BLOCK)
			continue;
		bool ok = true, dup = false;
		if (is_builtin(st->name)) {
			nnc_error(s->src, st->name_loc, "'%s' is a built-in name; a block needs another", st->name);
			ok = false;
		}
		for (int k = 0; k < s->nblocks; k++)
			if (!strcmp(s->blocks[k].st->name, st->name)) {
				nnc_error(s->src, st->name_loc, "block '%s' is already defined", st->name);
				nnc_note(s->src, s->blocks[k].st->name_loc, "first defined here");
				dup = true;
				break;
			}
		if (st->nparams == 0) {
			nnc_error(s->src, st->name_loc, "block '%s' has no parameters; the first one is the value it is "
				  "applied to", st->name);
			nnc_hint("write e.g. 'block %s(x) { ... }' and call it as 'h |> %s'", st->name, st->name);
			ok = false;
		}
		for (int k = 0; k < st->nparams; k++) {
			const char *pk = param_name(&st->params[k]);
			if (!strcmp(pk, "name")) {
				nnc_error(s->src, param_loc(&st->params[k]), "a block's parameter cannot be called 'name': a "
					  "call's name: names its layers");
				ok = false;
			}
			for (int j = 0; j < k; j++)
				if (!strcmp(param_name(&st->params[j]), pk)) {
					nnc_error(s->src, param_loc(&st->params[k]), "parameter '%s' appears twice", pk);
					ok = false;
					break;
				}
		}
		/* a block with an error is still known: its calls are silent */
		if (!dup && !is_builtin(st->name))
			s->blocks[s->nblocks++] = (block_def){.st = st, .bad = !ok};
	}
	qsort(s->blocks, (size_t)s->nblocks, sizeof *s->blocks, by_block_name);
	for (int i = 0; i < s->nblocks; i++)
		calls_in_stmts(s, &s->blocks[i], s->blocks[i].st->body, s->blocks[i].st->nbody);
	check_recursion(s);
}

static nnc_ast *literal_node(nnc_ast_kind kind, nnc_loc loc)
{
	nnc_ast *e = nnc_alloc(sizeof *e);
	e->kind = kind;
	e->loc = loc;
	return e;
}

/*
 * A block argument (or default) as what the body's parameter is bound to:
 * a tensor node (*node), or a literal (*lit): a number, string, bare word
 * or list of them.  A name not defined where the call is is a bare word
 * (relu, he, same, true), except for the value the block is applied to.
 * Returns false after an error.
 */
static bool argument_value(sema *s, const nnc_ast *e, bool tensor, int *node, const nnc_ast **lit)
{
	*node = -1;
	*lit = NULL;
	if (e->kind == AST_NAME && !tensor) {
		binding *b = sema_lookup(s, e->str);
		if (!b) {
			*lit = e;
			return true;
		}
		if (b->lit) {
			*lit = b->lit;
			return true;
		}
	}
	if (e->kind == AST_LIST) {
		nnc_ast *l = literal_node(AST_LIST, e->loc);
		l->args = nnc_alloc(sizeof *l->args * (size_t)(e->nargs ? e->nargs : 1));
		l->nargs = e->nargs;
		for (int i = 0; i < e->nargs; i++) {
			int n;
			const nnc_ast *el;
			if (!argument_value(s, e->args[i].value, false, &n, &el))
				return false;
			if (!el) {
				nnc_error(s->src, e->args[i].value->loc, "a list holds numbers, strings or words, not a tensor");
				return false;
			}
			l->args[i] = (nnc_arg){NULL, {0, 0, 0, 0}, (nnc_ast *)el};
		}
		*lit = l;
		return true;
	}
	val v = eval(s, e);
	switch (v.kind) {
	case V_ERROR:
		return false;
	case V_TENSOR:
		*node = v.node;
		return true;
	case V_NUM: {
		nnc_ast *n = literal_node(AST_NUM, e->loc);
		n->num = v.num;
		n->is_int = v.num == floor(v.num);
		*lit = n;
		return true;
	}
	case V_STR:
	case V_NAME: {
		nnc_ast *n = literal_node(v.kind == V_STR ? AST_STR : AST_NAME, e->loc);
		n->str = v.str;
		*lit = n;
		return true;
	}
	}
	nnc_unreachable();
}

static binding *bind_value(sema *s, const char *name, nnc_loc loc, int node, const nnc_ast *lit)
{
	binding *b = bind(s, name, loc, node);
	if (b)
		b->lit = lit;
	return b;
}

/* The names of a scope, saved while a block's body has its own. */
typedef struct name_table {
	binding *names;
	int nnames, cap;
	int *table;
	int tsize;
} name_table;

static name_table swap_names(sema *s, name_table t)
{
	name_table old = {s->names, s->nnames, s->cap, s->table, s->tsize};
	s->names = t.names;
	s->nnames = t.nnames;
	s->cap = t.cap;
	s->table = t.table;
	s->tsize = t.tsize;
	return old;
}

static int *scope_count(layer_scope *ls, const char *kind)
{
	for (int i = 0; i < ls->ncounts; i++)
		if (!strcmp(ls->counts[i].kind, kind))
			return &ls->counts[i].n;
	if (ls->ncounts == ls->cap) {
		int cap = ls->cap ? 2 * ls->cap : 8;
		ls->counts = nnc_realloc_array(ls->counts, (size_t)ls->ncounts, (size_t)cap, sizeof *ls->counts);
		ls->cap = cap;
	}
	ls->counts[ls->ncounts] = (name_count){kind, 0};
	return &ls->counts[ls->ncounts++].n;
}

const char *sema_layer_name(sema *s, const char *kind, const char *name)
{
	if (s->share)
		return s->share->name;
	layer_scope *ls = s->lscope;
	/* top-level convolutions keep the numbering they always had: after the
	 * parameters named conv*.weight so far */
	if (!ls->prefix[0] && !strcmp(kind, "conv"))
		return name ? name : nnc_sprintf("conv%d", 1 + s->nconv_weights);
	int n = ++*scope_count(ls, kind);
	return nnc_sprintf("%s%s", ls->prefix, name ? name : nnc_sprintf("%s%d", kind, n));
}

int sema_shared_param(sema *s, int rank, const int64_t *dims)
{
	shared_layer *sl = s->share;
	if (!sl || !sl->built)
		return -2;
	NNC_ASSERT(sl->next < sl->nparams);
	int id = sl->params[sl->next++];
	const ir_node *p = &s->g->nodes[id];
	bool same = p->rank == rank;
	for (int i = 0; same && i < rank; i++)
		same = p->dims[i] == dims[i];
	if (same)
		return id;
	const ir_node *now = &s->g->nodes[sl->input.node], *first = &s->g->nodes[sl->first_input];
	nnc_error(s->src, sl->use->loc, "shared layer '%s' is applied to inputs of different shapes: %s here, %s at its "
		  "first use", sl->name, ir_shape_str(now), ir_shape_str(first));
	nnc_note(s->src, sl->first_use, "its first use, which made '%s' %s", p->name, ir_dims_str(false, p->rank, p->dims));
	nnc_hint("one layer's parameters fit one input size; apply it to values of the same shape");
	return -1;
}

void sema_param_made(sema *s, int node)
{
	shared_layer *sl = s->share;
	if (!sl || sl->built)
		return;
	if (sl->nparams == sl->cap) {
		int cap = sl->cap ? 2 * sl->cap : 4;
		sl->params = nnc_realloc_array(sl->params, (size_t)sl->nparams, (size_t)cap, sizeof *sl->params);
		sl->cap = cap;
	}
	sl->params[sl->nparams++] = node;
}

/* layer NAME = LAYER(args): a layer instance to apply at several places, with
 * one set of parameters (named NAME.weight ..., or after its name: option). */
static void stmt_layer(sema *s, const nnc_stmt *st)
{
	const nnc_ast *e = st->expr;
	bool known = false;
	for (int i = 0; e->kind == AST_CALL && sema_builtin_layers[i]; i++)
		known |= !strcmp(sema_builtin_layers[i], e->str);
	if (!known || e->piped) {
		nnc_error(s->src, e->loc, "a shared layer is a call of a built-in layer without its input, such as "
			  "'layer %s = dense(64)'", st->name);
		nnc_hint("apply it where it is used: 'a |> %s', 'b |> %s'", st->name, st->name);
		binding *b = bind(s, st->name, st->name_loc, -1);
		if (b) { /* its uses are silent errors */
			b->layer = nnc_alloc(sizeof *b->layer);
			b->layer->failed = true;
		}
		return;
	}
	if (is_builtin(st->name) || find_block(s, st->name)) {
		nnc_error(s->src, st->name_loc, "'%s' is the name of a %s; a shared layer needs another", st->name,
			  is_builtin(st->name) ? "built-in layer or function" : "block");
		return;
	}
	const nnc_arg *na = sema_find_named(e, "name");
	shared_layer *sl = nnc_alloc(sizeof *sl);
	sl->call = e;
	sl->name = nnc_sprintf("%s%s", s->lscope->prefix,
			       na && na->value->kind == AST_STR ? na->value->str : st->name);
	binding *b = bind(s, st->name, st->name_loc, -1);
	if (b)
		b->layer = sl;
}

/* x |> NAME | NAME(x), NAME a shared layer: its layer call with x as input;
 * the first use makes the parameters, the others reuse them. */
static val apply_shared(sema *s, shared_layer *sl, const nnc_ast *call)
{
	if (call->nargs != 1 || call->args[0].name) {
		nnc_error(s->src, call->loc, "'%s' is a shared layer: apply it to one value and nothing else, as in "
			  "'x |> %s'", call->str, call->str);
		nnc_hint("its options are given where it is defined");
		return sema_verr(call->loc);
	}
	if (sl->failed)
		return sema_verr(call->loc);
	val x = eval(s, call->args[0].value);
	if (x.kind != V_TENSOR) {
		if (x.kind != V_ERROR)
			nnc_error(s->src, call->args[0].value->loc, "'%s' needs an input tensor, not %s", call->str,
				  kind_name(x.kind));
		return sema_verr(call->loc);
	}
	nnc_ast *c = nnc_alloc(sizeof *c);
	*c = *sl->call;
	c->loc = call->loc;
	c->callee_loc = call->callee_loc;
	c->piped = true;
	c->nargs = sl->call->nargs + 1;
	c->args = nnc_alloc(sizeof *c->args * (size_t)c->nargs);
	c->args[0] = call->args[0];
	c->args[0].name = NULL;
	for (int i = 0; i < sl->call->nargs; i++)
		c->args[i + 1] = sl->call->args[i];
	shared_layer *outer = s->share;
	s->share = sl;
	sl->use = c;
	sl->input = x;
	sl->next = 0;
	val v = sema_eval_call(s, c);
	s->share = outer;
	if (!sl->built) {
		sl->built = v.kind == V_TENSOR;
		sl->failed = !sl->built;
		sl->first_use = call->loc;
		sl->first_input = x.node;
	}
	return v;
}

static void exec_stmts(sema *s, const nnc_stmt *st, int n);
static void stmt_let(sema *s, const nnc_stmt *st);

/* A compile-time number from an `if` condition or a repeat count; false
 * (after reporting) if e is not one. */
static bool compile_time_number(sema *s, const nnc_ast *e, const char *what, double *out)
{
	val v = eval(s, e);
	if (v.kind == V_ERROR)
		return false;
	if (v.kind != V_NUM) {
		nnc_error(s->src, e->loc, "%s is computed when the program is compiled: it must be a number, not %s", what,
			  kind_name(v.kind));
		if (v.kind == V_TENSOR)
			nnc_hint("a condition can test a block's arguments, not the values of a tensor");
		return false;
	}
	*out = v.num;
	return true;
}

/* The statements of a body, in order, until one returns. */
static void exec_stmts(sema *s, const nnc_stmt *st, int n)
{
	for (int i = 0; i < n && !s->returned && !nnc_diag_too_many(); i++) {
		const nnc_stmt *t = &st[i];
		if (++s->steps == MAX_STEPS) {
			nnc_error(s->src, t->loc, "the blocks expand to more than %ld statements", MAX_STEPS);
			nnc_hint("a repeat count or a nesting of blocks is too large");
		}
		if (s->g->n > MAX_NODES && s->steps < MAX_STEPS) {
			nnc_error(s->src, t->loc, "the blocks expand to more than %d operations", MAX_NODES);
			nnc_hint("a repeat count or a nesting of blocks is too large");
			s->steps = MAX_STEPS;
		}
		if (s->steps >= MAX_STEPS) {
			s->returned = true;
			s->ret = sema_verr(t->loc);
			return;
		}
		switch (t->kind) {
		case STMT_LET:
			stmt_let(s, t);
			break;
		case STMT_LAYER:
			stmt_layer(s, t);
			break;
		case STMT_RETURN: {
			/* return EXPR: the block's value, a tensor */
			val v = eval(s, t->expr);
			if (v.kind != V_TENSOR && v.kind != V_ERROR) {
				nnc_error(s->src, t->expr->loc, "a block returns a tensor, not %s", kind_name(v.kind));
				v = sema_verr(t->loc);
			}
			s->ret = v;
			s->returned = true;
			break;
		}
		case STMT_IF: {
			/* if COND { ... } [else { ... }]: COND a compile-time number */
			double c;
			if (!compile_time_number(s, t->expr, "the condition of 'if'", &c)) {
				s->ret = sema_verr(t->loc);
				s->returned = true;
				break;
			}
			if (c != 0)
				exec_stmts(s, t->body, t->nbody);
			else
				exec_stmts(s, t->else_body, t->nelse);
			break;
		}
		case STMT_REPEAT: {
			/* repeat N { ... }: N a whole number 0..MAX_REPEAT */
			double c;
			if (!compile_time_number(s, t->expr, "the count of 'repeat'", &c)) {
				s->ret = sema_verr(t->loc);
				s->returned = true;
				break;
			}
			if (c != floor(c) || c < 0 || c > MAX_REPEAT) {
				nnc_error(s->src, t->expr->loc, "the count of 'repeat' must be a whole number from 0 to %d, "
					  "not %g", MAX_REPEAT, c);
				s->ret = sema_verr(t->loc);
				s->returned = true;
				break;
			}
			for (int k = 0; k < (int)c && !s->returned; k++)
				exec_stmts(s, t->body, t->nbody);
			break;
		}
		default:
			nnc_unreachable(); /* the parser puts no other statement in a body */
		}
	}
}

/*
 * NAME(args) | x |> NAME(args), NAME a block: the arguments matched to the
 * parameters (positional in order, then by name; name: names the call),
 * evaluated where the call is, and the body run in a scope of its own with
 * the layer names prefixed by the call's name.
 */
static val expand_block(sema *s, block_def *b, const nnc_ast *call)
{
	const nnc_stmt *def = b->st;
	int np = def->nparams;
	const nnc_arg **given = nnc_alloc(sizeof *given * (size_t)np);
	const char *inst = NULL;
	const nnc_arg *inst_arg = NULL;
	bool ok = true;
	int npos = 0;
	const char *sig = block_signature(def);
	for (int i = 0; i < call->nargs; i++) {
		const nnc_arg *a = &call->args[i];
		if (!a->name) {
			if (npos == np) {
				nnc_error(s->src, a->value->loc, "too many arguments to block '%s' (it takes %d)", def->name, np);
				nnc_hint("'%s' is defined as %s", def->name, sig);
				ok = false;
			} else if (npos > np) {
				/* reported at the first one */
			} else if (given[npos]) {
				nnc_error(s->src, a->value->loc, "parameter '%s' of block '%s' is given twice", param_name(&def->params[npos]), def->name);
				ok = false;
			} else {
				given[npos] = a;
			}
			npos++;
			continue;
		}
		if (!strcmp(a->name, "name")) {
			if (inst_arg) {
				nnc_error(s->src, a->name_loc, "option 'name' is given twice");
				ok = false;
			} else if (a->value->kind != AST_STR) {
				nnc_error(s->src, a->value->loc, "the name of a block's call must be a string");
				ok = false;
			}
			inst_arg = a;
			inst = a->value->kind == AST_STR ? a->value->str : NULL;
			continue;
		}
		int k = 0;
		while (k < np && strcmp(param_name(&def->params[k]), a->name))
			k++;
		if (k == np) {
			nnc_error(s->src, a->name_loc, "block '%s' has no parameter '%s'", def->name, a->name);
			nnc_suggester sg;
			nnc_suggest_begin(&sg, a->name);
			for (int j = 0; j < np; j++)
				nnc_suggest_try(&sg, param_name(&def->params[j]));
			if (sg.best)
				nnc_hint("did you mean '%s'? ('%s' is defined as %s)", sg.best, def->name, sig);
			else
				nnc_hint("'%s' is defined as %s", def->name, sig);
			ok = false;
		} else if (given[k]) {
			nnc_error(s->src, a->name_loc, "parameter '%s' of block '%s' is given twice", a->name, def->name);
			nnc_note(s->src, given[k]->name ? given[k]->name_loc : given[k]->value->loc, "first given here");
			ok = false;
		} else {
			given[k] = a;
		}
	}
	for (int k = 0; k < np && ok; k++)
		if (!given[k] && !def->params[k].name) {
			nnc_error(s->src, call->loc, "block '%s' needs a value for its parameter '%s'", def->name,
				  param_name(&def->params[k]));
			nnc_hint("'%s' is defined as %s", def->name, sig);
			ok = false;
		}
	if (!ok || b->bad)
		return sema_verr(call->loc);
	if (s->depth >= MAX_BLOCK_DEPTH) {
		nnc_error(s->src, call->loc, "blocks are nested more than %d deep here", MAX_BLOCK_DEPTH);
		return sema_verr(call->loc);
	}
	/* the arguments, where the call is */
	int *nodes = nnc_alloc(sizeof(int) * (size_t)np);
	const nnc_ast **lits = nnc_alloc(sizeof *lits * (size_t)np);
	for (int k = 0; k < np; k++) {
		nodes[k] = -1;
		if (given[k])
			ok &= argument_value(s, given[k]->value, k == 0, &nodes[k], &lits[k]);
	}
	if (!ok)
		return sema_verr(call->loc);

	/* the call's scope: its name, its names, its place for diagnostics */
	layer_scope *outer_ls = s->lscope;
	int n = ++*scope_count(outer_ls, def->name);
	layer_scope *ls = nnc_alloc(sizeof *ls);
	ls->prefix = nnc_sprintf("%s%s.", outer_ls->prefix, inst ? inst : nnc_sprintf("%s%d", def->name, n));
	nnc_loc at = {call->callee_loc.line, call->callee_loc.col, call->loc.end_line, call->loc.end_col};
	nnc_diag_push_context(s->src, at, nnc_sprintf("in block '%s' called here", def->name));
	name_table outer_names = swap_names(s, (name_table){0});
	const nnc_stmt *outer_defining = s->defining;
	bool outer_returned = s->returned;
	val outer_ret = s->ret;
	int outer_first = s->first_node;
	s->first_node = s->g->n;
	s->lscope = ls;
	s->defining = NULL;
	s->returned = false;
	s->ret = sema_verr(call->loc);
	if (s->depth++ == 0)
		s->site = at;

	for (int k = 0; k < np && ok; k++) {
		const nnc_arg *p = &def->params[k];
		if (!given[k]) /* the default, in the block's scope: it may use earlier parameters */
			ok = argument_value(s, p->value, false, &nodes[k], &lits[k]);
		if (ok)
			bind_value(s, param_name(p), param_loc(p), nodes[k], lits[k]);
	}
	if (ok)
		exec_stmts(s, def->body, def->nbody);
	val r = s->ret;
	if (ok && !s->returned && !b->told_return) {
		nnc_error(s->src, def->name_loc, "block '%s' ends without returning a value", def->name);
		nnc_hint("end it with 'return EXPR', the tensor it gives");
		b->told_return = true;
	}

	s->depth--;
	s->lscope = outer_ls;
	s->defining = outer_defining;
	s->returned = outer_returned;
	s->ret = outer_ret;
	s->first_node = outer_first;
	swap_names(s, outer_names);
	nnc_diag_pop_context();
	return ok && r.kind == V_TENSOR ? sema_vtensor(r.node, call->loc) : sema_verr(call->loc);
}

/* Inside a block, an argument or callee naming a literal parameter is
 * replaced by it, so that the builders see `init: he`, `pad: same` or
 * `|> relu` as if written there. */
static const nnc_ast *substitute(sema *s, const nnc_ast *call)
{
	nnc_ast *c = NULL;
	binding *f = sema_lookup(s, call->str);
	if (f && f->lit && f->lit->kind == AST_NAME) {
		c = nnc_alloc(sizeof *c);
		*c = *call;
		c->str = f->lit->str;
	}
	for (int i = 0; i < call->nargs; i++) {
		const nnc_ast *v = call->args[i].value;
		binding *b = v->kind == AST_NAME ? sema_lookup(s, v->str) : NULL;
		if (!b || !b->lit)
			continue;
		if (!c) {
			c = nnc_alloc(sizeof *c);
			*c = *call;
		}
		if (c->args == call->args) {
			c->args = nnc_alloc(sizeof *c->args * (size_t)call->nargs);
			memcpy(c->args, call->args, sizeof *c->args * (size_t)call->nargs);
		}
		nnc_ast *l = nnc_alloc(sizeof *l);
		*l = *b->lit;
		l->loc = v->loc;
		c->args[i].value = l;
	}
	return c ? c : call;
}

bool sema_eval_user_call(sema *s, const nnc_ast **callp, val *out)
{
	if (s->depth > 0)
		*callp = substitute(s, *callp);
	const nnc_ast *call = *callp;
	binding *b = sema_lookup(s, call->str);
	if (b && b->layer) {
		b->used = true;
		*out = apply_shared(s, b->layer, call);
		return true;
	}
	block_def *d = find_block(s, call->str);
	if (d) {
		*out = expand_block(s, d, call);
		return true;
	}
	return false;
}

/* NAME = EXPR: a tensor at the top level; in a block's body also a
 * compile-time value, and a name may be bound again there. */
static void stmt_let(sema *s, const nnc_stmt *st)
{
	s->defining = st;
	val v = eval(s, st->expr);
	s->defining = NULL;
	if (s->depth > 0 && (v.kind == V_NUM || v.kind == V_STR || v.kind == V_NAME)) {
		nnc_ast *lit = literal_node(v.kind == V_NUM ? AST_NUM : v.kind == V_STR ? AST_STR : AST_NAME, st->expr->loc);
		lit->num = v.num;
		lit->is_int = v.num == floor(v.num);
		lit->str = v.str;
		bind_value(s, st->name, st->name_loc, -1, lit);
		return;
	}
	if (v.kind == V_NUM || v.kind == V_STR || v.kind == V_NAME) {
		nnc_error(s->src, st->expr->loc, "'%s' must be a tensor, not %s", st->name, kind_name(v.kind));
		v = sema_verr(st->loc);
	}
	if (v.kind == V_TENSOR && !s->g->nodes[v.node].name && v.node >= s->first_node)
		s->g->nodes[v.node].name = nnc_sprintf("%s%s", s->lscope->prefix, st->name);
	binding *b = bind(s, st->name, st->name_loc, v.kind == V_TENSOR ? v.node : -1);
	if (b)
		b->is_let = s->depth == 0;
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
		if (b->layer && !b->layer->built && !b->layer->failed)
			nnc_warning(s->src, b->loc, "shared layer '%s' is never applied", b->name);
		if (!b->is_let || b->node < 0 || live[b->node])
			continue;
		if (!b->used)
			nnc_warning(s->src, b->loc, "'%s' is never used", b->name);
		else
			nnc_warning(s->src, b->loc, "'%s' is used, but neither the loss nor the output depends on it",
				    b->name);
	}
}

/* program: statements, one a line, in any order (a name before its uses):
 *   model NAME | input ... | label ... | NAME = expr | output expr
 *   | loss ... | optimizer ... | train { ... } */
ir_graph *nnc_sema(const nnc_program *prog, nnc_train_config *cfg)
{
	sema S = {0}, *s = &S;
	s->src = prog->src;
	s->g = ir_new(prog->src);
	*cfg = (nnc_train_config){.batch = 32, .epochs = 1, .seed = 1};
	s->cfg = cfg;
	ir_graph *g = s->g;
	int errors0 = nnc_diag_error_count();
	s->errors0 = errors0;
	layer_scope file_scope = {.prefix = ""};
	s->lscope = &file_scope;
	s->ret = sema_verr((nnc_loc){0, 0, 0, 0});
	collect_blocks(s, prog);

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
		case STMT_LET:
			stmt_let(s, st);
			break;
		case STMT_LAYER:
			stmt_layer(s, st);
			break;
		case STMT_BLOCK:
			break; /* collected before */
		case STMT_RETURN:
		case STMT_IF:
		case STMT_REPEAT:
			nnc_unreachable(); /* only in a body */
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
			sema_stmt_optimizer(s, st);
			break;
		case STMT_TRAIN:
			sema_stmt_train(s, st);
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
	sema_check_schedule(s);
	sema_check_augment(s);
	nnc_diag_flush();
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
	nnc_default_inits(g);
	g->batch = cfg->batch;
	g->bpad = (g->batch + 15) / 16 * 16;
	g->fingerprint = ir_fingerprint(g, cfg->opt.kind);
	return g;
}
