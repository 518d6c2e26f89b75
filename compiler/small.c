/*
 * small.c - the sample-major inference graph for a few samples.
 *
 * Convolution and pooling keep the batch innermost (CN, docs/architecture.md
 * "Layouts") so that their kernels fill 16 lanes with 16 samples.  With one
 * sample, 15 of those lanes compute nothing: inference on a handful of
 * samples would run at a sixteenth of the machine.  So nnc also compiles the
 * inference graph a second time, every tensor sample-major (NC), where the
 * convolution kernels vectorise over output columns instead (cg_conv.c), and
 * the generated infer() picks that version for n <= NNC_SMALL_BATCH.
 *
 * The copy keeps the ancestors of the inference output only, drops the
 * layout conversions (an NC tensor is stored like the input it came from),
 * and is planned for NNC_SMALL_BATCH samples in one chunk.  Parameters,
 * input, output and workspace are the same arrays as the main graph's (the
 * workspace grows if the copy needs more).
 */
#include <string.h>

#include "ir.h"

static bool uses_cn(const ir_graph *g, const bool *need)
{
	for (int i = 0; i < g->n; i++)
		if (need[i] && g->nodes[i].batched && g->nodes[i].layout == LAYOUT_CN)
			return true;
	return false;
}

ir_graph *nnc_small_batch(ir_graph *g)
{
	if (g->output < 0)
		return NULL;
	bool *need = ir_ancestors(g, g->output);
	if (!uses_cn(g, need))
		return NULL; /* the main graph is sample-major already */

	/* A training build's eval and inference run a layer and its batchnorm
	 * folded (pass_infer.c): the copy takes the two, as the train step has
	 * them (their entries are the train step's alone now, and the folded
	 * layer, which nothing reads, is not an ancestor), and folds them
	 * itself, below. */
	bool *unfold = nnc_alloc((size_t)g->n), folded = false;
	for (int i = 0; i < g->n; i++) {
		const ir_node *n = &g->nodes[i];
		int sf = ir_stands_for(n);
		folded |= !n->dead && (sf >= 0 || n->op == IR_BN_FOLD_W);
		if (!n->dead && sf >= 0)
			unfold[sf] = unfold[g->nodes[sf].in[0]] = true;
	}
	ir_graph *s = nnc_alloc(sizeof *s);
	*s = *g;
	s->nodes = nnc_alloc(sizeof(ir_node) * (size_t)g->n);
	memcpy(s->nodes, g->nodes, sizeof(ir_node) * (size_t)g->n);
	/* nnc_fold_batchnorm renumbers the nodes the tables name: the copy's own */
	s->params = nnc_alloc(sizeof(ir_param) * (size_t)(g->nparams + 1));
	if (g->nparams)
		memcpy(s->params, g->params, sizeof(ir_param) * (size_t)g->nparams);
	s->states = nnc_alloc(sizeof(*s->states) * (size_t)(g->nstates + 1));
	if (g->nstates) /* no states: g->states is NULL */
		memcpy(s->states, g->states, sizeof(*s->states) * (size_t)g->nstates);
	/* a conversion's users read its operand instead */
	int *alias = nnc_alloc(sizeof(int) * (size_t)g->n);
	for (int i = 0; i < s->n; i++) {
		ir_node *n = &s->nodes[i];
		alias[i] = i;
		for (int k = 0; k < n->nin; k++)
			n->in[k] = alias[n->in[k]];
		if (!need[i] || n->dead) {
			n->dead = true;
			continue;
		}
		if (n->op == IR_TO_CN || n->op == IR_TO_NC) {
			alias[i] = n->in[0];
			n->dead = true;
			continue;
		}
		n->layout = LAYOUT_NC;
		if (unfold[i])
			n->entries |= IR_ENTRY_EVAL | IR_ENTRY_INFER;
		n->entries &= (uint8_t)~IR_ENTRY_TRAIN; /* a mode-dependent op: its eval lowering only */
		if (n->storage == ST_WS)
			n->storage = ST_NONE; /* planned again below */
	}
	/* the output is an alias target now if it was a conversion */
	int out = alias[g->output];
	if (out != g->output) {
		/* the value reaching the output was computed in CN and converted:
		 * it is now written directly to the caller's array */
		s->nodes[out].storage = ST_NONE;
	}
	s->output = out;
	ir_drop_dead_act_dst(s);
	if (folded) {
		nnc_fold_batchnorm(s);
		for (int i = 0; i < s->n; i++) /* the layers' copies were shaped as the main graph's */
			s->nodes[i].layout = LAYOUT_NC;
	}
	s->loss = -1;
	s->batch = NNC_SMALL_BATCH;
	s->chunks = 1;
	nnc_plan(s);
	if (s->ws_floats > g->ws_floats) /* one workspace serves both */
		g->ws_floats = s->ws_floats;
	return s;
}
