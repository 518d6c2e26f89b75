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
 * weights, batch statistics) are read by all chunks, so they never share
 * memory.  A per-chunk partial (ir_per_chunk: a chunk's share of a batch
 * statistic) is placed like a batched tensor, in each chunk's copy.  A
 * combine op cuts the chunk loop into segments (cg.c): every chunk runs its
 * ops of a segment, a barrier, then each chunk merges all chunks' partials
 * into its own copy (chunk_copy) and runs the next segment; within one
 * chunk the ops still run in node order, so lifetimes in node order stay
 * right across the barriers.  The partials are never reused within a step:
 * another thread may read one after its own chunk has moved on.
 *
 * Non-trainable state (ST_STATE) has its own array, laid out by
 * ir_add_state; an op writing state writes its operand's tensor in place.
 * A node that stands for another in the eval step and inference (a folded
 * layer, pass_infer.c) writes that node's tensor.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

/*
 * The free ranges of the workspace during plan_range: `tail` and everything
 * above it, and below it the gaps, sorted by offset, disjoint and never
 * touching.  First fit takes the start of the lowest gap that is large
 * enough, else the tail: the same place as scanning every live block
 * sorted by offset, without the scan and the sort per node, which made
 * planning quadratic (10,000 layers, 7 s).  Gaps are few: most tensors die
 * in about the order they were made.
 */
typedef struct gap {
	int64_t off, end;
} gap;

typedef struct free_space {
	gap *v;
	int n, cap;
	int64_t tail;
} free_space;

static int64_t take(free_space *fs, int64_t need)
{
	for (int j = 0; j < fs->n; j++) {
		nnc_work.graph_steps++;
		if (fs->v[j].end - fs->v[j].off < need)
			continue;
		int64_t off = fs->v[j].off;
		fs->v[j].off += need;
		if (fs->v[j].off == fs->v[j].end) {
			memmove(&fs->v[j], &fs->v[j + 1], sizeof(gap) * (size_t)(fs->n - j - 1));
			fs->n--;
		}
		return off;
	}
	fs->tail += need;
	return fs->tail - need;
}

static void give_back(free_space *fs, int64_t off, int64_t end)
{
	nnc_work.graph_steps++;
	int lo = 0, hi = fs->n; /* the first gap above off */
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (fs->v[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < fs->n && fs->v[lo].off == end) { /* joins the gap above */
		end = fs->v[lo].end;
		memmove(&fs->v[lo], &fs->v[lo + 1], sizeof(gap) * (size_t)(fs->n - lo - 1));
		fs->n--;
	}
	if (lo > 0 && fs->v[lo - 1].end == off) { /* joins the gap below */
		off = fs->v[--lo].off;
		memmove(&fs->v[lo], &fs->v[lo + 1], sizeof(gap) * (size_t)(fs->n - lo - 1));
		fs->n--;
	}
	if (end == fs->tail) {
		fs->tail = off;
		return;
	}
	if (fs->n == fs->cap) {
		int cap = fs->cap ? 2 * fs->cap : 16;
		fs->v = nnc_realloc_array(fs->v, (size_t)fs->n, (size_t)cap, sizeof(gap));
		fs->cap = cap;
	}
	memmove(&fs->v[lo + 1], &fs->v[lo], sizeof(gap) * (size_t)(fs->n - lo));
	fs->v[lo] = (gap){off, end};
	fs->n++;
}

static int64_t round16(int64_t n) { return (n + 15) / 16 * 16; }

/* Plans the batched (or, with !batched, the unbatched) nodes of the list
 * ids[0..nids) (increasing) with lifetimes computed over that list; returns
 * the workspace size used.  Unbatched tensors keep their memory for the
 * whole step when `pinned`. */
static int64_t plan_range(ir_graph *g, const int *ids, int nids, int64_t base, bool batched, bool pinned)
{
	int *last = nnc_alloc(sizeof(int) * (size_t)g->n);
	bool cross = false; /* some combine is a chunk_copy */
	for (int i = 0; i < g->n; i++) {
		last[i] = i;
		cross |= !g->nodes[i].dead && g->nodes[i].chunk_copy;
	}
	for (int t = 0; t < nids; t++) {
		int i = ids[t];
		ir_node *n = &g->nodes[i];
		if (n->dead)
			continue;
		/* a late op may run after every other op of the list */
		int at = n->late ? ids[nids - 1] : i;
		for (int k = 0; k < n->nin; k++)
			if (last[n->in[k]] < at)
				last[n->in[k]] = at;
		/* written by its operand's epilogue, while that op still reads its
		 * own operands: they must not be given this tensor's memory */
		for (int k = 0; n->in_epilogue && k < g->nodes[n->in[0]].nin; k++)
			if (last[g->nodes[n->in[0]].in[k]] < i)
				last[g->nodes[n->in[0]].in[k]] = i;
	}
	/* the nodes whose memory is free once node j has run: dies[j], a list
	 * through next_dead (pinned ones never are) */
	int *dies = nnc_alloc(sizeof(int) * (size_t)g->n), *next_dead = nnc_alloc(sizeof(int) * (size_t)g->n);
	int64_t *size = nnc_alloc(sizeof(int64_t) * (size_t)g->n); /* of each block placed */
	for (int i = 0; i < g->n; i++)
		dies[i] = -1;
	int freed = nids ? ids[0] : 0; /* dies[ids[0] .. freed) are given back */
	free_space fs = {.tail = base};
	int64_t top = base;
	for (int t = 0; t < nids; t++) {
		int i = ids[t];
		ir_node *n = &g->nodes[i];
		if (n->dead || n->storage != ST_NONE || n->size == 0)
			continue;
		if (!n->batched && n->rank == 0)
			continue; /* a loss: a scalar in metrics */
		if ((n->batched || ir_per_chunk(n)) != batched)
			continue; /* a per-chunk partial lives in the chunk's copy */
		int sf = ir_stands_for(n);
		if (sf >= 0) { /* writes the tensor of the node it stands for, planned before it */
			NNC_ASSERT(sf < i && g->nodes[sf].storage != ST_NONE);
			n->storage = g->nodes[sf].storage;
			n->offset = g->nodes[sf].offset;
			continue;
		}
		/* give back the blocks whose last reader has run */
		for (; freed < i; freed++)
			for (int d = dies[freed]; d >= 0; d = next_dead[d])
				give_back(&fs, g->nodes[d].offset, g->nodes[d].offset + size[d]);
		int64_t rows = n->layout == LAYOUT_CN ? g->bpad : g->cbatch;
		int64_t need = round16(n->batched ? n->size * rows : n->size);
		int64_t off = take(&fs, need);
		n->storage = ST_WS;
		n->offset = off;
		size[i] = need;
		/* a partial that the combines of every chunk read (chunk_copy):
		 * other threads may still read it while this chunk runs on */
		bool shared = cross && (n->op == IR_BN_PARTIAL || n->op == IR_BN_BWD_PARTIAL);
		if (!pinned && !shared) {
			next_dead[i] = dies[last[i]];
			dies[last[i]] = i;
		}
		if (off + need > top)
			top = off + need;
	}
	return top;
}

/* The blocks whose sums of squares the update keeps in ws_norm: one per
 * IR_UPDATE_BLOCK floats of parameters when it clips the global norm. */
static int64_t norm_blocks(const ir_graph *g)
{
	for (int i = 0; i < g->n; i++)
		if (!g->nodes[i].dead && ir_is_update(g->nodes[i].op) && (g->nodes[i].ia[0] & NNRT_OPTF_CLIP_NORM))
			return (g->param_floats + IR_UPDATE_BLOCK - 1) / IR_UPDATE_BLOCK;
	return 0;
}

bool ir_ownable(const ir_graph *g, const ir_node *n)
{
	if (n->dead || n->op != IR_DENSE_BWD_W || g->chunks < 2 || !ir_has_update(g) || n->storage != ST_GRAD ||
	    n->param < 0 || !(n->entries & IR_ENTRY_TRAIN))
		return false;
	int64_t R = ir_rows(n), M = g->nodes[n->in[0]].size / R, N = g->nodes[n->in[1]].size / R;
	return M * N == g->params[n->param].size && M * N >= IR_OWNED_MIN_FLOATS;
}

/* Which part of a step a node belongs to in the parallel schedule. */
ir_phase ir_node_phase(const ir_graph *g, const ir_node *n)
{
	if (ir_is_update(n->op))
		return PHASE_UPDATE;
	if (n->op == IR_BN_COMBINE || n->op == IR_BN_BWD_COMBINE)
		return PHASE_COMBINE;
	if (n->batched || ir_per_chunk(n))
		return PHASE_SAMPLE;
	for (int k = 0; k < n->nin; k++)
		if (g->nodes[n->in[k]].batched || ir_per_chunk(&g->nodes[n->in[k]]))
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
 * grads, losses into metrics) and read by nothing but the update.  Sums
 * that the pass itself needs (batch statistics) are per-chunk partials
 * merged by a combine op between two segments of the chunk loop: those
 * keep the chunks. */
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
		case IR_STATE:
			n->storage = ST_STATE;
			n->offset = g->states[n->param].offset;
			break;
		default:
			if (ir_writes_state(n)) { /* in place */
				n->storage = ST_STATE;
				n->offset = g->nodes[n->in[0]].offset;
			}
			break;
		}
	}
	if (g->output >= 0)
		g->nodes[g->output].storage = ST_OUT;
	ir_settle_infer(g);
	choose_chunks(g);
	bool chunked = g->chunks > 1;
	/* With chunks, every chunk merges the partials itself (one barrier per
	 * combine, before it) instead of the threads splitting the merge and
	 * waiting for each other again after it. */
	bool train = ir_has_update(g);
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		n->chunk_copy = chunked && train && !n->dead && (n->op == IR_BN_COMBINE || n->op == IR_BN_BWD_COMBINE);
		n->late = ir_ownable(g, n);
	}
	/* The entries run one at a time, so each could have its own plan; one
	 * plan serves all instead: the nodes of the train and eval steps with
	 * lifetimes over both lists merged in node order (for a node in one
	 * step only, a conservative lifetime), then the nodes only inference
	 * runs (the tail), above them.  Each node has one place whatever the
	 * entry, and inference reads the forward tensors where the steps put
	 * them. */
	int *step = nnc_alloc(sizeof(int) * (size_t)g->n + 1), *rest = nnc_alloc(sizeof(int) * (size_t)g->n + 1);
	int nstep = 0, nrest = 0;
	for (int i = 0; i < g->n; i++) {
		if (g->nodes[i].dead)
			continue;
		if (g->nodes[i].entries & (IR_ENTRY_TRAIN | IR_ENTRY_EVAL))
			step[nstep++] = i;
		else
			rest[nrest++] = i;
	}
	int64_t sh = plan_range(g, step, nstep, 0, false, chunked);
	g->ws_shared = plan_range(g, rest, nrest, sh, false, chunked);
	int64_t ws = plan_range(g, step, nstep, 0, true, false);
	/* inference tail nodes other than the output (a layout conversion) */
	int64_t ws2 = plan_range(g, rest, nrest, ws, true, false);
	g->ws_chunk = ws > ws2 ? ws : ws2;
	/* Chunks 1.. hand the update whole partial gradient vectors whenever the
	 * step has an update, also when no node writes a gradient (a loss that
	 * reaches no parameter: the chunks then write zeros, cg.c's
	 * clear_unwritten).  Only --inference-only (ir_drop_training) needs none. */
	g->ws_partials = g->ws_shared;
	g->ws_metrics = g->ws_partials + (chunked && ir_has_update(g) ? (g->chunks - 1) * g->param_floats : 0);
	g->ws_norm = g->ws_metrics + (chunked ? round16(4 * g->chunks) : 0);
	g->ws_chunk0 = g->ws_norm + round16(2 * norm_blocks(g));
	g->ws_floats = g->ws_chunk0 + g->chunks * g->ws_chunk;
	if (g->ws_floats == 0)
		g->ws_floats = 16;
}
