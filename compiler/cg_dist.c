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

void cg_dist_sync_final(cg_ctx *c, bool metrics, bool update)
{
	ir_graph *g = c->g;
	int64_t v[NNRT_DIST_TENSORS] = {0};
	v[NNRT_DIST_KIND] = NNRT_DIST_FINAL;
	v[NNRT_DIST_CHUNKS] = g->chunks;
	v[NNRT_DIST_CBATCH] = g->cbatch;
	v[NNRT_DIST_WS_PARTIALS] = update ? g->ws_partials : -1;
	v[NNRT_DIST_PARAM_FLOATS] = update ? g->param_floats : 0;
	v[NNRT_DIST_WS_METRICS] = metrics ? g->ws_metrics : -1;
	call_sync(c, const_table(c, v, NNRT_DIST_TENSORS));
}
