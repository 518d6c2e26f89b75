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
 *
 * The parallel schedule (docs/architecture.md) cuts the batch into chunks
 * that run the whole pass on one thread each, so the workspace is
 *   [unbatched tensors][partial gradients][partial metrics][chunk 0]...[chunk K-1]
 * where each chunk holds every batched tensor for cbatch samples (batched
 * offsets are relative to the chunk's start).  Unbatched tensors (packed
 * weights) are written before the chunks run and read by all of them, so they
 * never share memory.
 */
#include <stdbool.h>
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

/* Plans the batched (or, with !batched, the unbatched) nodes of [lo, hi)
 * with lifetimes computed over [lo, hi); returns the workspace size used.
 * Unbatched tensors keep their memory for the whole step when `pinned`. */
static int64_t plan_range(ir_graph *g, int lo, int hi, int64_t base, bool batched, bool pinned)
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
		/* written by its operand's epilogue, while that op still reads its
		 * own operands: they must not be given this tensor's memory */
		for (int k = 0; n->in_epilogue && k < g->nodes[n->in[0]].nin; k++)
			if (last[g->nodes[n->in[0]].in[k]] < i)
				last[g->nodes[n->in[0]].in[k]] = i;
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
		if (n->batched != batched)
			continue;
		/* drop blocks whose last reader has run */
		int k = 0;
		for (int j = 0; j < nlive; j++)
			if (live[j].last_use >= i)
				live[k++] = live[j];
		nlive = k;
		qsort(live, (size_t)nlive, sizeof(block), cmp_block);
		int64_t rows = n->layout == LAYOUT_CN ? g->bpad : g->cbatch;
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
		live[nlive++] = (block){off, need, pinned ? g->n : last[i]};
		if (off + need > top)
			top = off + need;
	}
	return top;
}

/* Which part of a step a node belongs to in the parallel schedule. */
ir_phase ir_node_phase(const ir_graph *g, const ir_node *n)
{
	if (n->op == IR_SGD_UPDATE || n->op == IR_ADAM_UPDATE)
		return PHASE_UPDATE;
	if (n->batched)
		return PHASE_SAMPLE;
	for (int k = 0; k < n->nin; k++)
		if (g->nodes[n->in[k]].batched)
			return PHASE_REDUCE;
	return PHASE_PARAM;
}

bool ir_has_update(const ir_graph *g)
{
	for (int i = 0; i < g->n; i++)
		if (!g->nodes[i].dead && ir_node_phase(g, &g->nodes[i]) == PHASE_UPDATE)
			return true;
	return false;
}

/* Chunks pay off only when the step is a forward/backward pass over samples
 * with weight-shaped results that are summed over samples (gradients into
 * grads, losses into metrics) and read by nothing but the update. */
static bool chunkable(const ir_graph *g)
{
	bool *late = nnc_alloc((size_t)g->n); /* needs a sum over the chunks */
	for (int i = 0; i < g->n; i++) {
		const ir_node *n = &g->nodes[i];
		if (n->dead || n->op == IR_INPUT || n->op == IR_LABEL || n->op == IR_PARAM)
			continue;
		ir_phase ph = ir_node_phase(g, n);
		bool reads_late = false;
		for (int k = 0; k < n->nin; k++)
			reads_late |= late[n->in[k]];
		if (ph == PHASE_REDUCE) {
			if (reads_late || !(n->rank == 0 || n->storage == ST_GRAD))
				return false;
			late[i] = true;
		} else if (ph != PHASE_UPDATE && reads_late) {
			return false;
		}
	}
	return true;
}

static void choose_chunks(ir_graph *g)
{
	int64_t k = g->chunks > 0 ? g->chunks : NNC_DEFAULT_CHUNKS;
	if (k > g->batch)
		k = g->batch;
	if (k > 1 && !chunkable(g))
		k = 1;
	g->chunks = k;
	g->cbatch = (g->batch + k - 1) / k;
	g->bpad = round16(g->cbatch);
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
	choose_chunks(g);
	bool chunked = g->chunks > 1;
	int64_t sh = plan_range(g, 0, g->n_train, 0, false, chunked);
	g->ws_shared = plan_range(g, g->n_train, g->n, sh, false, chunked);
	int64_t ws = plan_range(g, 0, g->n_train, 0, true, false);
	/* inference tail nodes other than the output (none today) */
	int64_t ws2 = plan_range(g, g->n_train, g->n, ws, true, false);
	g->ws_chunk = ws > ws2 ? ws : ws2;
	/* Chunks 1.. hand the update whole partial gradient vectors whenever the
	 * step has an update, also when no node writes a gradient (a loss that
	 * reaches no parameter: the chunks then write zeros, cg.c's
	 * clear_unwritten).  Only --inference-only (ir_drop_training) needs none. */
	g->ws_partials = g->ws_shared;
	g->ws_metrics = g->ws_partials + (chunked && ir_has_update(g) ? (g->chunks - 1) * g->param_floats : 0);
	g->ws_chunk0 = g->ws_metrics + (chunked ? round16(4 * g->chunks) : 0);
	g->ws_floats = g->ws_chunk0 + g->chunks * g->ws_chunk;
	if (g->ws_floats == 0)
		g->ws_floats = 16;
}
