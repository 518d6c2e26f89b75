/*
 * cg_dist.c - the calls a chunked train or eval body makes into the
 * runtime's data-parallel layer (runtime/dist.c, docs/distributed.md).
 *
 * Data parallelism over processes (MPI ranks) reuses the chunks of the
 * parallel schedule: a rank runs whole chunks of the global batch and the
 * runtime copies every chunk's per-chunk results (batch-statistic partials
 * before each combine, partial gradients and metrics before the update)
 * to every rank, bytes only, so that each rank's update sums the same
 * partials in the same chunk order as one process does.  The generated
 * code only asks which chunks are its rank's (nnrt_dist_span) and says when
 * and where partials are complete (nnrt_dist_sync, with a constant table
 * of where they live); in a run of one process both return at once, the
 * span being every chunk, so the body does exactly what it did before.
 */
#include "cg.h"

#include <stdlib.h>

/* A private constant i64 array in the module: the table a sync passes. */
static LLVMValueRef const_table(cg_ctx *c, const int64_t *v, int n)
{
	LLVMValueRef *e = nnc_alloc(sizeof(LLVMValueRef) * (size_t)n);
	for (int i = 0; i < n; i++)
		e[i] = cg_i64(c, v[i]);
	LLVMValueRef arr = LLVMConstArray2(c->i64, e, (uint64_t)n);
	LLVMValueRef gv = LLVMAddGlobal(c->M, LLVMTypeOf(arr), "nnrt.dist.table");
	LLVMSetInitializer(gv, arr);
	LLVMSetGlobalConstant(gv, 1);
	LLVMSetLinkage(gv, LLVMPrivateLinkage);
	return gv;
}

static void call_sync(cg_ctx *c, LLVMValueRef table)
{
	LLVMTypeRef pt[4] = {c->ptr, c->i32, c->i32, c->ptr};
	LLVMTypeRef ft = LLVMFunctionType(c->vt, pt, 4, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->M, "nnrt_dist_sync");
	if (!fn)
		fn = LLVMAddFunction(c->M, "nnrt_dist_sync", ft);
	LLVMValueRef a[4] = {c->args, c->tid, c->nth, table};
	LLVMBuildCall2(c->B, ft, fn, a, 4, "");
}

void cg_dist_span(cg_ctx *c, LLVMValueRef *lo, LLVMValueRef *hi)
{
	LLVMTypeRef pt[3] = {c->ptr, c->i64, c->ptr};
	LLVMTypeRef ft = LLVMFunctionType(c->vt, pt, 3, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->M, "nnrt_dist_span");
	if (!fn)
		fn = LLVMAddFunction(c->M, "nnrt_dist_span", ft);
	LLVMValueRef span = cg_alloca(c, LLVMArrayType2(c->i64, 2), "span");
	LLVMValueRef a[3] = {c->args, cg_i64(c, c->g->chunks), span};
	LLVMBuildCall2(c->B, ft, fn, a, 3, "");
	LLVMValueRef one = cg_i64(c, 1);
	*lo = cg_load(c, c->i64, span);
	*hi = cg_load(c, c->i64, LLVMBuildInBoundsGEP2(c->B, c->i64, span, &one, 1, ""));
}

void cg_dist_sync_partials(cg_ctx *c, const int *ids, int n)
{
	ir_graph *g = c->g;
	int operands = 0;
	for (int j = 0; j < n; j++)
		operands += g->nodes[ids[j]].nin;
	int64_t *v = nnc_alloc(sizeof(int64_t) * (size_t)(NNRT_DIST_TENSORS + 2 * operands));
	int k = NNRT_DIST_TENSORS;
	for (int j = 0; j < n; j++) {
		const ir_node *nd = &g->nodes[ids[j]];
		for (int i = 0; i < nd->nin; i++) {
			const ir_node *in = &g->nodes[nd->in[i]];
			if (in->storage != ST_WS || !ir_per_chunk(in))
				continue;
			bool seen = false;
			for (int s = NNRT_DIST_TENSORS; s < k; s += 2)
				seen |= v[s] == in->offset;
			if (!seen) {
				v[k++] = in->offset;
				v[k++] = in->size;
			}
		}
	}
	if (k == NNRT_DIST_TENSORS)
		return;
	v[NNRT_DIST_KIND] = NNRT_DIST_PARTIALS;
	v[NNRT_DIST_CHUNKS] = g->chunks;
	v[NNRT_DIST_CBATCH] = g->cbatch;
	v[NNRT_DIST_WS_CHUNK0] = g->ws_chunk0;
	v[NNRT_DIST_WS_CHUNK] = g->ws_chunk;
	v[NNRT_DIST_COUNT] = (k - NNRT_DIST_TENSORS) / 2;
	call_sync(c, const_table(c, v, k));
}

/* Whether node nd writes floats [lo, hi) of grads. */
static bool writes_grads(const ir_graph *g, const ir_node *nd, int64_t lo, int64_t hi)
{
	for (int pass = 0; pass < 2; pass++) {
		if (nd->storage == ST_GRAD && nd->offset < hi && nd->offset + nd->size > lo)
			return true;
		if (pass || nd->act_dst < 0) /* its activation's tensor is written by it too */
			break;
		nd = &g->nodes[nd->act_dst];
	}
	return false;
}

/* A train body's FINAL table with its gradient buckets.  A parameter's
 * gradient (with the padding after it) is complete after the last op of
 * the chunk loop that writes it (in_loop[j]: ids[j] runs once per chunk;
 * one outside the loop: complete only at the end, when the gradient of a
 * parameter that the loss does not reach is complete from the start, the
 * chunk's first clearing having written it).  Buckets gather parameters
 * from the last (the highest offset: the last layer, whose gradient the
 * backward pass completes first) down, a bucket closing when the next
 * parameter would take it beyond BUCKET_FLOATS floats (64 KiB: a few
 * messages for a small net, each one's exchange starting when its last
 * parameter is complete; a larger parameter makes a bucket of its own), or
 * the environment's NNC_DIST_BUCKET floats (1: a bucket per parameter, as
 * the tests use).
 * ready[j] (ids positions) = how many buckets, in that order, are complete
 * after op j. */
enum { BUCKET_FLOATS = 16384 };

static int64_t bucket_floats(void)
{
	const char *e = getenv("NNC_DIST_BUCKET");
	long long v = e && *e ? strtoll(e, NULL, 10) : 0;
	return v > 0 ? v : BUCKET_FLOATS;
}

cg_dist_plan *cg_dist_plan_final(cg_ctx *c, bool metrics, bool update, const int *ids, int n, const bool *in_loop)
{
	ir_graph *g = c->g;
	cg_dist_plan *pl = nnc_alloc(sizeof *pl);
	pl->ready = nnc_alloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
	int np = update ? g->nparams : 0;
	int64_t *v = nnc_alloc(sizeof(int64_t) * (size_t)(NNRT_DIST_BUCKET0 + 2 * np + 2));
	v[NNRT_DIST_KIND] = update && np ? NNRT_DIST_FINAL_BUCKETS : NNRT_DIST_FINAL;
	v[NNRT_DIST_CHUNKS] = g->chunks;
	v[NNRT_DIST_CBATCH] = g->cbatch;
	v[NNRT_DIST_WS_PARTIALS] = update ? g->ws_partials : -1;
	v[NNRT_DIST_PARAM_FLOATS] = update ? g->param_floats : 0;
	v[NNRT_DIST_WS_METRICS] = metrics ? g->ws_metrics : -1;
	if (v[NNRT_DIST_KIND] == NNRT_DIST_FINAL) {
		pl->table = const_table(c, v, NNRT_DIST_TENSORS);
		return pl;
	}
	/* the parameters by offset, last first; each one's region runs to the
	 * next one's start (its padding included), the last one's to the end */
	int *order = nnc_alloc(sizeof(int) * (size_t)np);
	for (int p = 0; p < np; p++) {
		int q = p;
		while (q > 0 && g->params[order[q - 1]].offset < g->params[p].offset) {
			order[q] = order[q - 1];
			q--;
		}
		order[q] = p;
	}
	int64_t *bucket_ready = nnc_alloc(sizeof(int64_t) * (size_t)np);
	int nb = 0;
	/* the open bucket: [open, end), complete after op `at` */
	int64_t end = g->param_floats, open = end, at = -1, cap = bucket_floats();
	for (int i = 0; i < np; i++) {
		const ir_param *pr = &g->params[order[i]];
		int64_t lo = i + 1 == np ? 0 : pr->offset; /* its region: [lo, open) */
		if (open < end && end - lo > cap) {        /* it does not fit: close the bucket */
			v[NNRT_DIST_BUCKET0 + 2 * nb] = open;
			v[NNRT_DIST_BUCKET0 + 2 * nb + 1] = end - open;
			bucket_ready[nb++] = at;
			end = open;
			at = -1;
		}
		for (int j = 0; j < n; j++)
			if (writes_grads(g, &g->nodes[ids[j]], pr->offset, pr->offset + pr->size)) {
				int64_t w = in_loop[j] ? j : n; /* n: not before the end */
				at = w > at ? w : at;
			}
		open = lo;
	}
	if (open < end) {
		v[NNRT_DIST_BUCKET0 + 2 * nb] = open;
		v[NNRT_DIST_BUCKET0 + 2 * nb + 1] = end - open;
		bucket_ready[nb++] = at;
	}
	v[NNRT_DIST_NBUCKETS] = nb;
	/* in order: bucket b goes when it and the buckets before it are complete */
	for (int b = 1; b < nb; b++)
		if (bucket_ready[b] < bucket_ready[b - 1])
			bucket_ready[b] = bucket_ready[b - 1];
	for (int j = 0, b = 0; j < n; j++) {
		while (b < nb && bucket_ready[b] <= j)
			b++;
		pl->ready[j] = b;
	}
	pl->nbuckets = nb;
	pl->table = const_table(c, v, NNRT_DIST_BUCKET0 + 2 * nb);
	return pl;
}

void cg_dist_ready(cg_ctx *c, const cg_dist_plan *pl, int j, LLVMValueRef k)
{
	if (!pl || !pl->nbuckets)
		return;
	LLVMTypeRef pt[5] = {c->ptr, c->i32, c->i64, c->i64, c->ptr};
	LLVMTypeRef ft = LLVMFunctionType(c->vt, pt, 5, 0);
	LLVMValueRef fn = LLVMGetNamedFunction(c->M, "nnrt_dist_ready");
	if (!fn)
		fn = LLVMAddFunction(c->M, "nnrt_dist_ready", ft);
	LLVMValueRef a[5] = {c->args, c->tid, k, cg_i64(c, pl->ready[j]), pl->table};
	LLVMBuildCall2(c->B, ft, fn, a, 5, "");
}

void cg_dist_sync_final(cg_ctx *c, const cg_dist_plan *pl)
{
	call_sync(c, pl->table);
}
