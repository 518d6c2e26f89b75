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

static bool bind(sema *s, const char *name, nnc_loc loc, int node)
{
	binding *old = sema_lookup(s, name);
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

/* expr + expr | expr - expr | expr * expr | expr / expr
 * number op number: folded at compile time; tensor op tensor (not /): an
 * element-wise node; tensor op number, number op tensor: an affine map. */
static val eval_binop(sema *s, const nnc_ast *e)
{
	val a = eval(s, e->lhs), b = eval(s, e->rhs);
	if (a.kind == V_ERROR || b.kind == V_ERROR)
		return sema_verr(e->loc);
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
	g->loss_kind = op == IR_XENT ? NNRT_LOSS_SOFTMAX_XENT : op == IR_MSE ? NNRT_LOSS_MSE : NNRT_LOSS_BCE;
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
				v = sema_verr(st->loc);
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
