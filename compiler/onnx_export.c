/*
 * onnx_export.c - sema's forward graph as an ONNX inference graph
 * (docs/onnx.md has the op table and the reasons).
 *
 * What inference computes, and nothing else: the forward nodes the output
 * depends on in eval mode (a batchnorm with its running statistics, dropout
 * the identity), then the inference tail (the softmax of the logits with
 * softmax_cross_entropy, unless the program says `output`).  Layouts are
 * nnc's business: ONNX sees every image as NCHW, which is what nnc's
 * shapes mean, so the relayout nodes vanish.
 *
 * Batch normalisation stays a BatchNormalization node rather than being
 * folded into the convolution before it: the file then holds the running
 * statistics themselves (so an import gives back a trainable batchnorm,
 * and the payloads are plain copies of nnc's tensors), and consumers fold
 * it themselves (onnxruntime does at session creation).
 *
 * The ModelProto is built with protoc-c's bindings and packed once; then
 * the wire format is walked to find where each parameter's raw_data
 * payload landed, and those bytes are cut out (nnc_onnx_piece), so that
 * the runtime writes a file by copying bytes and floats in order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <onnx.pb-c.h>

#include "diag.h"
#include "onnx.h"

typedef struct exporter {
	const ir_graph *g;
	Onnx__GraphProto *graph;
	const char **val;        /* ONNX value name of each IR node, or NULL */
	int nnames;              /* names handed out, for uniqueness */
	const char **names;
	int64_t *param_from;     /* per initializer: NNRT_ONNX_PARAMS/STATE, or -1 (a constant) */
	int64_t *param_off;
	const nnc_onnx_piece **parts; /* per initializer: its pieces in another layout (nparts), or NULL */
	int *nparts;
	int cap_nodes, cap_init;
	int ntmp;
	const char *error;
} exporter;

/* ---- Building blocks ---- */

static bool name_taken(exporter *e, const char *s)
{
	for (int i = 0; i < e->nnames; i++)
		if (!strcmp(e->names[i], s))
			return true;
	return false;
}

/* A value or node name not used yet: `base`, else base_2, base_3, ... */
static const char *unique(exporter *e, const char *base)
{
	const char *s = base;
	for (int k = 2; name_taken(e, s); k++)
		s = nnc_sprintf("%s_%d", base, k);
	e->names = nnc_realloc_array(e->names, (size_t)e->nnames, (size_t)e->nnames + 1, sizeof *e->names);
	e->names[e->nnames++] = s;
	return s;
}

static Onnx__NodeProto *node(exporter *e, const char *op, const char *name, int nin, const char *const *in,
			     const char *out)
{
	Onnx__NodeProto *n = nnc_alloc(sizeof *n);
	onnx__node_proto__init(n);
	n->op_type = (char *)op;
	n->name = (char *)unique(e, name);
	n->n_input = (size_t)nin;
	n->input = nnc_alloc(sizeof(char *) * (size_t)(nin ? nin : 1));
	for (int i = 0; i < nin; i++)
		n->input[i] = (char *)in[i];
	n->n_output = 1;
	n->output = nnc_alloc(sizeof(char *));
	n->output[0] = (char *)out;
	Onnx__GraphProto *g = e->graph;
	if ((int)g->n_node == e->cap_nodes) {
		int cap = e->cap_nodes ? 2 * e->cap_nodes : 32;
		g->node = nnc_realloc_array(g->node, (size_t)e->cap_nodes, (size_t)cap, sizeof *g->node);
		e->cap_nodes = cap;
	}
	g->node[g->n_node++] = n;
	return n;
}

static Onnx__AttributeProto *attr(Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType t)
{
	Onnx__AttributeProto *a = nnc_alloc(sizeof *a);
	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	a->has_type = 1;
	a->type = t;
	n->attribute = nnc_realloc_array(n->attribute, n->n_attribute, n->n_attribute + 1, sizeof *n->attribute);
	n->attribute[n->n_attribute++] = a;
	return a;
}

static void attr_i(Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = v;
}

static void attr_f(Onnx__NodeProto *n, const char *name, double v)
{
	Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = (float)v;
}

static void attr_ints(Onnx__NodeProto *n, const char *name, int k, const int64_t *v)
{
	Onnx__AttributeProto *a = attr(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->n_ints = (size_t)k;
	a->ints = nnc_alloc(sizeof(int64_t) * (size_t)k);
	memcpy(a->ints, v, sizeof(int64_t) * (size_t)k);
}

/* An initializer: a parameter or state tensor (from >= 0: its payload is
 * the runtime's to fill) or a constant of nnc's own (data). */
static const char *initializer(exporter *e, const char *name, int rank, const int64_t *dims, int type,
			       int64_t from, int64_t offset, const void *data, size_t bytes)
{
	Onnx__TensorProto *t = nnc_alloc(sizeof *t);
	onnx__tensor_proto__init(t);
	t->name = (char *)unique(e, name);
	t->n_dims = (size_t)rank;
	t->dims = nnc_alloc(sizeof(int64_t) * (size_t)(rank ? rank : 1));
	memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
	t->has_data_type = 1;
	t->data_type = type;
	t->has_raw_data = 1;
	t->raw_data.len = bytes;
	t->raw_data.data = nnc_alloc(bytes ? bytes : 1);
	if (data)
		memcpy(t->raw_data.data, data, bytes);
	Onnx__GraphProto *g = e->graph;
	if ((int)g->n_initializer == e->cap_init) {
		int cap = e->cap_init ? 2 * e->cap_init : 32;
		g->initializer = nnc_realloc_array(g->initializer, (size_t)e->cap_init, (size_t)cap, sizeof *g->initializer);
		e->param_from = nnc_realloc_array(e->param_from, (size_t)e->cap_init, (size_t)cap, sizeof(int64_t));
		e->param_off = nnc_realloc_array(e->param_off, (size_t)e->cap_init, (size_t)cap, sizeof(int64_t));
		e->parts = nnc_realloc_array(e->parts, (size_t)e->cap_init, (size_t)cap, sizeof *e->parts);
		e->nparts = nnc_realloc_array(e->nparts, (size_t)e->cap_init, (size_t)cap, sizeof(int));
		e->cap_init = cap;
	}
	e->param_from[g->n_initializer] = from;
	e->param_off[g->n_initializer] = offset;
	e->parts[g->n_initializer] = NULL;
	e->nparts[g->n_initializer] = 0;
	g->initializer[g->n_initializer++] = t;
	return t->name;
}

/* A float initializer made of parameters in another layout than nnc's:
 * the pieces (their at left to cut()) fill it one after the other. */
static const char *initializer_parts(exporter *e, const char *name, int rank, const int64_t *dims, int nparts,
				     const nnc_onnx_piece *parts)
{
	int64_t count = 0;
	for (int i = 0; i < nparts; i++)
		count += parts[i].count;
	const char *s = initializer(e, name, rank, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, NNRT_ONNX_PARAMS, 0,
				    NULL, sizeof(float) * (size_t)count);
	size_t i = e->graph->n_initializer - 1;
	nnc_onnx_piece *copy = nnc_alloc(sizeof *copy * (size_t)nparts);
	memcpy(copy, parts, sizeof *copy * (size_t)nparts);
	e->parts[i] = copy;
	e->nparts[i] = nparts;
	return s;
}

/* A float constant: a scalar (rank 0) or a vector of one value. */
static const char *constant(exporter *e, const char *name, int64_t count, float v)
{
	float *x = nnc_alloc(sizeof(float) * (size_t)count);
	for (int64_t i = 0; i < count; i++)
		x[i] = v;
	int64_t dims[1] = {count};
	return initializer(e, name, count == 1 ? 0 : 1, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, -1, 0, x,
			   sizeof(float) * (size_t)count);
}

/* An int64 vector constant (shapes). */
static const char *constant_i64(exporter *e, const char *name, int k, const int64_t *v)
{
	int64_t dims[1] = {k};
	/* raw_data is little-endian; so is every host nnc runs on (checked in
	 * nnc_onnx_build) */
	return initializer(e, name, 1, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, -1, 0, v, sizeof(int64_t) * (size_t)k);
}

static const char *tmp(exporter *e, const char *base)
{
	return unique(e, nnc_sprintf("%s_%d", base, ++e->ntmp));
}

/* A tensor value type [N, dims...] (N the dynamic batch dimension). */
static Onnx__ValueInfoProto *value_info(const char *name, int rank, const int64_t *dims)
{
	Onnx__ValueInfoProto *v = nnc_alloc(sizeof *v);
	onnx__value_info_proto__init(v);
	v->name = (char *)name;
	Onnx__TypeProto *t = nnc_alloc(sizeof *t);
	onnx__type_proto__init(t);
	Onnx__TypeProto__Tensor *tt = nnc_alloc(sizeof *tt);
	onnx__type_proto__tensor__init(tt);
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	Onnx__TensorShapeProto *s = nnc_alloc(sizeof *s);
	onnx__tensor_shape_proto__init(s);
	s->n_dim = (size_t)rank + 1;
	s->dim = nnc_alloc(sizeof *s->dim * s->n_dim);
	for (int i = 0; i <= rank; i++) {
		Onnx__TensorShapeProto__Dimension *d = nnc_alloc(sizeof *d);
		onnx__tensor_shape_proto__dimension__init(d);
		if (i == 0) {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d->dim_param = "N";
		} else {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[i - 1];
		}
		s->dim[i] = d;
	}
	tt->shape = s;
	t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	t->tensor_type = tt;
	v->type = t;
	return v;
}

/* ---- The graph ---- */

/* The layer a parameter belongs to: "conv1" of "conv1.weight". */
static const char *layer_of(const ir_graph *g, int param_node)
{
	const char *p = g->params[g->nodes[param_node].param].name;
	const char *dot = strrchr(p, '.');
	return dot ? nnc_strndup(p, (size_t)(dot - p)) : p;
}

/* The ONNX value name of node id's result. */
static const char *result_name(exporter *e, int id)
{
	const ir_node *n = &e->g->nodes[id];
	if (n->name && !name_taken(e, n->name))
		return unique(e, n->name);
	return tmp(e, ir_op_name(n->op));
}

/* The operand as a [N, features] matrix: Flatten of an image. */
static const char *as_matrix(exporter *e, int id)
{
	const ir_node *n = &e->g->nodes[id];
	if (n->rank == 1)
		return e->val[id];
	const char *out = tmp(e, "flatten");
	Onnx__NodeProto *f = node(e, "Flatten", out, 1, &e->val[id], out);
	attr_i(f, "axis", 1);
	return out;
}

static const char *param_init(exporter *e, int id)
{
	const ir_node *n = &e->g->nodes[id];
	const ir_param *p = n->op == IR_STATE ? &e->g->states[n->param] : &e->g->params[n->param];
	return initializer(e, p->name, p->rank, p->dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
			   n->op == IR_STATE ? NNRT_ONNX_STATE : NNRT_ONNX_PARAMS, p->offset, NULL,
			   sizeof(float) * (size_t)p->size);
}

/* An activation of acts.def applied to value `x`, into `out`. */
static bool activation(exporter *e, ir_act a, double opt, const char *x, const char *out, const char *name)
{
	switch (a) {
	case ACT_RELU: node(e, "Relu", name, 1, &x, out); return true;
	case ACT_SIGMOID: node(e, "Sigmoid", name, 1, &x, out); return true;
	case ACT_TANH: node(e, "Tanh", name, 1, &x, out); return true;
	case ACT_SOFTPLUS: node(e, "Softplus", name, 1, &x, out); return true;
	case ACT_LEAKY_RELU: attr_f(node(e, "LeakyRelu", name, 1, &x, out), "alpha", opt); return true;
	case ACT_ELU: attr_f(node(e, "Elu", name, 1, &x, out), "alpha", opt); return true;
	case ACT_SILU: { /* x sigmoid(x) */
		const char *s = tmp(e, "sigmoid");
		node(e, "Sigmoid", s, 1, &x, s);
		const char *in[2] = {x, s};
		node(e, "Mul", name, 2, in, out);
		return true;
	}
	case ACT_GELU: {
		const char *in[2];
		if (opt == 0) { /* x (1 + erf(x / sqrt 2)) / 2 */
			const char *a1 = tmp(e, "gelu"), *a2 = tmp(e, "gelu"), *a3 = tmp(e, "gelu");
			in[0] = x, in[1] = constant(e, "gelu_rsqrt2", 1, 0.70710678118654752f);
			node(e, "Mul", a1, 2, in, a1);
			node(e, "Erf", a2, 1, &a1, a2);
			in[0] = a2, in[1] = constant(e, "gelu_one", 1, 1.0f);
			node(e, "Add", a3, 2, in, a3);
			const char *a4 = tmp(e, "gelu");
			in[0] = x, in[1] = a3;
			node(e, "Mul", a4, 2, in, a4);
			in[0] = a4, in[1] = constant(e, "gelu_half", 1, 0.5f);
			node(e, "Mul", name, 2, in, out);
			return true;
		}
		/* x sigmoid(x (2 k0 + 2 k0 k1 x^2)), as cg_math.c computes it */
		const double k0 = 0.7978845608028654, k1 = 0.044715;
		const char *x2 = tmp(e, "gelu"), *t1 = tmp(e, "gelu"), *t2 = tmp(e, "gelu"), *v = tmp(e, "gelu"),
			   *s = tmp(e, "gelu");
		in[0] = x, in[1] = x;
		node(e, "Mul", x2, 2, in, x2);
		in[0] = x2, in[1] = constant(e, "gelu_c1", 1, (float)(2 * k0 * k1));
		node(e, "Mul", t1, 2, in, t1);
		in[0] = t1, in[1] = constant(e, "gelu_c0", 1, (float)(2 * k0));
		node(e, "Add", t2, 2, in, t2);
		in[0] = x, in[1] = t2;
		node(e, "Mul", v, 2, in, v);
		node(e, "Sigmoid", s, 1, &v, s);
		in[0] = x, in[1] = s;
		node(e, "Mul", name, 2, in, out);
		return true;
	}
	default: return false;
	}
}

/* Softmax over all of each sample's values (language.md). */
static void softmax(exporter *e, int id, const char *out, const char *name)
{
	const ir_node *n = &e->g->nodes[id];
	const char *x = e->val[id];
	if (n->rank == 1) {
		attr_i(node(e, "Softmax", name, 1, &x, out), "axis", 1);
		return;
	}
	const char *flat = as_matrix(e, id), *s = tmp(e, "softmax");
	attr_i(node(e, "Softmax", s, 1, &flat, s), "axis", 1);
	int64_t shape[IR_MAX_RANK + 1] = {-1};
	for (int i = 0; i < n->rank; i++)
		shape[i + 1] = n->dims[i];
	const char *in[2] = {s, constant_i64(e, "softmax_shape", n->rank + 1, shape)};
	node(e, "Reshape", name, 2, in, out);
}

/* The value x of a [N, dims...] node reshaped to [-1, shape...]. */
static const char *reshape(exporter *e, const char *x, int k, const int64_t *shape, const char *out)
{
	int64_t s[IR_MAX_RANK + 2] = {-1};
	memcpy(s + 1, shape, sizeof(int64_t) * (size_t)k);
	const char *in[2] = {x, constant_i64(e, "shape", k + 1, s)};
	if (!out)
		out = tmp(e, "reshape");
	node(e, "Reshape", out, 2, in, out);
	return out;
}

/* x (of `rank` axes with the batch) with its last two axes exchanged. */
static const char *transpose_last2(exporter *e, const char *x, int rank)
{
	int64_t perm[IR_MAX_RANK + 1];
	for (int i = 0; i < rank; i++)
		perm[i] = i;
	perm[rank - 2] = rank - 1, perm[rank - 1] = rank - 2;
	const char *out = tmp(e, "transpose");
	attr_ints(node(e, "Transpose", out, 1, &x, out), "perm", rank, perm);
	return out;
}

/* SOFTMAX_LAST: Softmax over the last axis (ia[1] > 0: rows of ia[1]
 * values of a flat value, the per-position inference tail; reshaped to
 * [-1, ia[1]] and back).  Causal: before it, the Add of a constant [L, L]
 * of 0 on and below the diagonal and -inf above it (docs/onnx.md: the
 * probabilities there are then exactly 0, as nnc's are, and no row is all
 * -inf since its diagonal entry stays). */
static void softmax_last(exporter *e, const ir_node *n, const char *x, const char *out, const char *name)
{
	const ir_node *src = &e->g->nodes[n->in[0]];
	int64_t L = n->ia[1] ? n->ia[1] : src->dims[src->rank - 1];
	bool flat = n->ia[1] && src->dims[src->rank - 1] != L;
	if (flat)
		x = reshape(e, x, 1, &L, NULL);
	if (n->ia[0]) {
		float *m = nnc_alloc(sizeof(float) * (size_t)(L * L));
		for (int64_t i = 0; i < L; i++)
			for (int64_t j = 0; j < L; j++)
				m[i * L + j] = j > i ? -INFINITY : 0.0f;
		int64_t dims[2] = {L, L};
		const char *in[2] = {x, initializer(e, "causal_mask", 2, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, -1, 0,
						   m, sizeof(float) * (size_t)(L * L))};
		const char *masked = tmp(e, "masked");
		node(e, "Add", masked, 2, in, masked);
		x = masked;
	}
	const char *s = flat ? tmp(e, "softmax") : out;
	attr_i(node(e, "Softmax", flat ? s : name, 1, &x, s), "axis", -1);
	if (flat) {
		int64_t dims[IR_MAX_RANK];
		memcpy(dims, src->dims, sizeof(int64_t) * (size_t)src->rank);
		reshape(e, s, src->rank, dims, out);
	}
}

/* LAYERNORM: LayerNormalization over the last axis; RMS normalisation
 * composed, x / sqrt(mean(x^2) + eps) gamma (+ beta), as cg_seq.c's. */
static void layernorm(exporter *e, const ir_node *n, const char *out)
{
	const char **v = e->val;
	bool beta = n->nin > 2 && n->in[2] >= 0;
	const char *in[3] = {v[n->in[0]], v[n->in[1]], beta ? v[n->in[2]] : NULL};
	if (!n->ia[0]) {
		Onnx__NodeProto *l = node(e, "LayerNormalization", out, beta ? 3 : 2, in, out);
		attr_i(l, "axis", -1);
		attr_f(l, "epsilon", n->fa[0]);
		return;
	}
	const char *x = v[n->in[0]], *sq = tmp(e, "rms_sq"), *ms = tmp(e, "rms_mean"), *me = tmp(e, "rms_eps"),
		   *rms = tmp(e, "rms"), *xn = tmp(e, "rms_norm");
	in[0] = x, in[1] = x;
	node(e, "Mul", sq, 2, in, sq);
	Onnx__NodeProto *r = node(e, "ReduceMean", ms, 1, &sq, ms);
	attr_ints(r, "axes", 1, (int64_t[]){-1});
	attr_i(r, "keepdims", 1);
	in[0] = ms, in[1] = constant(e, "rms_epsilon", 1, (float)n->fa[0]);
	node(e, "Add", me, 2, in, me);
	node(e, "Sqrt", rms, 1, &me, rms);
	in[0] = x, in[1] = rms;
	node(e, "Div", xn, 2, in, xn);
	const char *g = beta ? tmp(e, "rms_scaled") : out;
	in[0] = xn, in[1] = v[n->in[1]];
	node(e, "Mul", g, 2, in, g);
	if (beta) {
		in[0] = g, in[1] = v[n->in[2]];
		node(e, "Add", out, 2, in, out);
	}
}

/* The nodes of an LSTM or GRU layer that its ONNX node replaces: the
 * input projection (a per-position DENSE), W_hh's packing and the four
 * parameters, which go into W, R and B instead (sema's eval_rnn builds
 * xp = DENSE(x, W_ih, b_ih), RNN_PACK(W_hh), LSTM/GRU(xp, pack, b_hh)). */
static void rnn_replaced(const ir_graph *g, const ir_node *r, bool *need)
{
	const ir_node *xp = &g->nodes[r->in[0]], *pk = &g->nodes[r->in[1]];
	NNC_ASSERT(xp->op == IR_DENSE && xp->nin > 2 && xp->in[2] >= 0 && pk->op == IR_RNN_PACK);
	need[r->in[0]] = need[xp->in[1]] = need[xp->in[2]] = false;
	need[r->in[1]] = need[pk->in[0]] = need[r->in[2]] = false;
}

/* A piece of parameter node id: its G gate blocks in ONNX's order, and
 * (rows > 1) transposed, from nnc's [in, G H] to ONNX's [G H, in]. */
static nnc_onnx_piece gate_piece(const exporter *e, int id, int64_t rows, int64_t G, int64_t perm)
{
	const ir_param *p = &e->g->params[e->g->nodes[id].param];
	return (nnc_onnx_piece){.from = NNRT_ONNX_PARAMS, .offset = p->offset, .count = p->size, .rows = rows,
				.blocks = G, .perm = perm, .transpose = rows > 1};
}

/* RNN_OUT of an LSTM or GRU: ONNX's LSTM or GRU node (one direction, zero
 * initial state) over x transposed to [T, N, d] (layout 1, batch first,
 * is opset 14's, but onnxruntime refuses it), then the states back to
 * nnc's [N, T, H], or the last state Y_h as [N, H].  The weights:
 *   W [1, G H, d] = nnc's W_ih [d, G H] transposed,
 *   R [1, G H, H] = W_hh [H, G H] transposed,
 *   B [1, 2 G H]  = b_ih then b_hh (ONNX's Wb and Rb),
 * each with its gate blocks reordered: ONNX's LSTM holds them i o f c
 * (nnc's i f g o: blocks 0 3 1 2), its GRU z r h (nnc's r z n: 1 0 2).
 * GRU's linear_before_reset 1 is nnc's (PyTorch's) formula, the reset
 * gate times (h W_hn + b_hn). */
static void recurrent(exporter *e, const ir_node *n, const char *out)
{
	const ir_graph *g = e->g;
	const ir_node *r = &g->nodes[n->in[0]], *xp = &g->nodes[r->in[0]], *pk = &g->nodes[r->in[1]];
	bool lstm = r->op == IR_LSTM, last = n->ia[0];
	int64_t H = n->ia[1], G = lstm ? 4 : 3, d = g->nodes[xp->in[1]].dims[0];
	int64_t perm = lstm ? 0 | 3 << 4 | 1 << 8 | 2 << 12 : 1 | 0 << 4 | 2 << 8;
	const char *name = r->name ? r->name : out;
	nnc_onnx_piece w = gate_piece(e, xp->in[1], d, G, perm), rr = gate_piece(e, pk->in[0], H, G, perm);
	nnc_onnx_piece b[2] = {gate_piece(e, xp->in[2], 1, G, perm), gate_piece(e, r->in[2], 1, G, perm)};
	int64_t wd[3] = {1, G * H, d}, rd[3] = {1, G * H, H}, bd[2] = {1, 2 * G * H};
	const char *in[4], *x = e->val[xp->in[0]];
	const char *xt = tmp(e, "time_major");
	attr_ints(node(e, "Transpose", xt, 1, &x, xt), "perm", 3, (int64_t[]){1, 0, 2});
	in[0] = xt;
	in[1] = initializer_parts(e, nnc_sprintf("%s.W", name), 3, wd, 1, &w);
	in[2] = initializer_parts(e, nnc_sprintf("%s.R", name), 3, rd, 1, &rr);
	in[3] = initializer_parts(e, nnc_sprintf("%s.B", name), 2, bd, 2, b);
	const char *y = tmp(e, last ? "last_state" : "states");
	Onnx__NodeProto *rn = node(e, lstm ? "LSTM" : "GRU", name, 4, in, y);
	attr_i(rn, "hidden_size", H);
	if (!lstm)
		attr_i(rn, "linear_before_reset", 1);
	if (last) { /* outputs Y (left out) and Y_h [1, N, H] */
		rn->n_output = 2;
		rn->output = nnc_alloc(2 * sizeof(char *));
		rn->output[0] = "", rn->output[1] = (char *)y;
	}
	const char *sq = last ? out : tmp(e, "states"); /* Y [T, 1, N, H] -> [T, N, H] */
	in[0] = y, in[1] = constant_i64(e, "axes", 1, (int64_t[]){last ? 0 : 1});
	node(e, "Squeeze", sq, 2, in, sq);
	if (!last)
		attr_ints(node(e, "Transpose", out, 1, &sq, out), "perm", 3, (int64_t[]){1, 0, 2});
}

/* Node id of the graph as ONNX nodes computing e->val[id]. */
static bool export_node(exporter *e, int id)
{
	const ir_graph *g = e->g;
	const ir_node *n = &g->nodes[id];
	const char **v = e->val;
	const char *in[5];
	switch (n->op) {
	case IR_PARAM:
	case IR_STATE:
		v[id] = param_init(e, id);
		return true;
	case IR_TO_CN:
	case IR_TO_NC:
	case IR_DROPOUT: /* the identity in inference */
	case IR_COPY:
		v[id] = v[n->in[0]];
		return true;
	case IR_BN_COMBINE: /* read by its batchnorm */
		return true;
	case IR_LSTM: /* its RNN_OUT is the ONNX node (recurrent) */
	case IR_GRU:
		return true;
	default: break;
	}
	const char *out = v[id] = result_name(e, id);
	switch (n->op) {
	case IR_DENSE: {
		if (ir_rows(n) > 1) { /* per position: [N, T, i] x [i, o] + [o] */
			bool bias = n->nin > 2 && n->in[2] >= 0;
			const char *p = bias ? tmp(e, "matmul") : out;
			in[0] = v[n->in[0]], in[1] = v[n->in[1]];
			node(e, "MatMul", bias ? p : layer_of(g, n->in[1]), 2, in, p);
			if (bias) {
				in[0] = p, in[1] = v[n->in[2]];
				node(e, "Add", layer_of(g, n->in[1]), 2, in, out);
			}
			return true;
		}
		in[0] = as_matrix(e, n->in[0]);
		in[1] = v[n->in[1]];
		int nin = 2;
		if (n->nin > 2 && n->in[2] >= 0)
			in[nin++] = v[n->in[2]];
		node(e, "Gemm", layer_of(g, n->in[1]), nin, in, out);
		return true;
	}
	case IR_CONV2D: {
		in[0] = v[n->in[0]], in[1] = v[n->in[1]];
		int nin = 2;
		if (n->nin > 2 && n->in[2] >= 0)
			in[nin++] = v[n->in[2]];
		Onnx__NodeProto *c = node(e, "Conv", layer_of(g, n->in[1]), nin, in, out);
		int64_t k[2] = {n->ia[0], n->ia[1]}, s[2] = {n->ia[2], n->ia[3]},
			p[4] = {n->ia[4], n->ia[5], n->ia[4], n->ia[5]};
		attr_ints(c, "kernel_shape", 2, k);
		attr_ints(c, "strides", 2, s);
		attr_ints(c, "pads", 4, p);
		return true;
	}
	case IR_MAXPOOL:
	case IR_AVGPOOL: {
		in[0] = v[n->in[0]];
		Onnx__NodeProto *c = node(e, n->op == IR_MAXPOOL ? "MaxPool" : "AveragePool", out, 1, in, out);
		int64_t k[2] = {n->ia[0], n->ia[1]}, s[2] = {n->ia[2], n->ia[3]};
		attr_ints(c, "kernel_shape", 2, k);
		attr_ints(c, "strides", 2, s);
		return true;
	}
	case IR_GAVGPOOL: { /* [N, C, 1, 1], then [N, C] */
		const char *p = tmp(e, "global_avgpool");
		in[0] = v[n->in[0]];
		node(e, "GlobalAveragePool", p, 1, in, p);
		attr_i(node(e, "Flatten", out, 1, &p, out), "axis", 1);
		return true;
	}
	case IR_BATCHNORM: {
		const ir_node *st = &g->nodes[n->in[1]];
		const char *name = n->name ? n->name : out;
		int64_t c = ir_bn_channels(&g->nodes[n->in[0]]);
		in[0] = v[n->in[0]];
		if (ir_bn_affine(n)) {
			in[1] = v[n->in[2]], in[2] = v[n->in[3]];
		} else {
			in[1] = constant(e, nnc_sprintf("%s.weight", name), c, 1.0f);
			in[2] = constant(e, nnc_sprintf("%s.bias", name), c, 0.0f);
		}
		in[3] = v[st->in[1]], in[4] = v[st->in[2]];
		Onnx__NodeProto *b = node(e, "BatchNormalization", name, 5, in, out);
		attr_f(b, "epsilon", st->fa[1]);
		attr_f(b, "momentum", 1 - st->fa[0]); /* ONNX's: the weight of the running value */
		return true;
	}
	case IR_ADD:
	case IR_SUB:
	case IR_MUL:
		in[0] = v[n->in[0]], in[1] = v[n->in[1]];
		node(e, n->op == IR_ADD ? "Add" : n->op == IR_SUB ? "Sub" : "Mul", out, 2, in, out);
		return true;
	case IR_AFFINE: { /* a x + b */
		const char *ax = v[n->in[0]];
		if (n->fa[0] != 1) {
			ax = n->fa[1] != 0 ? tmp(e, "scaled") : out;
			in[0] = v[n->in[0]], in[1] = constant(e, nnc_sprintf("%s_scale", out), 1, (float)n->fa[0]);
			node(e, "Mul", ax, 2, in, ax);
		}
		if (n->fa[1] != 0 || ax == v[n->in[0]]) {
			in[0] = ax, in[1] = constant(e, nnc_sprintf("%s_offset", out), 1, (float)n->fa[1]);
			node(e, "Add", out, 2, in, out);
		}
		return true;
	}
	case IR_NEG:
		in[0] = v[n->in[0]];
		node(e, "Neg", out, 1, in, out);
		return true;
	case IR_SOFTMAX:
		softmax(e, n->in[0], out, out);
		return true;
	case IR_EMBED: { /* ids as floats: clamped to [0, V) as cg_seq.c does, then int64 */
		const ir_node *w = &g->nodes[n->in[1]];
		const char *c = tmp(e, "ids"), *ids = tmp(e, "ids");
		in[0] = v[n->in[0]], in[1] = constant(e, "id_min", 1, 0.0f),
		in[2] = constant(e, "id_max", 1, (float)(w->dims[0] - 1));
		node(e, "Clip", c, 3, in, c);
		attr_i(node(e, "Cast", ids, 1, &c, ids), "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
		in[0] = v[n->in[1]], in[1] = ids;
		attr_i(node(e, "Gather", layer_of(g, n->in[1]), 2, in, out), "axis", 0);
		return true;
	}
	case IR_BIAS_ADD: /* x + P, P broadcast over the batch */
		in[0] = v[n->in[0]], in[1] = v[n->in[1]];
		node(e, "Add", out, 2, in, out);
		return true;
	case IR_LAYERNORM:
		layernorm(e, n, out);
		return true;
	case IR_MATMUL: { /* scale op(a) op(b), batched over the leading axes */
		const ir_node *a = &g->nodes[n->in[0]], *b = &g->nodes[n->in[1]];
		in[0] = n->ia[0] ? transpose_last2(e, v[n->in[0]], a->rank + 1) : v[n->in[0]];
		in[1] = n->ia[1] ? transpose_last2(e, v[n->in[1]], b->rank + 1) : v[n->in[1]];
		const char *p = n->fa[0] != 1 ? tmp(e, "matmul") : out;
		node(e, "MatMul", p, 2, in, p);
		if (n->fa[0] != 1) {
			in[0] = p, in[1] = constant(e, nnc_sprintf("%s_scale", out), 1, (float)n->fa[0]);
			node(e, "Mul", out, 2, in, out);
		}
		return true;
	}
	case IR_HEADS: { /* view [A, B, C], swap A and B, back to the result's shape */
		int64_t abc[3] = {n->ia[0], n->ia[1], n->ia[2]}, perm[4] = {0, 2, 1, 3};
		const char *r = reshape(e, v[n->in[0]], 3, abc, NULL), *t = tmp(e, "heads");
		attr_ints(node(e, "Transpose", t, 1, &r, t), "perm", 4, perm);
		int64_t dims[IR_MAX_RANK];
		memcpy(dims, n->dims, sizeof(int64_t) * (size_t)n->rank);
		reshape(e, t, n->rank, dims, out);
		return true;
	}
	case IR_SOFTMAX_LAST:
		softmax_last(e, n, v[n->in[0]], out, out);
		return true;
	case IR_RNN_OUT:
		recurrent(e, n, out);
		return true;
	case IR_CONCAT: {
		for (int i = 0; i < n->nin; i++)
			in[i] = v[n->in[i]];
		attr_i(node(e, "Concat", out, n->nin, in, out), "axis", 1);
		return true;
	}
	default: break;
	}
	ir_act a = ir_op_act(n->op);
	if (a != ACT_NONE && !ir_op_is_act_grad(n->op) && activation(e, a, n->fa[IR_FA_ACT], v[n->in[0]], out, out))
		return true;
	e->error = n->loc.line ? nnc_sprintf("%s:%d:%d: the op '%s' has no ONNX mapping", g->src->path, n->loc.line,
					     n->loc.col, ir_op_name(n->op))
			       : nnc_sprintf("the op '%s' has no ONNX mapping", ir_op_name(n->op));
	return false;
}

/* ---- Cutting the payloads out ---- */

/* Reads a varint at *p (< end); false if malformed. */
static bool varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* The length-delimited fields numbered `field` of the message [p, end):
 * their payloads' start offsets (from base) and lengths, in order. */
static int fields(const unsigned char *base, const unsigned char *p, const unsigned char *end, uint32_t field,
		  int64_t *at, int64_t *len, int max)
{
	int k = 0;
	while (p < end) {
		uint64_t key, l;
		NNC_ASSERT(varint(&p, end, &key));
		switch (key & 7) {
		case 0: NNC_ASSERT(varint(&p, end, &l)); break;
		case 1: p += 8; break;
		case 5: p += 4; break;
		case 2:
			NNC_ASSERT(varint(&p, end, &l));
			if ((key >> 3) == field && k < max) {
				at[k] = p - base;
				len[k] = (int64_t)l;
				k++;
			}
			p += l;
			break;
		default: nnc_unreachable();
		}
	}
	return k;
}

static void cut(exporter *e, Onnx__ModelProto *m, nnc_onnx_model *out)
{
	size_t len = onnx__model_proto__get_packed_size(m);
	unsigned char *buf = nnc_alloc(len ? len : 1);
	NNC_ASSERT(onnx__model_proto__pack(m, buf) == len);
	/* ModelProto.graph is field 7, GraphProto.initializer 5,
	 * TensorProto.raw_data 9 (onnx.proto) */
	int64_t gat, glen;
	NNC_ASSERT(fields(buf, buf, buf + len, 7, &gat, &glen, 1) == 1);
	int ni = (int)e->graph->n_initializer;
	int64_t *iat = nnc_alloc(sizeof(int64_t) * (size_t)(ni + 1)), *ilen = nnc_alloc(sizeof(int64_t) * (size_t)(ni + 1));
	NNC_ASSERT(fields(buf, buf + gat, buf + gat + glen, 5, iat, ilen, ni) == ni);
	int npieces = 1;
	for (int i = 0; i < ni; i++)
		npieces += e->nparts[i] ? e->nparts[i] : 1;
	out->pieces = nnc_alloc(sizeof(nnc_onnx_piece) * (size_t)npieces);
	out->bytes = nnc_alloc(len ? len : 1);
	int64_t from = 0, w = 0;
	for (int i = 0; i < ni; i++) {
		if (e->param_from[i] < 0)
			continue;
		int64_t rat, rlen;
		NNC_ASSERT(fields(buf, buf + iat[i], buf + iat[i] + ilen[i], 9, &rat, &rlen, 1) == 1);
		NNC_ASSERT(rlen == (int64_t)e->graph->initializer[i]->raw_data.len);
		memcpy(out->bytes + w, buf + from, (size_t)(rat - from));
		w += rat - from;
		if (e->nparts[i]) { /* one after the other, all at w */
			int64_t count = 0;
			for (int k = 0; k < e->nparts[i]; k++) {
				nnc_onnx_piece p = e->parts[i][k];
				p.at = w;
				count += p.count;
				out->pieces[out->npieces++] = p;
			}
			NNC_ASSERT(count == rlen / 4);
		} else {
			out->pieces[out->npieces++] = (nnc_onnx_piece){.at = w, .from = e->param_from[i],
									 .offset = e->param_off[i], .count = rlen / 4};
		}
		from = rat + rlen;
	}
	memcpy(out->bytes + w, buf + from, len - (size_t)from);
	out->len = w + (int64_t)len - from;
}

void nnc_onnx_build(const ir_graph *g, const nnc_train_config *cfg, const char *source, const char *version,
		    nnc_onnx_model *out)
{
	memset(out, 0, sizeof *out);
	const uint16_t one = 1;
	if (*(const unsigned char *)&one != 1) {
		out->error = "ONNX export needs a little-endian host";
		return;
	}
	exporter E = {.g = g};
	exporter *e = &E;
	Onnx__GraphProto *graph = nnc_alloc(sizeof *graph);
	onnx__graph_proto__init(graph);
	e->graph = graph;
	e->val = nnc_alloc(sizeof(char *) * (size_t)(g->n ? g->n : 1));

	/* what inference returns: add_output_tail's choice */
	int outn = g->output >= 0 ? g->output : g->loss >= 0 ? g->nodes[g->loss].in[0] : -1;
	bool tail_softmax = g->output < 0 && g->loss_kind == NNRT_LOSS_SOFTMAX_XENT;
	bool tail_seq = g->output < 0 && g->loss_kind == NNRT_LOSS_SEQ_XENT;
	NNC_ASSERT(outn >= 0);
	bool *need = ir_ancestors(g, outn);
	for (int i = 0; i < g->n; i++)
		if (need[i] && (g->nodes[i].op == IR_LSTM || g->nodes[i].op == IR_GRU))
			rnn_replaced(g, &g->nodes[i], need);
	const ir_node *x = &g->nodes[g->input];
	e->val[g->input] = unique(e, x->name ? x->name : "input");
	for (int i = 0; i < g->n && !e->error; i++)
		if (need[i] && i != g->input && !g->nodes[i].dead)
			export_node(e, i);
	if (e->error) {
		out->error = e->error;
		return;
	}
	const ir_node *o = &g->nodes[outn];
	const char *result = e->val[outn];
	if (tail_softmax) {
		result = unique(e, "probabilities");
		softmax(e, outn, result, "probabilities");
	} else if (tail_seq) { /* add_output_tail's per-position softmax over V */
		result = unique(e, "probabilities");
		ir_node t = {.op = IR_SOFTMAX_LAST, .nin = 1, .in = {outn}, .ia = {0, g->label_vocab}};
		softmax_last(e, &t, e->val[outn], result, "probabilities");
	}
	graph->name = (char *)g->model_name;
	graph->doc_string = nnc_sprintf("The inference graph of nnc model '%s'%s", g->model_name,
					tail_softmax ? ": class probabilities (the softmax of the logits)"
					: tail_seq   ? ": class probabilities per position (the softmax of each position's logits)"
						     : "");
	graph->n_input = 1;
	graph->input = nnc_alloc(sizeof *graph->input);
	graph->input[0] = value_info(e->val[g->input], x->rank, x->dims);
	graph->n_output = 1;
	graph->output = nnc_alloc(sizeof *graph->output);
	graph->output[0] = value_info(result, o->rank, o->dims);

	Onnx__ModelProto *m = nnc_alloc(sizeof *m);
	onnx__model_proto__init(m);
	m->has_ir_version = 1;
	m->ir_version = NNC_ONNX_IR_VERSION;
	Onnx__OperatorSetIdProto *ops = nnc_alloc(sizeof *ops);
	onnx__operator_set_id_proto__init(ops);
	ops->domain = "";
	ops->has_version = 1;
	ops->version = NNC_ONNX_OPSET;
	m->n_opset_import = 1;
	m->opset_import = nnc_alloc(sizeof *m->opset_import);
	m->opset_import[0] = ops;
	m->producer_name = "nnc";
	m->producer_version = (char *)version;
	m->has_model_version = 1;
	m->model_version = 1;
	m->doc_string = nnc_sprintf("Model '%s' compiled by nnc %s from %s; %d parameter tensors, %d state tensors, "
				    "batch dimension N dynamic.",
				    g->model_name, version, source, g->nparams, g->nstates);
	(void)cfg;
	m->graph = graph;
	cut(e, m, out);
}

/* ---- Writing ---- */

void nnc_onnx_model_tables(const ir_graph *g, const nnc_train_config *cfg, nnrt_model *m)
{
	memset(m, 0, sizeof *m);
	m->struct_size = sizeof *m;
	m->abi_version = NNRT_ABI_VERSION;
	m->name = g->model_name;
	m->fingerprint = g->fingerprint;
	m->optimizer = cfg->opt.kind;
	m->seed = cfg->seed;
	m->param_floats = g->param_floats;
	m->opt_floats = g->param_floats * ir_opt_slots(&cfg->opt);
	m->state_floats = g->state_floats;
	const ir_param *tabs[2] = {g->params, g->states};
	int counts[2] = {g->nparams, g->nstates};
	nnrt_param_info *rows[2];
	for (int t = 0; t < 2; t++) {
		rows[t] = nnc_alloc(sizeof(nnrt_param_info) * (size_t)(counts[t] + 1));
		for (int i = 0; i < counts[t]; i++) {
			const ir_param *p = &tabs[t][i];
			nnrt_param_info *r = &rows[t][i];
			r->name = p->name;
			r->offset = p->offset;
			r->size = p->size;
			r->rank = p->rank;
			for (int k = 0; k < p->rank; k++)
				r->shape[k] = p->dims[k];
			r->init = p->init;
			r->init_arg = (float)p->init_arg;
			r->fan_in = (float)p->fan_in;
			r->fan_out = (float)p->fan_out;
		}
	}
	m->params = rows[0];
	m->n_params = g->nparams;
	m->state = rows[1];
	m->n_state = g->nstates;
}

int nnc_onnx_write_initial(const ir_graph *g, const nnc_train_config *cfg, const nnc_onnx_model *om, const char *path)
{
	if (om->error) {
		nnc_error_plain("cannot export to ONNX: %s", om->error);
		return NNC_EXIT_INPUT;
	}
	nnrt_model m;
	nnc_onnx_model_tables(g, cfg, &m);
	float *params = nnc_alloc(sizeof(float) * (size_t)(m.param_floats + 1));
	float *state = nnc_alloc(sizeof(float) * (size_t)(m.state_floats + 1));
	nnrt_model_initial_values(&m, (uint64_t)cfg->seed, params, state);
	nnrt_onnx o = {.version = NNRT_ONNX_VERSION, .bytes = om->bytes, .len = om->len, .n_pieces = om->npieces,
		       .pieces = (const nnrt_onnx_piece *)om->pieces};
	char err[512];
	if (nnrt_onnx_write(&o, params, state, path, err, sizeof err)) {
		nnc_error_plain("%s", err);
		return NNC_EXIT_INTERNAL;
	}
	return NNC_EXIT_OK;
}
