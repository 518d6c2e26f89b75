/*
 * pass_infer.c - the inference tail: the value prediction reports (softmax of
 * the logits, or a copy of the output), appended after the training nodes.
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
	int id = sema_add_shaped(s, op, 1, &out, g->nodes[out].loc);
	NNC_ASSERT(id >= 0);
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
