/*
 * plan.c - static memory plan.
 *
 * Every tensor gets a place before any code is generated: the input, labels
 * and output are the caller's arrays; parameters and their gradients sit in
 * the params/grads arrays at the parameter's offset; everything else
 * (activations, their gradients, packed weights) goes into one workspace.
 * Workspace tensors whose lifetimes do not overlap share memory: nodes are
 * visited in execution order and each takes the lowest free range that fits,
 * given the tensors still alive (first fit).  Every op ends with a barrier,
 * so a range freed after a node's last reader can be reused by any later
 * node.  Offsets are multiples of 16 floats (64 bytes).
 */
#include <stdlib.h>

#include "ir.h"

typedef struct block {
	int64_t off, size;
	int last_use;
} block;

static int cmp_block(const void *a, const void *b)
{
	const block *x = a, *y = b;
	return (x->off > y->off) - (x->off < y->off);
}

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* Plans nodes [lo, hi) with lifetimes computed over [lo, hi); returns the
 * workspace size used. */
static int64_t plan_range(ir_graph *g, int lo, int hi, int64_t base)
{
	int *last = nnc_alloc(sizeof(int) * (size_t)g->n);
	for (int i = 0; i < g->n; i++)
		last[i] = i;
	for (int i = lo; i < hi; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		for (int k = 0; k < n->nin; k++)
			if (last[n->in[k]] < i)
				last[n->in[k]] = i;
	}
	block *live = nnc_alloc(sizeof(block) * (size_t)(hi - lo + 1));
	int nlive = 0;
	int64_t top = base;
	for (int i = lo; i < hi; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || n->storage != ST_NONE || n->size == 0)
			continue;
		if (!n->batched && n->rank == 0)
			continue; /* a loss: a scalar in metrics */
		/* drop blocks whose last reader has run */
		int k = 0;
		for (int j = 0; j < nlive; j++)
			if (live[j].last_use >= i)
				live[k++] = live[j];
		nlive = k;
		qsort(live, (size_t)nlive, sizeof(block), cmp_block);
		int64_t rows = n->layout == LAYOUT_CN ? g->bpad : g->batch;
		int64_t need = round16(n->batched ? n->size * rows : n->size);
		int64_t off = base;
		for (int j = 0; j < nlive; j++) {
			if (live[j].off - off >= need)
				break;
			if (live[j].off + live[j].size > off)
				off = live[j].off + live[j].size;
		}
		n->storage = ST_WS;
		n->offset = off;
		live[nlive++] = (block){off, need, last[i]};
		if (off + need > top)
			top = off + need;
	}
	return top;
}

void nnc_plan(ir_graph *g)
{
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		switch (n->op) {
		case IR_INPUT: n->storage = ST_INPUT; break;
		case IR_LABEL: n->storage = ST_LABEL; break;
		case IR_PARAM:
			n->storage = ST_PARAM;
			n->offset = g->params[n->param].offset;
			break;
		default: break;
		}
	}
	if (g->output >= 0)
		g->nodes[g->output].storage = ST_OUT;
	int64_t ws = plan_range(g, 0, g->n_train, 0);
	/* inference tail nodes other than the output (none today) */
	int64_t ws2 = plan_range(g, g->n_train, g->n, ws);
	g->ws_floats = ws > ws2 ? ws : ws2;
	if (g->ws_floats == 0)
		g->ws_floats = 16;
}
