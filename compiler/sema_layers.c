/*
 * sema_layers.c - the layer builders: each checks one layer call's arguments
 * and shapes and appends its nodes (and parameters) to the forward graph.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sema.h"

/* ---- layers ---- */

static const char *const init_names[] = {"glorot", "xavier", "he", "lecun", "zeros", "normal", "uniform", "constant", NULL};

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
		if (given && (!sema_arg_num(s, &e->args[0], "the initialiser's argument", arg) ||
			      !sema_float_ok(s, e->args[0].value->loc, "the initialiser's argument", *arg)))
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
		nnc_hint("initialisers are: %s", sema_join_choices(init_names));
	return false;
}

static int add_param(sema *s, const char *name, int rank, const int64_t *dims, int init, double init_arg,
		     bool init_set, double fan_in, double fan_out, nnc_loc loc)
{
	ir_graph *g = s->g;
	int shared = sema_shared_param(s, rank, dims); /* a shared layer's again */
	if (shared != -2)
		return shared;
	int id = sema_add_node(s, IR_PARAM, 0, NULL, loc);
	sema_param_made(s, id);
	ir_node *n = &g->nodes[id];
	ir_set_shape(n, false, rank, dims);
	n->name = name;
	n->param = g->nparams;
	ir_param *p = ir_table_add(&g->params, &g->nparams, &g->param_floats, n, id);
	/* counted here, not by a scan of all parameters per layer */
	s->nconv_weights += !s->depth && strstr(name, "conv") == name && strstr(name, ".weight") != NULL;
	if (s->depth) /* in a block: reported at the call that made it */
		loc = s->site;
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
	if ((a = sema_find_named(call, "init"))) {
		ok &= parse_init(s, a, &o->winit, &o->warg);
		o->wset = true;
	}
	if ((a = sema_find_named(call, "bias_init"))) {
		ok &= parse_init(s, a, &o->binit, &o->barg);
		o->bset = true;
	}
	if ((a = sema_find_named(call, "bias")))
		ok &= sema_arg_bool(s, a, "'bias'", &o->has_bias);
	if ((a = sema_find_named(call, "name")))
		ok &= sema_arg_str(s, a, "a layer name", &o->name);
	return ok;
}

/* A node of op with R rows per sample (IR_IA_ROWS: a per-position
 * product) and its shape; R = 1: sema_add_shaped. */
static int add_rows_shaped(sema *s, ir_op op, int nin, const int *in, nnc_loc loc, int64_t R)
{
	if (R == 1)
		return sema_add_shaped(s, op, nin, in, loc);
	int id = sema_add_node(s, op, nin, in, loc);
	s->g->nodes[id].ia[IR_IA_ROWS] = R;
	NNC_ASSERT(ir_infer_shape(s->g, id));
	s->g->nodes[id].seq = true;
	return id;
}

static const char *const dense_opts[] = {"units", "init", "bias_init", "bias", "name", NULL};

/* dense(x, units, init: INIT, bias_init: INIT, bias: true, name: "fc1")
 * x |> dense(units, ...)
 * x any per-sample tensor (read as a vector): [n, units] */
static val eval_dense(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 2, dense_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t units = 0;
	const nnc_arg *ua = sema_positional(call, 1);
	const nnc_arg *un = sema_find_named(call, "units");
	if (ua && un) {
		nnc_error(s->src, un->name_loc, "the number of units is given twice");
		ok = false;
	} else if (!ua && !un) {
		nnc_error(s->src, call->loc, "'dense' needs the number of units, e.g. dense(128)");
		ok = false;
	} else if (!sema_arg_int_in(s, ua ? ua : un, "the number of units", 1, (double)MAX_ELEMS, &units))
		ok = false;
	weight_opts wo;
	ok &= parse_weight_opts(s, call, &wo);
	if (!ok || x.kind != V_TENSOR)
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (!xn->batched) {
		nnc_error(s->src, call->loc, "'dense' needs a per-sample value, but its input has shape %s",
			  ir_shape_str(xn));
		return sema_verr(call->loc);
	}
	wo.name = sema_layer_name(s, "dense", wo.name);
	int64_t R = xn->seq && xn->rank == 2 ? xn->dims[0] : 1; /* per position: the last axis */
	int64_t in = xn->size / R;
	int64_t wd[2] = {in, units}, bd[1] = {units};
	if (!sema_size_ok(s, call->loc, "the weight of this layer", 2, wd))
		return sema_verr(call->loc);
	int w = add_param(s, nnc_sprintf("%s.weight", wo.name), 2, wd, wo.winit, wo.warg, wo.wset, (double)in, (double)units,
			  call->loc);
	int b = wo.has_bias && w >= 0 ? add_param(s, nnc_sprintf("%s.bias", wo.name), 1, bd, wo.binit, wo.barg, wo.bset,
						  (double)in, (double)units, call->loc)
				      : -1;
	if (w < 0 || (wo.has_bias && b < 0))
		return sema_verr(call->loc);
	/* DENSE with two operands has no bias */
	int ins[3] = {x.node, w, b};
	int id = add_rows_shaped(s, op, wo.has_bias ? 3 : 2, ins, call->loc, R);
	return id < 0 ? sema_verr(call->loc) : sema_vtensor(id, call->loc);
}

/* The per-sample tensor an element-wise layer applies to. */
static val eval_unary_layer_input(sema *s, const nnc_ast *call)
{
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	if (x.kind != V_TENSOR)
		return x;
	if (!s->g->nodes[x.node].batched) {
		nnc_error(s->src, call->loc, "'%s' needs a per-sample value", call->str);
		return sema_verr(call->loc);
	}
	return x;
}

/* softmax(x) | x |> softmax: over the per-sample values */
static val eval_unary_layer(sema *s, const nnc_ast *call, ir_op op)
{
	if (!sema_check_args(s, call, 1, NULL))
		return sema_verr(call->loc);
	val x = eval_unary_layer_input(s, call);
	if (x.kind != V_TENSOR)
		return x;
	int xin = op == IR_SOFTMAX ? sema_relayout(s, x.node, LAYOUT_NC) : x.node;
	int id = sema_add_shaped(s, op, 1, &xin, call->loc);
	return id < 0 ? sema_verr(call->loc) : sema_vtensor(id, call->loc);
}

/* NAME(x) | x |> NAME | x |> NAME(option: value), NAME an activation of acts.def:
 * the option a number (at least the row's minimum) or true/false, with the
 * row's default when not given; it rides on the node in fa[IR_FA_ACT]. */
static val eval_act(sema *s, const nnc_ast *call, ir_act a)
{
	const ir_act_info *ai = ir_act_get(a);
	const char *opts[2] = {ai->opt, NULL};
	bool ok = sema_check_args(s, call, 1, opts);
	double v = ai->opt_default;
	const nnc_arg *oa = ai->opt ? sema_find_named(call, ai->opt) : NULL;
	const char *what = oa ? nnc_sprintf("'%s' of %s", ai->opt, ai->name) : NULL;
	if (oa && ai->opt_kind == ACT_OPT_BOOL) {
		bool b = false;
		ok &= sema_arg_bool(s, oa, what, &b);
		v = b;
	} else if (oa && sema_arg_num(s, oa, what, &v)) {
		if (!(v >= ai->opt_min)) {
			nnc_error(s->src, oa->value->loc, "%s must be at least %g, not %g", what, ai->opt_min, v);
			ok = false;
		} else {
			ok &= sema_float_ok(s, oa->value->loc, what, v);
		}
	} else if (oa) {
		ok = false;
	}
	if (!ok)
		return sema_verr(call->loc);
	val x = eval_unary_layer_input(s, call);
	if (x.kind != V_TENSOR)
		return x;
	int id = sema_add_shaped(s, ir_act_op(a), 1, &x.node, call->loc);
	if (id < 0)
		return sema_verr(call->loc);
	s->g->nodes[id].fa[IR_FA_ACT] = v;
	return sema_vtensor(id, call->loc);
}

/* Layout conversions the user never writes: convolution and pooling work on
 * batch-innermost (CN) tensors, losses and softmax on sample-major (NC) ones. */
int sema_relayout(sema *s, int node, ir_layout want)
{
	ir_node *n = &s->g->nodes[node];
	if (!n->batched || n->layout == want)
		return node;
	nnc_loc loc = n->loc;
	int id = sema_add_node(s, want == LAYOUT_CN ? IR_TO_CN : IR_TO_NC, 1, &node, loc);
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
		return sema_arg_int_in(s, &e->args[0], what, lo, (double)INT32_MAX, &out[0]) &&
		       sema_arg_int_in(s, &e->args[1], what, lo, (double)INT32_MAX, &out[1]);
	}
	if (e->kind == AST_NAME && !sema_lookup(s, e->str)) {
		nnc_error(s->src, e->loc, "%s must be a number or a list of two numbers [height, width], not '%s'", what,
			  e->str);
		return false;
	}
	if (!sema_arg_int_in(s, a, what, lo, (double)INT32_MAX, &out[0]))
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

/* conv2d(x, filters, kernel, stride: 1, pad: 0 | [ph, pw] | same, init:, bias_init:, bias:, name:)
 * x |> conv2d(filters, kernel, ...)
 * kernel, stride: N | [h, w]; x [n, C, H, W] -> [n, filters, H', W'] */
static val eval_conv(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 3, conv_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t filters = 0, k[2] = {0, 0}, st[2] = {1, 1}, pd[2] = {0, 0};
	const nnc_arg *a;
	const nnc_arg *fa = sema_positional(call, 1) ? sema_positional(call, 1) : sema_find_named(call, "filters");
	const nnc_arg *ka = sema_positional(call, 2) ? sema_positional(call, 2) : sema_find_named(call, "kernel");
	if (!fa || !ka) {
		nnc_error(s->src, call->loc, "'conv2d' needs the number of filters and the kernel size, e.g. conv2d(6, 5)");
		return sema_verr(call->loc);
	}
	ok &= sema_arg_int_in(s, fa, "the number of filters", 1, (double)INT32_MAX, &filters);
	ok &= pair_arg(s, ka, "the kernel size", 1, k);
	if ((a = sema_find_named(call, "stride")))
		ok &= pair_arg(s, a, "the stride", 1, st);
	bool same = false;
	if ((a = sema_find_named(call, "pad"))) {
		if (a->value->kind == AST_NAME && !strcmp(a->value->str, "same")) {
			same = true;
		} else if (a->value->kind == AST_NAME && !sema_lookup(s, a->value->str)) {
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
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	int64_t C = xn->dims[0], H = xn->dims[1], W = xn->dims[2];
	if (same) {
		if (st[0] != 1 || st[1] != 1 || k[0] % 2 == 0 || k[1] % 2 == 0) {
			nnc_error(s->src, sema_find_named(call, "pad")->value->loc,
				  "pad: same needs stride 1 and an odd kernel, but the kernel is %lldx%lld with stride %lldx%lld",
				  (long long)k[0], (long long)k[1], (long long)st[0], (long long)st[1]);
			return sema_verr(call->loc);
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
		return sema_verr(call->loc);
	}
	if (pd[0] >= k[0] || pd[1] >= k[1]) {
		nnc_error(s->src, sema_find_named(call, "pad")->value->loc, "the padding must be smaller than the kernel");
		return sema_verr(call->loc);
	}
	wo.name = sema_layer_name(s, "conv", wo.name);
	int64_t wd[4] = {filters, C, k[0], k[1]}, bd[1] = {filters};
	int64_t od[3] = {filters, (H + 2 * pd[0] - k[0]) / st[0] + 1, (W + 2 * pd[1] - k[1]) / st[1] + 1};
	if (!sema_size_ok(s, call->loc, "the weight of this layer", 4, wd) ||
	    !sema_size_ok(s, call->loc, "the output of this layer", 3, od))
		return sema_verr(call->loc);
	int xin = sema_relayout(s, x.node, LAYOUT_CN);
	double fan_in = (double)(C * k[0] * k[1]), fan_out = (double)(filters * k[0] * k[1]);
	int w = add_param(s, nnc_sprintf("%s.weight", wo.name), 4, wd, wo.winit, wo.warg, wo.wset, fan_in, fan_out, call->loc);
	int ins[3] = {xin, w, -1};
	int nin = 2;
	if (wo.has_bias && w >= 0) {
		ins[2] = add_param(s, nnc_sprintf("%s.bias", wo.name), 1, bd, wo.binit, wo.barg, wo.bset, fan_in, fan_out, call->loc);
		nin = 3;
	}
	if (w < 0 || (nin == 3 && ins[2] < 0))
		return sema_verr(call->loc);
	int id = sema_add_node(s, op, nin, ins, call->loc);
	int64_t at[6] = {k[0], k[1], st[0], st[1], pd[0], pd[1]};
	memcpy(s->g->nodes[id].ia, at, sizeof at);
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return sema_vtensor(id, call->loc);
}

static const char *const pool_opts[] = {"size", "stride", NULL};

/* maxpool(x, size, stride) | avgpool(x, size, stride) | x |> maxpool(size, ...)
 * size, stride: N | [h, w]; the stride defaults to the size */
static val eval_pool(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 3, pool_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t k[2] = {0, 0}, st[2] = {0, 0};
	const nnc_arg *ka = sema_positional(call, 1) ? sema_positional(call, 1) : sema_find_named(call, "size");
	const nnc_arg *sa = sema_positional(call, 2) ? sema_positional(call, 2) : sema_find_named(call, "stride");
	if (!ka) {
		nnc_error(s->src, call->loc, "'%s' needs the window size, e.g. %s(2)", call->str, call->str);
		return sema_verr(call->loc);
	}
	ok &= pair_arg(s, ka, "the window size", 1, k);
	if (sa)
		ok &= pair_arg(s, sa, "the stride", 1, st);
	else
		st[0] = k[0], st[1] = k[1];
	if (!ok || x.kind != V_TENSOR || !image_input(s, call, x))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (k[0] > xn->dims[1] || k[1] > xn->dims[2]) {
		nnc_error(s->src, call->loc, "%s window %lldx%lld is larger than its input %lldx%lldx%lld", call->str,
			  (long long)k[0], (long long)k[1], (long long)xn->dims[0], (long long)xn->dims[1],
			  (long long)xn->dims[2]);
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input has shape %s", ir_shape_str(xn));
		return sema_verr(call->loc);
	}
	int xin = sema_relayout(s, x.node, LAYOUT_CN);
	int id = sema_add_node(s, op, 1, &xin, call->loc);
	int64_t at[4] = {k[0], k[1], st[0], st[1]};
	memcpy(s->g->nodes[id].ia, at, sizeof at);
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return sema_vtensor(id, call->loc);
}

/* global_avgpool(x) | x |> global_avgpool: [n, C, H, W] -> [n, C] */
static val eval_gpool(sema *s, const nnc_ast *call, ir_op op)
{
	if (!sema_check_args(s, call, 1, NULL))
		return sema_verr(call->loc);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	if (x.kind != V_TENSOR || !image_input(s, call, x))
		return sema_verr(call->loc);
	int xin = sema_relayout(s, x.node, LAYOUT_CN);
	int id = sema_add_shaped(s, op, 1, &xin, call->loc);
	return id < 0 ? sema_verr(call->loc) : sema_vtensor(id, call->loc);
}

static const char *const bn_opts[] = {"momentum", "eps", "affine", "name", NULL};

/* batchnorm(x, momentum: 0.1, eps: 1e-5, affine: true, name: "bn1")
 * x |> batchnorm | x |> batchnorm(momentum: 0.01)
 * x [n, F] (after dense: per feature) or [n, C, H, W] (after conv2d or
 * pooling: per channel) -> the same shape.  Parameters NAME.weight (gamma,
 * 1) and NAME.bias (beta, 0) when affine; state NAME.running_mean (0) and
 * NAME.running_var (1).  The train step normalises with the whole batch's
 * statistics and updates the running ones (PyTorch's rule); eval and
 * inference normalise with the running ones. */
static val eval_batchnorm(sema *s, const nnc_ast *call, ir_op op)
{
	(void)op;
	bool ok = sema_check_args(s, call, 1, bn_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	double momentum = 0.1, eps = 1e-5;
	bool affine = true;
	const char *name = NULL;
	const nnc_arg *a;
	if ((a = sema_find_named(call, "momentum"))) {
		if (!sema_arg_num(s, a, "'momentum' of batchnorm", &momentum)) {
			ok = false;
		} else if (!(momentum >= 0 && momentum <= 1)) {
			nnc_error(s->src, a->value->loc, "'momentum' of batchnorm must be between 0 and 1, not %g", momentum);
			ok = false;
		}
	}
	if ((a = sema_find_named(call, "eps"))) {
		if (!sema_arg_num(s, a, "'eps' of batchnorm", &eps)) {
			ok = false;
		} else if (!(eps > 0)) {
			nnc_error(s->src, a->value->loc, "'eps' of batchnorm must be positive, not %g", eps);
			ok = false;
		} else {
			ok &= sema_float_ok(s, a->value->loc, "'eps' of batchnorm", eps);
		}
	}
	if ((a = sema_find_named(call, "affine")))
		ok &= sema_arg_bool(s, a, "'affine' of batchnorm", &affine);
	if ((a = sema_find_named(call, "name")))
		ok &= sema_arg_str(s, a, "a layer name", &name);
	if (!ok || x.kind != V_TENSOR)
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (!xn->batched || (xn->rank != 1 && xn->rank != 3)) {
		nnc_error(s->src, call->loc,
			  "'batchnorm' needs a vector of features [F] or an image [C, H, W], but its input has shape %s",
			  ir_shape_str(xn));
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input%s%s is defined here", xn->name ? " " : "", xn->name ? xn->name : "");
		return sema_verr(call->loc);
	}
	if (s->share) {
		/* its running statistics would be updated once per use, each with
		 * another input's statistics: refused rather than guessed */
		nnc_error(s->src, call->loc, "'batchnorm' cannot be a shared layer: its running statistics belong to one place");
		nnc_hint("write a batchnorm at each place (the layers before it may be shared)");
		return sema_verr(call->loc);
	}
	name = sema_layer_name(s, "batchnorm", name);
	int xin = xn->rank == 3 ? sema_relayout(s, x.node, LAYOUT_CN) : x.node;
	int64_t cd[1] = {ir_bn_channels(&s->g->nodes[xin])};
	double fan = (double)cd[0];
	int ins[4] = {xin, -1, -1, -1};
	if (affine) {
		ins[2] = add_param(s, nnc_sprintf("%s.weight", name), 1, cd, NNRT_INIT_CONSTANT, 1, true, fan, fan, call->loc);
		ins[3] = add_param(s, nnc_sprintf("%s.bias", name), 1, cd, NNRT_INIT_ZEROS, 0, true, fan, fan, call->loc);
	}
	int rm = ir_add_state(s->g, nnc_sprintf("%s.running_mean", name), 1, cd, 0);
	int rv = ir_add_state(s->g, nnc_sprintf("%s.running_var", name), 1, cd, 1);
	s->g->states[s->g->nstates - 2].loc = s->g->states[s->g->nstates - 1].loc = call->loc; /* name clashes */
	/* the batch's statistics: a partial per chunk (the train step only), merged */
	int part = sema_add_shaped(s, IR_BN_PARTIAL, 1, &xin, call->loc);
	s->g->nodes[part].entries = IR_ENTRY_TRAIN;
	int cin[3] = {part, rm, rv};
	int stats = sema_add_shaped(s, IR_BN_COMBINE, 3, cin, call->loc);
	s->g->nodes[stats].fa[0] = momentum;
	s->g->nodes[stats].fa[1] = eps;
	s->g->nodes[stats].name = name;
	ins[1] = stats;
	int id = sema_add_shaped(s, IR_BATCHNORM, affine ? 4 : 2, ins, call->loc);
	if (id < 0)
		return sema_verr(call->loc);
	s->g->nodes[id].name = name;
	return sema_vtensor(id, call->loc);
}

static int add_heads(sema *s, int x, int64_t A, int64_t B, int64_t C, int rank, const int64_t *out, nnc_loc loc);

/* flatten(x) | x |> flatten: every tensor is stored contiguously per sample, so this is free:
 * the value is the same node, and dense reads any rank as a vector. */
static val eval_flatten(sema *s, const nnc_ast *call, ir_op op)
{
	(void)op;
	if (!sema_check_args(s, call, 1, NULL))
		return sema_verr(call->loc);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	if (x.kind == V_TENSOR && !s->g->nodes[x.node].batched) {
		nnc_error(s->src, call->loc, "'flatten' needs a per-sample value");
		return sema_verr(call->loc);
	}
	if (x.kind == V_TENSOR && s->g->nodes[x.node].seq) {
		/* a sequence [T, d] becomes one vector (a copy: the node is
		 * no longer a sequence, so a dense after it reads every value) */
		int64_t size = s->g->nodes[x.node].size;
		return sema_vtensor(add_heads(s, x.node, 1, size, 1, 1, &size, call->loc), call->loc);
	}
	return x;
}

static const char *const dropout_opts[] = {"p", NULL};

/* dropout(x, p) | dropout(x, p: 0.5) | x |> dropout(0.5)
 * x any per-sample tensor, p in [0, 1) the share of values dropped: in the
 * train step each value is kept with probability 1 - p and scaled by
 * 1 / (1 - p) (inverted dropout), elsewhere it is passed on unchanged.  The
 * n-th dropout of the program draws from stream n (stable: the stream
 * picks the masks, so it must not depend on anything but the program). */
static val eval_dropout(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 2, dropout_opts);
	val x = eval_unary_layer_input(s, call);
	const nnc_arg *pa = sema_positional(call, 1), *pn = sema_find_named(call, "p");
	double p = 0;
	if (pa && pn) {
		nnc_error(s->src, pn->name_loc, "the dropout rate is given twice");
		ok = false;
	} else if (!pa && !pn) {
		if (ok) /* not after a misspelt option: that error says it */
			nnc_error(s->src, call->loc, "'dropout' needs the rate of dropped values, e.g. dropout(0.5)");
		ok = false;
	} else if (!sema_arg_num(s, pa ? pa : pn, "the dropout rate", &p)) {
		ok = false;
	} else if (!(p >= 0 && p < 1)) {
		nnc_error(s->src, (pa ? pa : pn)->value->loc, "the dropout rate must be in [0, 1), not %g", p);
		ok = false;
	}
	if (!ok || x.kind != V_TENSOR)
		return sema_verr(call->loc);
	if (p == 0)
		return x; /* drops nothing: no node */
	int id = sema_add_shaped(s, op, 1, &x.node, call->loc);
	if (id < 0)
		return sema_verr(call->loc);
	s->g->nodes[id].fa[0] = p;
	s->g->nodes[id].ia[0] = ++s->ndropout;
	return sema_vtensor(id, call->loc);
}

/* How a concat's diagnostics name operand k: the name written, or its place. */
static const char *concat_operand(const nnc_ast *call, int k)
{
	const nnc_ast *e = sema_positional(call, k)->value;
	return e->kind == AST_NAME ? nnc_sprintf("'%s'", e->str) : nnc_sprintf("operand %d", k + 1);
}

/* concat(a, b, ...) | a |> concat(b, ...)
 * Two or more per-sample tensors joined along their first axis: vectors
 * [n, ka], [n, kb] -> [n, ka + kb] (features, sample-major), or images
 * [n, Ca, H, W], [n, Cb, H, W] -> [n, Ca + Cb, H, W] (channels,
 * batch-innermost).  More operands than a node holds become a chain. */
static val eval_concat(sema *s, const nnc_ast *call, ir_op op)
{
	int npos = 0;
	while (sema_positional(call, npos))
		npos++;
	if (!sema_check_args(s, call, npos, NULL))
		return sema_verr(call->loc);
	if (npos < 2) {
		nnc_error(s->src, call->loc, "'concat' needs at least two tensors to join, e.g. concat(a, b)");
		return sema_verr(call->loc);
	}
	int *ins = nnc_alloc(sizeof(int) * (size_t)npos);
	bool ok = true;
	for (int k = 0; k < npos; k++) {
		val v = sema_tensor_arg(s, call, k, "tensors to join");
		ins[k] = v.kind == V_TENSOR ? v.node : -1;
		ok &= v.kind == V_TENSOR;
	}
	if (!ok)
		return sema_verr(call->loc);
	ir_node *a = &s->g->nodes[ins[0]];
	int64_t total = 0;
	for (int k = 0; k < npos; k++) {
		ir_node *b = &s->g->nodes[ins[k]];
		nnc_loc at = sema_positional(call, k)->value->loc;
		if (!b->batched || (b->rank != 1 && b->rank != 3)) {
			nnc_error(s->src, at, "'concat' joins vectors [n, k] or images [n, C, H, W], but %s has shape %s",
				  concat_operand(call, k), ir_shape_str(b));
			return sema_verr(call->loc);
		}
		if (b->rank != a->rank) {
			nnc_error(s->src, at, "'concat' needs operands of the same rank, but %s has shape %s and %s has shape %s",
				  concat_operand(call, 0), ir_shape_str(a), concat_operand(call, k), ir_shape_str(b));
			return sema_verr(call->loc);
		}
		if (b->rank == 3 && (b->dims[1] != a->dims[1] || b->dims[2] != a->dims[2])) {
			nnc_error(s->src, at,
				  "'concat' joins images along channels, so their height and width must agree, but %s has shape %s and %s has shape %s",
				  concat_operand(call, 0), ir_shape_str(a), concat_operand(call, k), ir_shape_str(b));
			return sema_verr(call->loc);
		}
		total += b->dims[0];
	}
	int64_t d[3] = {total, a->dims[1], a->dims[2]};
	if (!sema_size_ok(s, call->loc, "the result of this concat", a->rank, d))
		return sema_verr(call->loc);
	ir_layout want = a->rank == 3 ? LAYOUT_CN : LAYOUT_NC;
	for (int k = 0; k < npos; k++)
		ins[k] = sema_relayout(s, ins[k], want);
	/* a node takes CONCAT_IN operands: the first ones, then the result and
	 * the next ones, and so on */
	enum { CONCAT_IN = 4 };
	int id = -1;
	for (int k = 0; k < npos;) {
		int part[CONCAT_IN], m = 0;
		if (id >= 0)
			part[m++] = id;
		while (m < CONCAT_IN && k < npos)
			part[m++] = ins[k++];
		id = sema_add_shaped(s, op, m, part, call->loc);
		if (id < 0)
			return sema_verr(call->loc);
	}
	return sema_vtensor(id, call->loc);
}

/* ---- sequences (docs/language.md "Sequences") ---- */

/* The [T, d] value a sequence layer reads, or an error naming the layer. */
static bool seq_input(sema *s, const nnc_ast *call, val x, int rank, const char *shape)
{
	ir_node *xn = &s->g->nodes[x.node];
	if (!xn->batched || (rank && xn->rank != rank) || xn->layout != LAYOUT_NC) {
		nnc_error(s->src, call->loc, "'%s' needs a per-sample value of shape %s, but its input has shape %s", call->str,
			  shape, ir_shape_str(xn));
		if (xn->loc.line > 0)
			nnc_note(s->src, xn->loc, "the input%s%s is defined here", xn->name ? " " : "", xn->name ? xn->name : "");
		return false;
	}
	return true;
}

/* A number option >= lo (named), its default kept when absent. */
static bool num_opt(sema *s, const nnc_ast *call, const char *name, double lo, double *v)
{
	const nnc_arg *a = sema_find_named(call, name);
	if (!a)
		return true;
	const char *what = nnc_sprintf("'%s' of %s", name, call->str);
	if (!sema_arg_num(s, a, what, v) || !sema_float_ok(s, a->value->loc, what, *v))
		return false;
	if (!(*v > lo)) {
		nnc_error(s->src, a->value->loc, "%s must be greater than %g, not %g", what, lo, *v);
		return false;
	}
	return true;
}

static bool bool_opt(sema *s, const nnc_ast *call, const char *name, bool *v)
{
	const nnc_arg *a = sema_find_named(call, name);
	return !a || sema_arg_bool(s, a, nnc_sprintf("'%s' of %s", name, call->str), v);
}

/* An integer given by position k or by name, required. */
static bool int_arg(sema *s, const nnc_ast *call, int k, const char *name, const char *what, int64_t lo, int64_t *v)
{
	const nnc_arg *pa = k >= 0 ? sema_positional(call, k) : NULL, *na = sema_find_named(call, name);
	if (pa && na) {
		nnc_error(s->src, na->name_loc, "%s is given twice", what);
		return false;
	}
	if (!pa && !na) {
		nnc_error(s->src, call->loc, "'%s' needs %s, e.g. %s", call->str, what,
			  !strcmp(call->str, "embedding") ? "embedding(256, 64)" : nnc_sprintf("%s(%s: 4)", call->str, name));
		return false;
	}
	return sema_arg_int_in(s, pa ? pa : na, what, (double)lo, (double)MAX_ELEMS, v);
}

static const char *const embed_opts[] = {"vocab", "dim", "init", "name", NULL};

/* embedding(x, V, d, init: normal(1), name: "tok")
 * x |> embedding(V, d): x the token(V')[T] input (V' <= V) -> [T, d]; the
 * table NAME.weight [V, d] */
static val eval_embedding(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 3, embed_opts);
	val x = sema_tensor_arg(s, call, 0, "token ids");
	int64_t V = 0, d = 0;
	ok = ok && int_arg(s, call, 1, "vocab", "the vocabulary size", 1, &V) && int_arg(s, call, 2, "dim", "the embedding size", 1, &d);
	weight_opts wo;
	ok &= parse_weight_opts(s, call, &wo);
	if (!ok || x.kind != V_TENSOR)
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (x.node != s->g->input || !s->g->input_vocab) {
		nnc_error(s->src, call->loc, "'embedding' reads token ids: the input declared as token(V)[T], but its input has shape %s",
			  ir_shape_str(xn));
		nnc_hint("declare the input as, e.g., input x : token(%lld)[64]", (long long)V);
		return sema_verr(call->loc);
	}
	if (s->g->input_vocab > V) {
		const nnc_arg *va = sema_positional(call, 1) ? sema_positional(call, 1) : sema_find_named(call, "vocab");
		nnc_error(s->src, va->value->loc, "the input's vocabulary has %lld tokens, more than this embedding's %lld",
			  (long long)s->g->input_vocab, (long long)V);
		nnc_note(s->src, xn->loc, "'%s' is declared here", xn->name);
		return sema_verr(call->loc);
	}
	const char *name = sema_layer_name(s, "embedding", wo.name);
	int64_t wd[2] = {V, d};
	if (!sema_size_ok(s, call->loc, "the table of this embedding", 2, wd))
		return sema_verr(call->loc);
	int w = add_param(s, nnc_sprintf("%s.weight", name), 2, wd, wo.wset ? wo.winit : NNRT_INIT_NORMAL,
			  wo.wset ? wo.warg : 1.0, true, (double)V, (double)d, call->loc);
	if (w < 0)
		return sema_verr(call->loc);
	int ins[2] = {x.node, w};
	int id = sema_add_shaped(s, op, 2, ins, call->loc);
	return id < 0 ? sema_verr(call->loc) : sema_vtensor(id, call->loc);
}

static const char *const pos_opts[] = {"init", "name", NULL};

/* positional(x, init: normal(1), name: "pos") | x |> positional
 * x [T, d] -> x + P, P = NAME.weight [T, d]: a learned vector per position */
static val eval_positional(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 1, pos_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	weight_opts wo;
	ok &= parse_weight_opts(s, call, &wo);
	if (!ok || x.kind != V_TENSOR || !seq_input(s, call, x, 2, "[T, d]"))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	const char *name = sema_layer_name(s, "positional", wo.name);
	int w = add_param(s, nnc_sprintf("%s.weight", name), 2, xn->dims, wo.wset ? wo.winit : NNRT_INIT_NORMAL,
			  wo.wset ? wo.warg : 1.0, true, (double)xn->dims[0], (double)xn->dims[1], call->loc);
	if (w < 0)
		return sema_verr(call->loc);
	int ins[2] = {x.node, w};
	int id = sema_add_shaped(s, op, 2, ins, call->loc);
	if (id >= 0)
		s->g->nodes[id].seq = xn->seq;
	return id < 0 ? sema_verr(call->loc) : sema_vtensor(id, call->loc);
}

static const char *const ln_opts[] = {"eps", "name", NULL};

/* layernorm(x, eps: 1e-5, name: "ln1") | x |> layernorm | x |> rmsnorm
 * x [..., d] -> the same shape, each row of the last axis normalised;
 * NAME.weight [d] (1) and, for layernorm, NAME.bias [d] (0) */
static val eval_layernorm(sema *s, const nnc_ast *call, ir_op op)
{
	bool rms = !strcmp(call->str, "rmsnorm");
	bool ok = sema_check_args(s, call, 1, ln_opts);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	double eps = 1e-5;
	const char *name = NULL;
	const nnc_arg *a;
	ok &= num_opt(s, call, "eps", 0, &eps);
	if ((a = sema_find_named(call, "name")))
		ok &= sema_arg_str(s, a, "a layer name", &name);
	if (!ok || x.kind != V_TENSOR || !seq_input(s, call, x, 0, "[..., d]"))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	int64_t d[1] = {xn->dims[xn->rank - 1]};
	name = sema_layer_name(s, call->str, name);
	int ins[3] = {x.node, -1, -1};
	ins[1] = add_param(s, nnc_sprintf("%s.weight", name), 1, d, NNRT_INIT_CONSTANT, 1, true, (double)d[0], (double)d[0], call->loc);
	if (!rms)
		ins[2] = add_param(s, nnc_sprintf("%s.bias", name), 1, d, NNRT_INIT_ZEROS, 0, true, (double)d[0], (double)d[0], call->loc);
	if (ins[1] < 0 || (!rms && ins[2] < 0))
		return sema_verr(call->loc);
	int id = sema_add_shaped(s, op, rms ? 2 : 3, ins, call->loc);
	if (id < 0)
		return sema_verr(call->loc);
	s->g->nodes[id].ia[0] = rms;
	s->g->nodes[id].fa[0] = eps;
	s->g->nodes[id].name = name;
	return sema_vtensor(id, call->loc);
}

static const char *const matmul_opts[] = {"transpose_a", "transpose_b", "scale", NULL};

/* matmul(a, b, transpose_a: false, transpose_b: false, scale: 1) | a |> matmul(b)
 * a [..., M, K], b [..., K, N] per sample, the same leading axes -> [..., M, N] */
static val eval_matmul(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 2, matmul_opts), ta = false, tb = false;
	val a = sema_tensor_arg(s, call, 0, "a tensor");
	val b = sema_positional(call, 1) ? sema_tensor_arg(s, call, 1, "a tensor") : (val){.kind = V_ERROR};
	if (!sema_positional(call, 1) && ok) {
		nnc_error(s->src, call->loc, "'matmul' needs two tensors, e.g. matmul(q, k, transpose_b: true)");
		ok = false;
	}
	double scale = 1;
	const nnc_arg *sa = sema_find_named(call, "scale");
	ok &= bool_opt(s, call, "transpose_a", &ta) && bool_opt(s, call, "transpose_b", &tb);
	if (sa)
		ok &= sema_arg_num(s, sa, "'scale' of matmul", &scale) && sema_float_ok(s, sa->value->loc, "'scale' of matmul", scale);
	if (!ok || a.kind != V_TENSOR || b.kind != V_TENSOR)
		return sema_verr(call->loc);
	int ins[2] = {sema_relayout(s, a.node, LAYOUT_NC), sema_relayout(s, b.node, LAYOUT_NC)};
	int id = sema_add_node(s, op, 2, ins, call->loc);
	s->g->nodes[id].ia[0] = ta;
	s->g->nodes[id].ia[1] = tb;
	s->g->nodes[id].fa[0] = scale;
	if (!ir_infer_shape(s->g, id)) {
		s->g->nodes[id].dead = true;
		return sema_verr(call->loc);
	}
	ir_node *r = &s->g->nodes[id], *an = &s->g->nodes[ins[0]];
	r->seq = an->seq && r->dims[0] == an->dims[0]; /* [T, ...] . [...] keeps the positions */
	return sema_vtensor(id, call->loc);
}

/* The HEADS node turning x viewed [A, B, C] into [B, A, C], of shape out */
static int add_heads(sema *s, int x, int64_t A, int64_t B, int64_t C, int rank, const int64_t *out, nnc_loc loc)
{
	int id = sema_add_node(s, IR_HEADS, 1, &x, loc);
	ir_node *n = &s->g->nodes[id];
	n->ia[0] = A, n->ia[1] = B, n->ia[2] = C, n->ia[3] = rank;
	for (int k = 0; k < rank; k++)
		n->ia[4 + k] = out[k];
	NNC_ASSERT(ir_infer_shape(s->g, id));
	return id;
}

static const char *const heads_opts[] = {"heads", NULL};

/* split_heads(x, h) | x |> split_heads(h): [T, h k] -> [h, T, k]
 * merge_heads(x) | x |> merge_heads: [h, T, k] -> [T, h k] */
static val eval_heads(sema *s, const nnc_ast *call, ir_op op)
{
	(void)op;
	bool split = !strcmp(call->str, "split_heads");
	bool ok = sema_check_args(s, call, split ? 2 : 1, split ? heads_opts : NULL);
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t h = 0;
	if (split)
		ok = ok && int_arg(s, call, 1, "heads", "the number of heads", 1, &h);
	if (!ok || x.kind != V_TENSOR || !seq_input(s, call, x, split ? 2 : 3, split ? "[T, d]" : "[heads, T, k]"))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	if (split) {
		int64_t T = xn->dims[0], D = xn->dims[1];
		if (D % h) {
			nnc_error(s->src, call->loc, "%lld features do not split into %lld heads: %lld is not a multiple of %lld",
				  (long long)D, (long long)h, (long long)D, (long long)h);
			return sema_verr(call->loc);
		}
		int64_t out[3] = {h, T, D / h};
		return sema_vtensor(add_heads(s, x.node, T, h, D / h, 3, out, call->loc), call->loc);
	}
	int64_t H = xn->dims[0], T = xn->dims[1], k = xn->dims[2], out[2] = {T, H * k};
	int id = add_heads(s, x.node, H, T, k, 2, out, call->loc);
	s->g->nodes[id].seq = true;
	return sema_vtensor(id, call->loc);
}

/* A softmax over the last axis, causal or not (softmax(x, axis: last, causal:)) */
static int add_softmax_last(sema *s, int x, bool causal, nnc_loc loc)
{
	int id = sema_add_shaped(s, IR_SOFTMAX_LAST, 1, &x, loc);
	s->g->nodes[id].ia[0] = causal;
	return id;
}

static const char *const softmax_opts[] = {"axis", "causal", NULL};

/* softmax(x) | x |> softmax: over all the sample's values
 * softmax(x, axis: last, causal: false): over each row of the last axis; a
 * causal mask keeps the entries j <= i of each square [L, L] matrix */
static val eval_softmax(sema *s, const nnc_ast *call, ir_op op)
{
	if (!sema_find_named(call, "axis") && !sema_find_named(call, "causal"))
		return eval_unary_layer(s, call, op);
	bool ok = sema_check_args(s, call, 1, softmax_opts), causal = false;
	const nnc_arg *a = sema_find_named(call, "axis");
	if (a && (a->value->kind != AST_NAME || strcmp(a->value->str, "last"))) {
		nnc_error(s->src, a->value->loc, "softmax's axis is 'last' (the default is every value of the sample)");
		ok = false;
	}
	ok &= bool_opt(s, call, "causal", &causal);
	val x = eval_unary_layer_input(s, call);
	if (!ok || x.kind != V_TENSOR)
		return sema_verr(call->loc);
	int xin = sema_relayout(s, x.node, LAYOUT_NC);
	ir_node *xn = &s->g->nodes[xin];
	if (causal && (xn->rank < 2 || xn->dims[xn->rank - 1] != xn->dims[xn->rank - 2])) {
		nnc_error(s->src, sema_find_named(call, "causal")->value->loc,
			  "a causal mask needs square matrices of scores [..., L, L], but the input has shape %s",
			  ir_shape_str(xn));
		return sema_verr(call->loc);
	}
	return sema_vtensor(add_softmax_last(s, xin, causal, call->loc), call->loc);
}

/* A per-position dense layer NAME.weight [d, units], NAME.bias [units] of x [T, d] */
static int seq_dense(sema *s, int x, int64_t units, const char *name, nnc_loc loc)
{
	ir_node *xn = &s->g->nodes[x];
	int64_t d = xn->dims[1], T = xn->dims[0], wd[2] = {d, units}, bd[1] = {units};
	int w = add_param(s, nnc_sprintf("%s.weight", name), 2, wd, NNRT_INIT_GLOROT_UNIFORM, 0, false, (double)d,
			  (double)units, loc);
	int b = w < 0 ? -1 : add_param(s, nnc_sprintf("%s.bias", name), 1, bd, NNRT_INIT_ZEROS, 0, false, (double)d, (double)units, loc);
	if (w < 0 || b < 0)
		return -1;
	int ins[3] = {x, w, b};
	return add_rows_shaped(s, IR_DENSE, 3, ins, loc, T);
}

static const char *const attn_opts[] = {"heads", "causal", "name", NULL};

/* attention(x, heads: h, causal: false, name: "attn") | x |> attention(heads: 4)
 * x [T, d] -> [T, d]: multi-head scaled dot-product self-attention,
 *   q, k, v = x W_q, x W_k, x W_v (per position, split into h heads),
 *   y = merge(softmax(q k^T / sqrt(d / h), causal) v) W_out;
 * NAME.q, NAME.k, NAME.v, NAME.out: dense layers [d, d] with biases */
static val eval_attention(sema *s, const nnc_ast *call, ir_op op)
{
	(void)op;
	bool ok = sema_check_args(s, call, 1, attn_opts), causal = false;
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t h = 0;
	const char *name = NULL;
	const nnc_arg *a;
	ok = ok && int_arg(s, call, -1, "heads", "the number of heads", 1, &h);
	ok = ok && bool_opt(s, call, "causal", &causal);
	if ((a = sema_find_named(call, "name")))
		ok &= sema_arg_str(s, a, "a layer name", &name);
	if (!ok || x.kind != V_TENSOR || !seq_input(s, call, x, 2, "[T, d]"))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	int64_t T = xn->dims[0], d = xn->dims[1];
	if (d % h) {
		nnc_error(s->src, sema_find_named(call, "heads")->value->loc,
			  "%lld features do not split into %lld heads: %lld is not a multiple of %lld", (long long)d, (long long)h,
			  (long long)d, (long long)h);
		return sema_verr(call->loc);
	}
	s->g->nodes[x.node].seq = true;
	name = sema_layer_name(s, "attention", name);
	nnc_loc loc = call->loc;
	int64_t k = d / h, split[3] = {h, T, k}, merged[2] = {T, d};
	int qkv[3];
	static const char *const part[3] = {"q", "k", "v"};
	for (int i = 0; i < 3; i++) {
		int p = seq_dense(s, x.node, d, nnc_sprintf("%s.%s", name, part[i]), loc);
		if (p < 0)
			return sema_verr(loc);
		qkv[i] = add_heads(s, p, T, h, k, 3, split, loc);
	}
	int sc = sema_add_node(s, IR_MATMUL, 2, qkv, loc); /* q k^T / sqrt(k): [h, T, T] */
	s->g->nodes[sc].ia[1] = 1;
	s->g->nodes[sc].fa[0] = 1 / sqrt((double)k);
	NNC_ASSERT(ir_infer_shape(s->g, sc));
	int pr = add_softmax_last(s, sc, causal, loc);
	int pv[2] = {pr, qkv[2]};
	int ctx = sema_add_node(s, IR_MATMUL, 2, pv, loc); /* [h, T, k] */
	s->g->nodes[ctx].fa[0] = 1;
	NNC_ASSERT(ir_infer_shape(s->g, ctx));
	int m = add_heads(s, ctx, h, T, k, 2, merged, loc);
	s->g->nodes[m].seq = true;
	int y = seq_dense(s, m, d, nnc_sprintf("%s.out", name), loc);
	return y < 0 ? sema_verr(loc) : sema_vtensor(y, loc);
}

static const char *const rnn_opts[] = {"units", "sequences", "name", NULL};

/* lstm(x, units, sequences: true, name: "enc") | x |> lstm(128) | x |> gru(64)
 * x [T, d] -> the states [T, units] (sequences: true) or the last state
 * [units] (sequences: false), torch.nn.LSTM / torch.nn.GRU from a zero
 * state.  Parameters (G = 4 gates i f g o for lstm, 3 gates r z n for gru),
 * each U(-1/sqrt(units), 1/sqrt(units)) as in PyTorch:
 *   NAME.weight_ih [d, G units]      (torch's weight_ih_l0 transposed)
 *   NAME.weight_hh [units, G units]  (torch's weight_hh_l0 transposed)
 *   NAME.bias_ih, NAME.bias_hh [G units]
 * Nodes: the input projection of every step as one per-position DENSE
 * (x W_ih + b_ih), W_hh packed in panels (RNN_PACK), the recurrence (LSTM
 * or GRU: the saved rows), and the states taken from them (RNN_OUT);
 * autodiff.c's grad_rnn_out is the backward pass. */
static val eval_rnn(sema *s, const nnc_ast *call, ir_op op)
{
	bool ok = sema_check_args(s, call, 2, rnn_opts), seqs = true;
	val x = sema_tensor_arg(s, call, 0, "an input tensor");
	int64_t H = 0;
	const char *name = NULL;
	const nnc_arg *a;
	ok = ok && int_arg(s, call, 1, "units", "the number of units", 1, &H);
	ok = ok && bool_opt(s, call, "sequences", &seqs);
	if ((a = sema_find_named(call, "name")))
		ok &= sema_arg_str(s, a, "a layer name", &name);
	if (!ok || x.kind != V_TENSOR || !seq_input(s, call, x, 2, "[T, d] (T steps of d features)"))
		return sema_verr(call->loc);
	ir_node *xn = &s->g->nodes[x.node];
	int64_t T = xn->dims[0], d = xn->dims[1], G = op == IR_LSTM ? 4 : 3;
	name = sema_layer_name(s, call->str, name);
	int64_t wi[2] = {d, G * H}, wh[2] = {H, G * H}, bd[1] = {G * H}, saved[2] = {T, ir_rnn_row(op) * H};
	if (!sema_size_ok(s, call->loc, nnc_sprintf("the input weight of this %s", call->str), 2, wi) ||
	    !sema_size_ok(s, call->loc, nnc_sprintf("the recurrent weight of this %s", call->str), 2, wh) ||
	    !sema_size_ok(s, call->loc, nnc_sprintf("what this %s keeps per sample", call->str), 2, saved))
		return sema_verr(call->loc);
	double bound = 1 / sqrt((double)H);
	int p[4];
	static const char *const pname[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
	for (int k = 0; k < 4; k++) {
		p[k] = add_param(s, nnc_sprintf("%s.%s", name, pname[k]), k < 2 ? 2 : 1, k == 0 ? wi : k == 1 ? wh : bd,
				 NNRT_INIT_UNIFORM, bound, true, (double)(k == 0 ? d : H), (double)(G * H), call->loc);
		if (p[k] < 0)
			return sema_verr(call->loc);
	}
	int din[3] = {x.node, p[0], p[2]};
	int xp = add_rows_shaped(s, IR_DENSE, 3, din, call->loc, T);
	int pk = sema_add_node(s, IR_RNN_PACK, 1, &p[1], call->loc); /* W_hh in panels of 16 columns */
	NNC_ASSERT(ir_infer_shape(s->g, pk));
	int rin[3] = {xp, pk, p[3]};
	int sv = sema_add_node(s, op, 3, rin, call->loc);
	NNC_ASSERT(ir_infer_shape(s->g, sv));
	s->g->nodes[sv].name = name;
	int y = sema_add_node(s, IR_RNN_OUT, 1, &sv, call->loc);
	s->g->nodes[y].ia[0] = !seqs;
	s->g->nodes[y].ia[1] = H;
	NNC_ASSERT(ir_infer_shape(s->g, y));
	return sema_vtensor(y, call->loc);
}

/* Every layer name (the table below and acts.def), for suggestions. */
const char *const sema_builtin_layers[] = {"dense", "conv2d", "maxpool", "avgpool", "global_avgpool", "flatten",
					     "batchnorm",
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) name,
#include "acts.def"
#undef ACT
					     "softmax", "dropout", "concat", "embedding", "positional", "layernorm", "rmsnorm",
					     "matmul", "split_heads", "merge_heads", "attention", "lstm", "gru", NULL};

/* A layer builder checks one call of its layer and appends its nodes; op is
 * its table row's (the one builder of several layers tells them apart by it). */
typedef val layer_builder(sema *s, const nnc_ast *call, ir_op op);

/* The layers that are not activations (those come from acts.def). */
static const struct {
	const char *name;
	layer_builder *build;
	ir_op op;
} layers[] = {
	{"dense", eval_dense, IR_DENSE},
	{"conv2d", eval_conv, IR_CONV2D},
	{"maxpool", eval_pool, IR_MAXPOOL},
	{"avgpool", eval_pool, IR_AVGPOOL},
	{"global_avgpool", eval_gpool, IR_GAVGPOOL},
	{"batchnorm", eval_batchnorm, IR_BATCHNORM},
	{"flatten", eval_flatten, IR_NUM_OPS},
	{"softmax", eval_softmax, IR_SOFTMAX},
	{"dropout", eval_dropout, IR_DROPOUT},
	{"concat", eval_concat, IR_CONCAT},
	{"embedding", eval_embedding, IR_EMBED},
	{"positional", eval_positional, IR_BIAS_ADD},
	{"layernorm", eval_layernorm, IR_LAYERNORM},
	{"rmsnorm", eval_layernorm, IR_LAYERNORM},
	{"matmul", eval_matmul, IR_MATMUL},
	{"split_heads", eval_heads, IR_HEADS},
	{"merge_heads", eval_heads, IR_HEADS},
	{"attention", eval_attention, IR_MATMUL},
	{"lstm", eval_rnn, IR_LSTM},
	{"gru", eval_rnn, IR_GRU},
};
_Static_assert(sizeof layers / sizeof layers[0] + IR_NUM_ACTS == sizeof sema_builtin_layers / sizeof sema_builtin_layers[0],
	       "every layer of the table is in sema_builtin_layers");

/* NAME(args) | x |> NAME(args) | x |> NAME: a layer, an activation, or a
 * misplaced loss, optimizer or data source (reported as such). */
val sema_eval_call(sema *s, const nnc_ast *call)
{
	val user;
	if (sema_eval_user_call(s, &call, &user)) /* a block or a shared layer */
		return user;
	const char *f = call->str;
	for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
		if (!strcmp(f, layers[i].name))
			return layers[i].build(s, call, layers[i].op);
	for (ir_act a = ACT_NONE + 1; a < IR_NUM_ACTS; a++)
		if (!strcmp(f, ir_act_get(a)->name))
			return eval_act(s, call, a);
	for (int i = 0; sema_loss_names[i]; i++)
		if (!strcmp(f, sema_loss_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is a loss; use it in a 'loss' statement", f);
			return sema_verr(call->loc);
		}
	for (int i = 0; sema_opt_names[i]; i++)
		if (!strcmp(f, sema_opt_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is an optimizer; use it in an 'optimizer' statement", f);
			return sema_verr(call->loc);
		}
	for (int i = 0; sema_data_names[i]; i++)
		if (!strcmp(f, sema_data_names[i])) {
			nnc_error(s->src, call->callee_loc, "'%s' is a data source; use it in the 'train' block", f);
			return sema_verr(call->loc);
		}
	nnc_error(s->src, call->callee_loc, "unknown layer or function '%s'", f);
	const char *best = nnc_suggest(f, sema_builtin_layers);
	if (best)
		nnc_hint("did you mean '%s'?", best);
	else
		nnc_hint("layers and activations are: %s", sema_join_choices(sema_builtin_layers));
	return sema_verr(call->loc);
}
