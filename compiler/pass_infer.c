/*
 * pass_infer.c - the passes for inference: the inference tail (the value
 * prediction reports: softmax of the logits, or a copy of the output),
 * appended after the training nodes; and batchnorm folded into the layer
 * before it, for the whole program with --inference-only, for the eval
 * step and inference in a training build.
 */

#include "sema.h"

/* Appends the inference tail: the value prediction reports, into ST_OUT. */
static void add_output_tail(sema *s)
{
	ir_graph *g = s->g;
	int out = g->output;
	if (out < 0 && g->loss >= 0)
		out = g->nodes[g->loss].in[0];
	if (out < 0)
		return;
	out = sema_relayout(s, out, LAYOUT_NC);
	ir_op op = (g->output < 0 && g->loss_kind == NNRT_LOSS_SOFTMAX_XENT) ? IR_SOFTMAX : IR_COPY;
	if (g->output < 0 && g->loss_kind == NNRT_LOSS_SEQ_XENT)
		op = IR_SOFTMAX_LAST; /* per position: rows of V (ia[1]) */
	int id = sema_add_shaped(s, op, 1, &out, g->nodes[out].loc);
	NNC_ASSERT(id >= 0);
	if (op == IR_SOFTMAX_LAST)
		g->nodes[id].ia[1] = g->label_vocab;
	g->output = id;
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

/*
 * Batchnorm folding.  Without a train step, a batchnorm normalises with its
 * running statistics, an affine map per channel:
 *   y = (z - mean) s + beta,  s = gamma / sqrt(var + eps)
 * so after z = x W + b (or a convolution) it is the same layer with
 *   W' = W s (per output channel),  b' = (b - mean) s + beta,
 * computed once per call by two ops on parameters and state (before the
 * chunks), and one pass over the activations fewer.
 *
 * --inference-only (nnc_fold_batchnorm): the batchnorm's position in the
 * node order is where the layer's copy goes (after the statistics and
 * gamma, beta, which sema made after the layer), and the layer and the
 * batchnorm go.
 *
 * A training build (nnc_fold_batchnorm_eval): the train step still runs the
 * layer and the batchnorm (batch statistics, and the backward pass reads
 * both tensors), so they stay, for the train step only; the two ops and the
 * layer's copy come right after the batchnorm, for the eval step and
 * inference only, and the copy writes the batchnorm's tensor
 * (ir_node.stands_for), which the readers after it read in every entry.
 * Right after: nothing between the batchnorm and the copy reads that
 * tensor, and the copy, which reads the layer's input, runs after the
 * batchnorm's tensor has its memory, so the plan (plan.c) never gives that
 * input and that tensor one place.
 *
 * Either way the graph is rebuilt with two or three nodes more per fold and
 * every reference renumbered.
 */

enum { EI = IR_ENTRY_EVAL | IR_ENTRY_INFER };

/* With `keep` (a training build), eval and inference must run the layer and
 * the batchnorm alike, and the batchnorm must be the layer's only reader
 * there (the train step's readers stay); without, its only reader. */
static bool foldable(const ir_graph *g, const int *uses, int bn, bool keep)
{
	const ir_node *n = &g->nodes[bn];
	if (n->dead || n->op != IR_BATCHNORM || ir_bn_residual(n) || n->act_dst >= 0)
		return false;
	int l = n->in[0];
	const ir_node *ln = &g->nodes[l];
	if (keep && (!(n->entries & EI) || (ln->entries & EI) != (n->entries & EI)))
		return false;
	return (ln->op == IR_DENSE || ln->op == IR_CONV2D) && uses[l] == 1 && l != g->output && ln->act == ACT_NONE &&
	       ln->act_dst < 0 && ln->storage == ST_NONE;
}

static void fold(ir_graph *g, bool keep)
{
	/* readers in eval and inference (--inference-only has no others) */
	int *uses = nnc_alloc(sizeof(int) * (size_t)(g->n + 1));
	for (int i = 0; i < g->n; i++)
		for (int k = 0; !g->nodes[i].dead && (g->nodes[i].entries & EI) && k < g->nodes[i].nin; k++)
			uses[g->nodes[i].in[k]]++;
	int nfold = 0;
	for (int i = 0; i < g->n; i++)
		nfold += foldable(g, uses, i, keep);
	if (!nfold)
		return;
	ir_node *old = g->nodes;
	const ir_graph og = {.nodes = old, .output = g->output};
	int n0 = g->n, *map = nnc_alloc(sizeof(int) * (size_t)n0);
	g->cap = n0 + 3 * nfold;
	g->nodes = nnc_alloc(sizeof(ir_node) * (size_t)g->cap);
	g->n = 0;
	for (int i = 0; i < n0; i++) {
		ir_node *o = &old[i];
		bool f = foldable(&og, uses, i, keep);
		if (!f || keep) {
			ir_node *n = &g->nodes[g->n];
			*n = *o;
			for (int k = 0; k < n->nin; k++)
				n->in[k] = map[n->in[k]];
			if (n->act_dst >= 0)
				n->act_dst = -1 - n->act_dst; /* renumbered below: a later node */
			if (n->stands_for)
				n->stands_for = 1 + map[n->stands_for - 1]; /* an earlier node */
			map[i] = g->n++;
			if (!f)
				continue;
		}
		const ir_node *l = &old[o->in[0]];
		bool affine = o->nin > 2, bias = l->nin > 2;
		uint8_t entries = keep ? (uint8_t)(o->entries & EI) : o->entries;
		ir_node base = {.param = -1, .act_dst = -1, .entries = entries, .loc = o->loc};
		/* W' = W s */
		ir_node *w = &g->nodes[g->n];
		*w = base;
		w->op = IR_BN_FOLD_W;
		w->in[w->nin++] = map[l->in[1]];
		w->in[w->nin++] = map[o->in[1]];
		if (affine)
			w->in[w->nin++] = map[o->in[2]];
		w->ia[0] = l->op == IR_CONV2D;
		NNC_ASSERT(ir_infer_shape(g, g->n));
		int wid = g->n++;
		/* b' = (b - mean) s + beta */
		ir_node *b = &g->nodes[g->n];
		*b = base;
		b->op = IR_BN_FOLD_B;
		b->in[b->nin++] = map[o->in[1]];
		if (affine) {
			b->in[b->nin++] = map[o->in[2]];
			b->in[b->nin++] = map[o->in[3]];
		}
		if (bias)
			b->in[b->nin++] = map[l->in[2]];
		b->ia[0] = affine;
		b->ia[1] = bias;
		NNC_ASSERT(ir_infer_shape(g, g->n));
		int bid = g->n++;
		/* the layer again, at the batchnorm's place, with its activation */
		ir_node *y = &g->nodes[g->n];
		*y = *l;
		y->in[0] = map[l->in[0]];
		y->in[1] = wid;
		y->in[2] = bid;
		y->nin = 3;
		y->act = o->act;
		y->fa[IR_FA_ACT] = o->fa[IR_FA_ACT];
		y->name = o->name ? o->name : l->name;
		y->entries = entries;
		NNC_ASSERT(ir_infer_shape(g, g->n));
		if (keep) { /* the train step's alone now; the copy writes bn's tensor */
			y->stands_for = 1 + map[i];
			g->nodes[map[o->in[0]]].entries &= (uint8_t)~EI;
			g->nodes[map[i]].entries &= (uint8_t)~EI;
			g->n++;
		} else {
			g->nodes[map[o->in[0]]].dead = true; /* the layer's only reader was the batchnorm */
			map[i] = g->n++;
		}
	}
	for (int i = 0; i < g->n; i++)
		if (g->nodes[i].act_dst < -1)
			g->nodes[i].act_dst = map[-1 - g->nodes[i].act_dst];
	int *roots[] = {&g->input, &g->label, &g->loss, &g->output};
	for (size_t r = 0; r < sizeof roots / sizeof roots[0]; r++)
		if (*roots[r] >= 0)
			*roots[r] = map[*roots[r]];
	for (int p = 0; p < g->nparams; p++)
		g->params[p].node = map[g->params[p].node];
	for (int s = 0; s < g->nstates; s++)
		g->states[s].node = map[g->states[s].node];
}

void nnc_fold_batchnorm(ir_graph *g) { fold(g, false); }

void nnc_fold_batchnorm_eval(ir_graph *g) { fold(g, true); }
