/*
 * ir.c - building, querying and printing the tensor graph.
 */
#include "ir.h"

#include <string.h>

static const char *const op_names[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = name,
#include "ops.def"
#undef OP
};

static const int op_arity[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = arity,
#include "ops.def"
#undef OP
};

static const char *const op_kinds[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = kind,
#include "ops.def"
#undef OP
};

const char *ir_op_name(ir_op op) { return op_names[op]; }
int ir_op_arity(ir_op op) { return op_arity[op]; }
const char *ir_op_kind(ir_op op) { return op_kinds[op]; }

/* ---- activations (acts.def) ---- */

static const ir_act_info act_infos[IR_NUM_ACTS] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) \
	[ACT_##id] = {name, from, init, opt, kind, def, min, inl, fl, dfl},
#include "acts.def"
#undef ACT
};

static const ir_act op_act[IR_NUM_OPS] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) \
	[IR_##id] = ACT_##id, [IR_##id##_GRAD] = ACT_##id,
#include "acts.def"
#undef ACT
};

static const ir_op act_ops[IR_NUM_ACTS][2] = {
#define ACT(id, name, from, init, opt, kind, def, min, act, dact, inl, fl, dfl) \
	[ACT_##id] = {IR_##id, IR_##id##_GRAD},
#include "acts.def"
#undef ACT
};

const ir_act_info *ir_act_get(ir_act a)
{
	NNC_ASSERT(a > ACT_NONE && a < IR_NUM_ACTS);
	return &act_infos[a];
}

ir_act ir_op_act(ir_op op) { return op_act[op]; }
bool ir_op_is_act_grad(ir_op op) { return op_act[op] != ACT_NONE && act_ops[op_act[op]][1] == op; }
ir_op ir_act_op(ir_act a) { return act_ops[a][0]; }
ir_op ir_act_grad_op(ir_act a) { return act_ops[a][1]; }

char *ir_act_str(ir_act a, double opt)
{
	if (a == ACT_NONE)
		return "none";
	const ir_act_info *ai = ir_act_get(a);
	if (ai->opt_kind == ACT_OPT_NONE)
		return nnc_strdup(ai->name);
	if (ai->opt_kind == ACT_OPT_BOOL)
		return nnc_sprintf("%s(%s=%s)", ai->name, ai->opt, opt != 0 ? "true" : "false");
	return nnc_sprintf("%s(%s=%g)", ai->name, ai->opt, opt);
}

ir_graph *ir_new(const nnc_source *src)
{
	ir_graph *g = nnc_alloc(sizeof *g);
	g->src = src;
	g->input = g->label = g->loss = g->output = -1;
	g->adding = IR_ENTRY_TRAIN | IR_ENTRY_EVAL;
	return g;
}

/* ir_ancestors; with `copies`, a node that computes another's value in
 * inference (stands_for: a folded layer) is needed with it.  It comes
 * right after that node, and every reader after itself, so need[] of the
 * node is final when the sweep reaches the copy. */
static bool *ancestors(const ir_graph *g, int root, bool copies)
{
	bool *need = nnc_alloc((size_t)g->n);
	need[root] = true;
	for (int i = copies ? g->n - 1 : root; i >= 0; i--) {
		const ir_node *n = &g->nodes[i];
		int sf = copies ? ir_stands_for(n) : -1;
		if (!n->dead && sf >= 0 && need[sf] && (n->entries & IR_ENTRY_INFER))
			need[i] = true;
		for (int k = 0; need[i] && k < n->nin; k++)
			if (!ir_operand_train_only(n, k))
				need[n->in[k]] = true;
	}
	return need;
}

bool *ir_ancestors(const ir_graph *g, int root) { return ancestors(g, root, false); }

void ir_drop_training(ir_graph *g)
{
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->entries == IR_ENTRY_TRAIN)
			n->dead = true;
		n->entries &= (uint8_t)~IR_ENTRY_TRAIN;
	}
}

int ir_entry_nodes(const ir_graph *g, unsigned entry, int *ids)
{
	int k = 0;
	for (int i = 0; i < g->n; i++)
		if (!g->nodes[i].dead && (g->nodes[i].entries & entry))
			ids[k++] = i;
	return k;
}

void ir_settle_infer(ir_graph *g)
{
	bool *need = g->output >= 0 ? ancestors(g, g->output, true) : NULL;
	for (int i = 0; i < g->n; i++)
		if (!need || !need[i])
			g->nodes[i].entries &= (uint8_t)~IR_ENTRY_INFER;
}

void ir_drop_dead_act_dst(ir_graph *g)
{
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->act_dst >= 0 && g->nodes[n->act_dst].dead) {
			n->act = ACT_NONE;
			n->act_dst = -1;
		}
	}
}

int ir_add(ir_graph *g, ir_op op, int nin, const int *in)
{
	NNC_ASSERT(nin <= IR_MAX_IN);
	if (g->n == g->cap) {
		int cap = g->cap ? g->cap * 2 : 64;
		g->nodes = nnc_realloc_array(g->nodes, (size_t)g->n, (size_t)cap, sizeof(ir_node));
		g->cap = cap;
	}
	int id = g->n++;
	ir_node *n = &g->nodes[id];
	memset(n, 0, sizeof *n);
	n->op = op;
	n->nin = nin;
	for (int i = 0; i < nin; i++) {
		NNC_ASSERT(in[i] >= 0 && in[i] < id);
		n->in[i] = in[i];
	}
	n->param = -1;
	n->act_dst = -1;
	n->entries = g->adding;
	return id;
}

void ir_set_shape(ir_node *n, bool batched, int rank, const int64_t *dims)
{
	NNC_ASSERT(rank >= 0 && rank <= IR_MAX_RANK);
	n->batched = batched;
	n->rank = rank;
	n->size = 1;
	for (int i = 0; i < rank; i++) {
		n->dims[i] = dims[i];
		n->size *= dims[i];
	}
}

bool ir_same_shape(const ir_node *a, const ir_node *b)
{
	if (a->batched != b->batched || a->rank != b->rank)
		return false;
	for (int i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return false;
	return true;
}

char *ir_dims_str(bool batched, int rank, const int64_t *dims)
{
	nnc_buf b = {0};
	nnc_buf_puts(&b, "[");
	if (batched)
		nnc_buf_printf(&b, "n%s", rank ? ", " : "");
	for (int i = 0; i < rank; i++)
		nnc_buf_printf(&b, "%s%lld", i ? ", " : "", (long long)dims[i]);
	nnc_buf_puts(&b, "]");
	char *s = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return s;
}

char *ir_shape_str(const ir_node *n) { return ir_dims_str(n->batched, n->rank, n->dims); }

static const char *storage_name(ir_storage s)
{
	switch (s) {
	case ST_NONE: return "";
	case ST_INPUT: return "x";
	case ST_LABEL: return "y";
	case ST_PARAM: return "params";
	case ST_GRAD: return "grads";
	case ST_WS: return "ws";
	case ST_OUT: return "out";
	case ST_STATE: return "state";
	}
	return "?";
}

/* The section of the dumps a node is listed in: 0 forward (the eval step
 * runs it), 1 backward (the train step only), 2 the inference output. */
static int ir_entry_section(const ir_node *n)
{
	return n->entries & IR_ENTRY_EVAL ? 0 : n->entries & IR_ENTRY_TRAIN ? 1 : 2;
}

static void dump_node(ir_graph *g, int i, nnc_buf *out)
{
	ir_node *n = &g->nodes[i];
	char *shape = ir_shape_str(n);
	nnc_buf_printf(out, "  %%%d = %s(", i, ir_op_name(n->op));
	for (int k = 0; k < n->nin; k++)
		nnc_buf_printf(out, "%s%%%d", k ? ", " : "", n->in[k]);
	nnc_buf_puts(out, ")");
	if (n->act)
		nnc_buf_printf(out, " act=%s", ir_act_str(n->act, n->fa[IR_FA_ACT]));
	if (n->act_dst >= 0)
		nnc_buf_printf(out, " into %%%d", n->act_dst);
	if (ir_stands_for(n) >= 0)
		nnc_buf_printf(out, " for %%%d", ir_stands_for(n));
	if (n->dact)
		nnc_buf_printf(out, " dact=%s", ir_act_str(n->dact, n->fa[IR_FA_ACT]));
	if (n->op == IR_AFFINE)
		nnc_buf_printf(out, " a=%g b=%g", n->fa[0], n->fa[1]);
	if (n->op == IR_DROPOUT || n->op == IR_DROPOUT_GRAD)
		nnc_buf_printf(out, " p=%g stream=%lld", n->fa[0], (long long)n->ia[0]);
	if (n->op == IR_SLICE)
		nnc_buf_printf(out, " from=%lld", (long long)n->ia[0]);
	if ((n->op == IR_XENT || n->op == IR_XENT_GRAD) && n->fa[0] != 0)
		nnc_buf_printf(out, " smoothing=%g", n->fa[0]);
	ir_act a = ir_op_act(n->op);
	if (a != ACT_NONE && ir_act_get(a)->opt_kind != ACT_OPT_NONE) { /* " alpha=0.1" */
		char *as = ir_act_str(a, n->fa[IR_FA_ACT]) + strlen(ir_act_get(a)->name) + 1;
		nnc_buf_printf(out, " %.*s", (int)strlen(as) - 1, as);
	}
	if (n->in_epilogue)
		nnc_buf_printf(out, " in-epilogue of %%%d", n->in[0]);
	nnc_buf_printf(out, " : %s%s", shape, n->batched && n->layout == LAYOUT_CN ? " cn" : "");
	if (n->name)
		nnc_buf_printf(out, "  ; %s", n->name);
	if (n->storage)
		nnc_buf_printf(out, "  @%s+%lld", storage_name(n->storage), (long long)n->offset);
	nnc_buf_puts(out, "\n");
}

void ir_dump(ir_graph *g, nnc_buf *out)
{
	nnc_buf_printf(out, "model %s  ; batch %lld, %d params (%lld floats)\n", g->model_name,
		       (long long)g->batch, g->nparams, (long long)g->param_floats);
	static const char *const header[] = {"forward:\n", "backward:\n", "inference output:\n",
					     "forward, train step only:\n"};
	int section = -1;
	for (int i = 0; i < g->n; i++) {
		if (g->nodes[i].dead)
			continue;
		int s = ir_entry_section(&g->nodes[i]);
		if (s == 1 && i < g->loss) /* before the loss: part of the forward pass (batch statistics) */
			s = 3;
		if (s != section)
			nnc_buf_puts(out, header[s]);
		section = s;
		dump_node(g, i, out);
	}
}

void ir_dump_dot(ir_graph *g, nnc_buf *out)
{
	nnc_buf_printf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
		       g->model_name);
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		static const char *const colors[] = {"lightblue", "mistyrose", "palegreen"};
		const char *color = colors[ir_entry_section(n)];
		if (n->op == IR_PARAM)
			color = "lightyellow";
		char *shape = ir_shape_str(n);
		nnc_buf_printf(out, "  n%d [label=\"%s%s%s\\n%s\", style=filled, fillcolor=%s];\n", i,
			       ir_op_name(n->op), n->name ? " " : "", n->name ? n->name : "", shape, color);
		for (int k = 0; k < n->nin; k++)
			if (!g->nodes[n->in[k]].dead) /* a train-only operand after --inference-only */
				nnc_buf_printf(out, "  n%d -> n%d;\n", n->in[k], i);
	}
	nnc_buf_puts(out, "}\n");
}

/* ---- FLOPs per sample (ops.def's flops column); multiply-adds count 2 ---- */

static double flops_none(const ir_graph *g, const ir_node *n) { (void)g, (void)n; return 0; }
static double flops_size(const ir_graph *g, const ir_node *n) { (void)g; return (double)n->size; }
/* one per value of a per-sample result */
static double flops_elt(const ir_graph *g, const ir_node *n) { (void)g; return n->batched ? (double)n->size : 0; }

static double flops_act(const ir_graph *g, const ir_node *n)
{
	const ir_act_info *ai = ir_act_get(ir_op_act(n->op));
	return flops_elt(g, n) * (ir_op_is_act_grad(n->op) ? ai->dflops : ai->flops);
}

static double flops_dense(const ir_graph *g, const ir_node *n)
{
	return 2.0 * (double)g->nodes[n->in[0]].size * (double)n->size / (double)ir_rows(n);
}

static double flops_dense_bx(const ir_graph *g, const ir_node *n)
{
	return 2.0 * (double)g->nodes[n->in[0]].size * (double)n->size / (double)ir_rows(n);
}

static double flops_dense_bw(const ir_graph *g, const ir_node *n) { (void)g; return 2.0 * (double)n->size * (double)ir_rows(n); }

/* sequences: layernorm about 8 per value; a product 2 M N K per sample */
static double flops_ln(const ir_graph *g, const ir_node *n) { return 8.0 * (double)g->nodes[n->in[0]].size; }
static double flops_matmul(const ir_graph *g, const ir_node *n)
{
	const ir_node *a = &g->nodes[n->in[0]];
	return 2.0 * (double)n->size * (double)a->dims[a->rank - (n->ia[0] ? 2 : 1)];
}
/* the product's and the softmax's, as before fusion (causal rows compute
 * about half of the product: not counted) */
static double flops_attn_probs(const ir_graph *g, const ir_node *n) { return flops_matmul(g, n) + flops_elt(g, n); }

/* recurrent layers per sample: the step's product h W_hh (2 H G H a
 * position) and about 30 per unit for the gates; the backward pass the
 * product dhp W_hh^T of the same size (dW_hh is a DENSE_BWD_W) */
static double flops_rnn(const ir_graph *g, const ir_node *n)
{
	int64_t GH = g->nodes[n->in[2]].dims[0], H = GH / (n->op == IR_LSTM ? 4 : 3);
	return (double)n->dims[0] * (2.0 * (double)H * (double)GH + 30.0 * (double)H);
}
static double flops_rnn_bwd(const ir_graph *g, const ir_node *n)
{
	(void)g;
	return (double)n->dims[0] * (2.0 * (double)n->ia[1] * (double)n->dims[1] + 30.0 * (double)n->ia[1]);
}

static double flops_dense_bxt(const ir_graph *g, const ir_node *n)
{
	return 2.0 * (double)n->size * (double)g->nodes[n->in[1]].size;
}

/* per output value: C*KH*KW multiply-adds */
static double flops_conv(const ir_graph *g, const ir_node *n)
{
	return 2.0 * (double)n->size * (double)(g->nodes[n->in[1]].size / n->dims[0]);
}

static double flops_conv_bx(const ir_graph *g, const ir_node *n)
{
	const ir_node *w = &g->nodes[n->in[1]];
	return 2.0 * (double)g->nodes[n->in[0]].size * (double)(w->size / w->dims[0]);
}

static double flops_conv_bw(const ir_graph *g, const ir_node *n)
{
	return 2.0 * (double)g->nodes[n->in[1]].size * (double)(n->size / n->dims[0]);
}

/* batchnorm: a multiply-add per value (and the fused activation) */
static double flops_bn(const ir_graph *g, const ir_node *n)
{
	(void)g;
	return (double)n->size * (2 + (n->act ? ir_act_get(n->act)->flops : 0));
}

/* its statistics: a sum, then a subtract and a multiply-add per value of x */
static double flops_bn_partial(const ir_graph *g, const ir_node *n) { return 4.0 * (double)g->nodes[n->in[0]].size; }

/* its backward passes: about four per value of x (and the fused derivative) */
static double flops_bn_bwd(const ir_graph *g, const ir_node *n)
{
	return (double)g->nodes[n->in[0]].size * (4 + (n->dact ? ir_act_get(n->dact)->dflops : 0));
}

typedef double flops_fn(const ir_graph *g, const ir_node *n);
static flops_fn *const op_flops[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = flops,
#include "ops.def"
#undef OP
};

double ir_node_flops(ir_graph *g, const ir_node *n) { return op_flops[n->op](g, n); }

/* The train step's forward pass, node by node: the nodes the eval step runs
 * too, the layers and batchnorms it runs folded together (pass_infer.c: a
 * node that stands for a batchnorm, eval and inference only, is not a layer
 * of the model) and the attention probabilities it runs within
 * attention_out. */
bool *ir_forward_nodes(const ir_graph *g)
{
	bool train = false, *f = nnc_alloc((size_t)g->n + 1);
	for (int i = 0; i < g->n; i++)
		train |= !g->nodes[i].dead && (g->nodes[i].entries & IR_ENTRY_TRAIN);
	for (int i = 0; i < g->n; i++) {
		const ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		f[i] |= (n->entries & IR_ENTRY_EVAL) && (!train || (n->entries & IR_ENTRY_TRAIN));
		int sf = ir_stands_for(n);
		if (sf >= 0)
			f[sf] = f[g->nodes[sf].in[0]] = true;
	}
	/* attention's probabilities, which only the train step makes now
	 * (fuse.c rule 6: eval computes attention whole) */
	for (int i = 0; i < g->n; i++)
		if (f[i] && g->nodes[i].op == IR_ATTN_OUT)
			f[g->nodes[i].in[0]] = true;
	return f;
}

void ir_stats(ir_graph *g, nnc_buf *out)
{
	double ff = 0, bf = 0;
	bool *fwd = ir_forward_nodes(g);
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !(n->entries & (IR_ENTRY_TRAIN | IR_ENTRY_EVAL)))
			continue;
		if (fwd[i])
			ff += ir_node_flops(g, n);
		else if (n->entries & IR_ENTRY_TRAIN)
			bf += ir_node_flops(g, n);
	}
	double upd = 0; /* the update's op, dead or not (--inference-only) */
	const ir_node *un = NULL;
	for (int i = 0; i < g->n; i++)
		if (ir_is_update(g->nodes[i].op))
			upd = ir_update_flops(g, un = &g->nodes[i]);
	int64_t count = 0;
	for (int i = 0; i < g->nparams; i++)
		count += g->params[i].size;
	nnc_buf_printf(out, "model %s\n", g->model_name);
	nnc_buf_printf(out, "  parameters        %lld (%d tensors, %.1f KiB with 64-byte alignment)\n",
		       (long long)count, g->nparams, g->param_floats * 4 / 1024.0);
	for (int i = 0; i < g->nparams; i++) {
		ir_param *p = &g->params[i];
		bool decays = un && un->fa[3] != 0 && ir_param_decays(p, (int)un->ia[0]);
		nnc_buf_printf(out, "    %-24s %-14s %lld%s\n", p->name, ir_dims_str(false, p->rank, p->dims),
			       (long long)p->size, decays ? "  weight decay" : "");
	}
	nnc_buf_printf(out, "  gradients         %.1f KiB\n", g->param_floats * 4 / 1024.0);
	nnc_buf_printf(out, "  optimizer state   %.1f KiB\n", g->opt_floats * 4 / 1024.0);
	nnc_buf_printf(out, "  workspace         %.1f KiB for batch %lld (activations and their gradients, planned)\n",
		       g->ws_floats * 4 / 1024.0, (long long)g->batch);
	nnc_buf_printf(out, "  FLOPs per sample  forward %.3g, backward %.3g, update %.3g per step\n", ff, bf,
		       upd);
}

/* The rule's state arrays (ir_rule_slots), and the accumulated gradient. */
int ir_opt_slots(const ir_optimizer *o) { return ir_rule_slots(o) + !!(o->flags & NNRT_OPTF_ACCUMULATE); }

int ir_rule_slots(const ir_optimizer *o)
{
	switch (o->kind) {
	case NNRT_OPT_SGD: return o->momentum != 0;
	case NNRT_OPT_ADAM:
	case NNRT_OPT_ADAMW: return 2 + !!(o->flags & NNRT_OPTF_AMSGRAD);
	case NNRT_OPT_RMSPROP: return 1 + !!(o->flags & NNRT_OPTF_CENTERED) + (o->momentum != 0);
	}
	nnc_unreachable();
}

bool ir_param_decays(const ir_param *p, int flags) { return p->rank >= 2 || (flags & NNRT_OPTF_DECAY_BIASES); }

/* Per step: a few FLOPs per parameter float by the rule (docs/language.md);
 * the weight decay's multiply-add is not counted. */
double ir_update_flops(const ir_graph *g, const ir_node *n)
{
	int f = (int)n->ia[0];
	double per;
	if (n->op == IR_SGD_UPDATE)
		per = 4 + (f & NNRT_OPTF_NESTEROV ? 2 : 0);
	else if (n->op == IR_ADAM_UPDATE)
		per = 10 + (f & NNRT_OPTF_AMSGRAD ? 1 : 0);
	else
		per = 8 + (f & NNRT_OPTF_CENTERED ? 4 : 0) + (n->fa[2] != 0 ? 2 : 0);
	return (double)g->param_floats * per;
}

/* Checkpoints carry the fingerprint: the model name, every parameter's name
 * and shape, and the optimizer.  It has never covered the ops: the loop
 * over the forward nodes it used to have ran over nodes [0, n_eval), and
 * sema set n_eval after hashing, so it hashed none; every checkpoint in
 * existence carries this hash, so covering the ops now would need a new
 * checkpoint version (each file keeps the hash of its own version). */
uint64_t ir_fingerprint(ir_graph *g, int opt_kind)
{
	uint64_t h = NNC_HASH_INIT;
	h = nnc_hash(h, g->model_name, strlen(g->model_name));
	for (int i = 0; i < g->nparams; i++) {
		ir_param *p = &g->params[i];
		h = nnc_hash(h, p->name, strlen(p->name));
		h = nnc_hash(h, &p->rank, sizeof p->rank);
		h = nnc_hash(h, p->dims, sizeof(int64_t) * (size_t)p->rank);
	}
	h = nnc_hash(h, &opt_kind, sizeof opt_kind);
	for (int i = 0; i < g->nstates; i++) { /* none before state existed: those hashes stay */
		ir_param *p = &g->states[i];
		h = nnc_hash(h, p->name, strlen(p->name));
		h = nnc_hash(h, p->dims, sizeof(int64_t) * (size_t)p->rank);
	}
	return h;
}

ir_param *ir_table_add(ir_param **rows, int *n, int64_t *floats, const ir_node *node, int id)
{
	/* grown by doubling (at each power of two): grown by one, the whole
	 * table was copied into the arena for every row (10,000 dense layers:
	 * 23 GB) */
	if ((*n & (*n - 1)) == 0)
		*rows = nnc_realloc_array(*rows, (size_t)*n, *n ? 2 * (size_t)*n : 1, sizeof(ir_param));
	ir_param *p = &(*rows)[(*n)++];
	memset(p, 0, sizeof *p);
	p->name = node->name;
	p->node = id;
	p->rank = node->rank;
	memcpy(p->dims, node->dims, sizeof(int64_t) * (size_t)node->rank);
	p->size = node->size;
	p->offset = *floats;
	/* keep every tensor 16-float (64-byte) aligned for vector loads */
	*floats += (node->size + 15) / 16 * 16;
	return p;
}

int ir_add_state(ir_graph *g, const char *name, int rank, const int64_t *dims, double init)
{
	int id = ir_add(g, IR_STATE, 0, NULL);
	ir_node *n = &g->nodes[id];
	ir_set_shape(n, false, rank, dims);
	n->name = name;
	n->param = g->nstates;
	ir_param *p = ir_table_add(&g->states, &g->nstates, &g->state_floats, n, id);
	p->init = NNRT_INIT_CONSTANT;
	p->init_arg = init;
	p->init_set = true;
	return id;
}

bool ir_op_mode_dependent(ir_op op)
{
	switch (op) {
	case IR_DROPOUT:
	case IR_BN_COMBINE: /* the batch's statistics, or the running ones */
	case IR_ATTN_OUT:   /* p v, or the whole attention from q, k, v */
		return true;
	default:
		return false;
	}
}
