/*
 * autodiff.c - reverse-mode automatic differentiation on the IR, followed
 * by the optimizer update.
 *
 * The forward graph (sema's nodes) is walked backwards from the loss.  Each
 * node's gradient rule (column 5 of ops.def) receives the node id and the id
 * of the node holding dLoss/dNode, and appends nodes computing the gradients
 * of its operands; gradients reaching one value along several paths are
 * summed.  Only values that depend on a parameter get gradients, so no
 * gradient of the input is computed.  The losses are means over the batch:
 * their gradient ops include the 1/n.  Every parameter's final gradient node
 * is tagged to live in the grads array at the parameter's offset, where the
 * single fused optimizer node (the last node) reads it.  Every node appended
 * here belongs to the train step only (IR_ENTRY_TRAIN).
 */
#include <string.h>

#include "ir.h"

typedef struct ad_ctx {
	ir_graph *g;
	int *grad;        /* node -> node holding its gradient, or -1 */
	bool *needs_grad; /* node depends on a parameter */
	bool *use_sum;    /* node -> an ADD of two uses' gradients of one parameter */
	int use_sum_cap;
} ad_ctx;

typedef void grad_fn(ad_ctx *a, int node, int dy);

static int emit(ad_ctx *a, ir_op op, int nin, const int *in, int like)
{
	ir_graph *g = a->g;
	int id = ir_add(g, op, nin, in);
	g->nodes[id].loc = g->nodes[like].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	return id;
}

static int emit1(ad_ctx *a, ir_op op, int x, int like) { return emit(a, op, 1, &x, like); }

/* A product of a dense layer's backward pass, with the rows per sample of
 * the forward (IR_IA_ROWS: a per-position dense) */
static int emit_rows(ad_ctx *a, ir_op op, int nin, const int *in, int like)
{
	ir_graph *g = a->g;
	int id = ir_add(g, op, nin, in);
	g->nodes[id].loc = g->nodes[like].loc;
	g->nodes[id].ia[IR_IA_ROWS] = g->nodes[like].ia[IR_IA_ROWS];
	NNC_ASSERT(ir_infer_shape(g, id));
	return id;
}

static int emit2(ad_ctx *a, ir_op op, int x, int y, int like)
{
	int in[2] = {x, y};
	return emit(a, op, 2, in, like);
}

/* Adds `dx` to the gradient of `target`. */
static void accum(ad_ctx *a, int target, int dx)
{
	if (!a->needs_grad[target])
		return;
	if (a->grad[target] < 0) {
		a->grad[target] = dx;
		return;
	}
	int sum = emit2(a, IR_ADD, a->grad[target], dx, target);
	a->grad[target] = sum;
	if (a->g->nodes[target].op != IR_PARAM)
		return;
	if (sum >= a->use_sum_cap) {
		int cap = 2 * sum + 64;
		a->use_sum = nnc_realloc_array(a->use_sum, (size_t)a->use_sum_cap, (size_t)cap, sizeof(bool));
		a->use_sum_cap = cap;
	}
	a->use_sum[sum] = true;
}

static bool is_use_sum(const ad_ctx *a, int id) { return id < a->use_sum_cap && a->use_sum[id]; }

/* A shared parameter's gradient is the sum of its uses' gradients (accum's
 * ADDs).  When each use's gradient is a sum over the samples (PHASE_REDUCE),
 * read by that sum alone, a chunk can add up its own shares: the shares and
 * the sums below the last become per-chunk tensors (chunk_share) and the
 * last sum is the chunk's partial gradient like any other, so the step keeps
 * its chunks (plan.c's chunkable).  Otherwise (a use's gradient not summed
 * over samples, e.g. of a value on parameters only) nothing changes and the
 * step runs in one chunk. */
static bool shares_per_sample_sums(const ad_ctx *a, const int *readers, int id)
{
	const ir_node *n = &a->g->nodes[id];
	if (is_use_sum(a, id))
		return shares_per_sample_sums(a, readers, n->in[0]) && shares_per_sample_sums(a, readers, n->in[1]);
	return readers[id] == 1 && n->storage != ST_GRAD && n->op != IR_PARAM && n->rank > 0 &&
	       ir_node_phase(a->g, n) == PHASE_REDUCE;
}

static void mark_shares(ad_ctx *a, int id, bool root)
{
	ir_node *n = &a->g->nodes[id];
	n->chunk_share = !root;
	if (!is_use_sum(a, id))
		return;
	mark_shares(a, n->in[0], false);
	mark_shares(a, n->in[1], false);
}

static void split_shared_gradients(ad_ctx *a)
{
	ir_graph *g = a->g;
	int *readers = nnc_alloc(sizeof(int) * (size_t)g->n + 1);
	for (int i = 0; i < g->n; i++)
		for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].nin; k++)
			readers[g->nodes[i].in[k]]++;
	for (int p = 0; p < g->nparams; p++) {
		int gn = a->grad[g->params[p].node];
		if (gn >= 0 && is_use_sum(a, gn) && shares_per_sample_sums(a, readers, gn))
			mark_shares(a, gn, true);
	}
}

static int operand(ad_ctx *a, int node, int k) { return a->g->nodes[node].in[k]; }

static void grad_none(ad_ctx *a, int node, int dy)
{
	(void)a;
	(void)node;
	(void)dy;
}

/* y = x W + b:  dx = dy W^T,  dW = x^T dy,  db = sum_n dy */
static void grad_dense(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int x = operand(a, node, 0), w = operand(a, node, 1);
	if (a->needs_grad[x]) {
		if (g->nodes[x].layout == LAYOUT_CN) {
			/* x is batch-innermost (after convolutions): so is its gradient */
			int dyt = emit1(a, IR_TO_CN, dy, node);
			int in[2] = {w, dyt};
			int id = ir_add(g, IR_DENSE_BWD_XT, 2, in);
			ir_node *b = &g->nodes[id], *xn = &g->nodes[x];
			/* the gradient has x's shape (e.g. [C, H, W] before a flatten),
			 * which the pooling or convolution gradient after it reads */
			b->ia[10] = xn->rank;
			for (int k = 0; k < xn->rank; k++)
				b->ia[6 + k] = xn->dims[k];
			b->loc = g->nodes[node].loc;
			NNC_ASSERT(ir_infer_shape(g, id));
			accum(a, x, id);
		} else {
			int wt = emit1(a, IR_TRANSPOSE, w, node);
			int in[2] = {dy, wt};
			int id = ir_add(g, IR_DENSE_BWD_X, 2, in);
			ir_node *b = &g->nodes[id], *xn = &g->nodes[x];
			b->loc = g->nodes[node].loc;
			b->ia[IR_IA_ROWS] = g->nodes[node].ia[IR_IA_ROWS];
			if (ir_rows(&g->nodes[node]) == 1 && xn->rank > 1) {
				/* x read flattened (e.g. a matmul's [M, N] before a
				 * flatten): its gradient has x's shape, which the
				 * rule of x's producer reads */
				b->ia[10] = xn->rank;
				for (int k = 0; k < xn->rank; k++)
					b->ia[6 + k] = xn->dims[k];
			}
			NNC_ASSERT(ir_infer_shape(g, id));
			accum(a, x, id);
		}
	}
	int in[2] = {x, dy};
	accum(a, w, emit_rows(a, IR_DENSE_BWD_W, 2, in, node));
	if (g->nodes[node].nin > 2) {
		int b = operand(a, node, 2);
		accum(a, b, emit_rows(a, IR_BIAS_GRAD, 1, &dy, node));
	}
}

/* y = conv(x, w) + b: dx = transposed convolution of dy with w,
 * dw = correlation of x with dy, db = sum of dy over samples and positions */
static void grad_conv(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int x = operand(a, node, 0), w = operand(a, node, 1);
	ir_node *cn = &g->nodes[node];
	if (a->needs_grad[x]) {
		int in[2] = {dy, w};
		int id = ir_add(g, IR_CONV2D_BWD_X, 2, in);
		ir_node *b = &g->nodes[id];
		memcpy(b->ia, cn->ia, sizeof(int64_t) * 6);
		b->ia[6] = g->nodes[x].dims[0];
		b->ia[7] = g->nodes[x].dims[1];
		b->ia[8] = g->nodes[x].dims[2];
		b->loc = cn->loc;
		NNC_ASSERT(ir_infer_shape(g, id));
		accum(a, x, id);
	}
	int in[2] = {x, dy};
	int id = ir_add(g, IR_CONV2D_BWD_W, 2, in);
	memcpy(g->nodes[id].ia, g->nodes[node].ia, sizeof(int64_t) * 6);
	g->nodes[id].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	accum(a, w, id);
	if (g->nodes[node].nin > 2)
		accum(a, operand(a, node, 2), emit1(a, IR_CONV_BIAS_GRAD, dy, node));
}

/* pooling gradients keep the window geometry of their forward op */
static int pool_grad(ad_ctx *a, ir_op op, int nin, const int *in, int node)
{
	ir_graph *g = a->g;
	int id = ir_add(g, op, nin, in);
	memcpy(g->nodes[id].ia, g->nodes[node].ia, sizeof(int64_t) * 4);
	g->nodes[id].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	return id;
}

static void grad_maxpool(ad_ctx *a, int node, int dy)
{
	int x = operand(a, node, 0);
	int in[3] = {x, node, dy};
	accum(a, x, pool_grad(a, IR_MAXPOOL_BWD, 3, in, node));
}

static void grad_avgpool(ad_ctx *a, int node, int dy)
{
	int x = operand(a, node, 0);
	int in[2] = {x, dy};
	accum(a, x, pool_grad(a, IR_AVGPOOL_BWD, 2, in, node));
}

static void grad_gavgpool(ad_ctx *a, int node, int dy)
{
	int x = operand(a, node, 0);
	int in[2] = {x, dy};
	accum(a, x, pool_grad(a, IR_GAVGPOOL_BWD, 2, in, node));
}

/* y = gamma xhat + beta, xhat = (x - mean) / sd over the whole batch (per
 * channel; N values: samples times positions):
 *   dbeta = sum dy,  dgamma = sum dy xhat,
 *   dx = gamma / sd (dy - dbeta / N - xhat dgamma / N).
 * The two sums are a per-chunk partial; dbeta and dgamma are its rows (each
 * chunk's share, summed by the update like any gradient), dx needs the
 * whole batch's sums: a combine (PHASE_COMBINE) turns them into the
 * coefficients of dx = a dy + b (x - mean) + c, which every chunk applies. */
static void grad_batchnorm(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int x = operand(a, node, 0), stats = operand(a, node, 1);
	bool affine = g->nodes[node].nin > 2;
	int pin[3] = {x, dy, stats};
	int part = emit(a, IR_BN_BWD_PARTIAL, 3, pin, node);
	if (affine) {
		for (int row = 0; row < 2; row++) { /* dbeta, dgamma */
			int pg = ir_add(g, IR_BN_PARAM_GRAD, 1, &part);
			g->nodes[pg].ia[0] = row;
			g->nodes[pg].loc = g->nodes[node].loc;
			NNC_ASSERT(ir_infer_shape(g, pg));
			accum(a, operand(a, node, row ? 2 : 3), pg);
		}
	}
	if (!a->needs_grad[x])
		return;
	int cin[3] = {part, stats, affine ? operand(a, node, 2) : -1};
	int coef = emit(a, IR_BN_BWD_COMBINE, affine ? 3 : 2, cin, node);
	int xin[3] = {x, dy, coef};
	accum(a, x, emit(a, IR_BN_BWD_X, 3, xin, node));
}

static void grad_to_cn(ad_ctx *a, int node, int dy) { accum(a, operand(a, node, 0), emit1(a, IR_TO_NC, dy, node)); }
static void grad_to_nc(ad_ctx *a, int node, int dy) { accum(a, operand(a, node, 0), emit1(a, IR_TO_CN, dy, node)); }

static void grad_add(ad_ctx *a, int node, int dy)
{
	accum(a, operand(a, node, 0), dy);
	accum(a, operand(a, node, 1), dy);
}

static void grad_sub(ad_ctx *a, int node, int dy)
{
	accum(a, operand(a, node, 0), dy);
	if (a->needs_grad[operand(a, node, 1)])
		accum(a, operand(a, node, 1), emit1(a, IR_NEG, dy, node));
}

static void grad_mul(ad_ctx *a, int node, int dy)
{
	int x = operand(a, node, 0), y = operand(a, node, 1);
	if (a->needs_grad[x])
		accum(a, x, emit2(a, IR_MUL, dy, y, node));
	if (a->needs_grad[y])
		accum(a, y, emit2(a, IR_MUL, dy, x, node));
}

static void grad_affine(ad_ctx *a, int node, int dy)
{
	int id = emit1(a, IR_AFFINE, dy, node);
	a->g->nodes[id].fa[0] = a->g->nodes[node].fa[0];
	a->g->nodes[id].fa[1] = 0;
	accum(a, operand(a, node, 0), id);
}

/* y = x mask / (1 - p):  dx = dy mask / (1 - p), the same mask.  The
 * backward op draws the mask again from the step's random stream (the same
 * seed, sample and element index, so the same bits) instead of reading one
 * the forward stored: a stored mask would be one more batch-sized tensor
 * live from the forward to the backward pass, in every chunk, while drawing
 * costs a few integer multiplies per value in a kernel that is bound by
 * memory anyway.  dy may be in either layout: the draw does not depend on it. */
static void grad_dropout(ad_ctx *a, int node, int dy)
{
	int id = emit1(a, IR_DROPOUT_GRAD, dy, node);
	ir_node *d = &a->g->nodes[id], *f = &a->g->nodes[node];
	d->fa[0] = f->fa[0];
	d->ia[0] = f->ia[0];
	accum(a, operand(a, node, 0), id);
}

/* y = concat(x1, x2, ...):  dxk = the slice of dy that xk filled */
static void grad_concat(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	if (g->nodes[dy].layout != g->nodes[node].layout) /* a gradient comes in its value's layout; be sure */
		dy = emit1(a, g->nodes[node].layout == LAYOUT_CN ? IR_TO_CN : IR_TO_NC, dy, node);
	int64_t off = 0;
	for (int k = 0; k < g->nodes[node].nin; k++) {
		int x = operand(a, node, k);
		ir_node *xn = &g->nodes[x];
		int64_t size = xn->size, rank = xn->rank, dims[IR_MAX_RANK];
		memcpy(dims, xn->dims, sizeof dims);
		if (a->needs_grad[x]) {
			int id = ir_add(g, IR_SLICE, 1, &dy);
			ir_node *sl = &g->nodes[id];
			sl->ia[0] = off;
			sl->ia[1] = rank;
			memcpy(&sl->ia[2], dims, sizeof(int64_t) * (size_t)rank);
			sl->loc = g->nodes[node].loc;
			NNC_ASSERT(ir_infer_shape(g, id));
			accum(a, x, id);
		}
		off += size;
	}
}

/* Every activation of acts.def: dx = dy f'(x), written in terms of the
 * output y or the input x as the row's `from` says; the option travels. */
static void grad_act(ad_ctx *a, int node, int dy)
{
	ir_act act = ir_op_act(a->g->nodes[node].op);
	int v = ir_act_get(act)->from == ACT_FROM_X ? operand(a, node, 0) : node;
	int id = emit2(a, ir_act_grad_op(act), v, dy, node);
	a->g->nodes[id].fa[IR_FA_ACT] = a->g->nodes[node].fa[IR_FA_ACT];
	accum(a, operand(a, node, 0), id);
}
static void grad_softmax(ad_ctx *a, int node, int dy) { accum(a, operand(a, node, 0), emit2(a, IR_SOFTMAX_GRAD, node, dy, node)); }

/* Loss gradients: the seed dLoss/dLoss = 1 is implicit (dy is -1). */
static void grad_loss(ad_ctx *a, int node, ir_op op)
{
	int p = operand(a, node, 0), y = operand(a, node, 1);
	accum(a, p, emit2(a, op, p, y, node));
}

/* label smoothing eps travels in fa[0]: d/dz = (softmax(z) - (1-eps) onehot - eps/K) / n */
static void grad_xent(ad_ctx *a, int node, int dy)
{
	(void)dy;
	int p = operand(a, node, 0), y = operand(a, node, 1);
	int id = emit2(a, IR_XENT_GRAD, p, y, node);
	a->g->nodes[id].fa[0] = a->g->nodes[node].fa[0];
	accum(a, p, id);
}
static void grad_mse(ad_ctx *a, int node, int dy) { (void)dy; grad_loss(a, node, IR_MSE_GRAD); }
static void grad_bce(ad_ctx *a, int node, int dy) { (void)dy; grad_loss(a, node, IR_BCE_GRAD); }

/* ---- sequences (docs/architecture.md "Sequences") ---- */

/* y[t] = W[id_t]:  dW[v] = sum over positions t with id_t = v of dy[t]
 * (scatter-add; the ids get no gradient) */
static void grad_embed(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int w = operand(a, node, 1);
	int in[2] = {operand(a, node, 0), dy};
	int id = ir_add(g, IR_EMBED_GRAD, 2, in);
	g->nodes[id].ia[0] = g->nodes[w].dims[0];
	g->nodes[id].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	accum(a, w, id);
}

/* y = x + P:  dx = dy,  dP = sum over samples of dy */
static void grad_bias_add(ad_ctx *a, int node, int dy)
{
	accum(a, operand(a, node, 0), dy);
	if (a->needs_grad[operand(a, node, 1)])
		accum(a, operand(a, node, 1), emit1(a, IR_BIAS_GRAD, dy, node));
}

/* y = gamma xhat + beta per row, xhat = (x - mean) / sd (rms: x / rms):
 *   dbeta = sum over rows of dy,  dgamma = sum over rows of dy xhat,
 *   dx = (g - mean(g) - xhat mean(g xhat)) / sd with g = gamma dy
 *   (rms: dx = (g - xhat mean(g xhat)) / rms) */
static void grad_layernorm(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	ir_node *f = &g->nodes[node];
	int x = operand(a, node, 0), gamma = f->nin > 1 ? operand(a, node, 1) : -1;
	int64_t d = f->dims[f->rank - 1];
	if (f->nin > 2) {
		int id = ir_add(g, IR_BIAS_GRAD, 1, &dy);
		g->nodes[id].ia[IR_IA_ROWS] = g->nodes[node].size / d;
		g->nodes[id].loc = g->nodes[node].loc;
		NNC_ASSERT(ir_infer_shape(g, id));
		accum(a, operand(a, node, 2), id);
	}
	if (gamma >= 0) {
		int in[2] = {x, dy};
		int id = emit(a, IR_LN_BWD_GAMMA, 2, in, node);
		g->nodes[id].ia[0] = g->nodes[node].ia[0];
		g->nodes[id].fa[0] = g->nodes[node].fa[0];
		accum(a, gamma, id);
	}
	if (!a->needs_grad[x])
		return;
	int in[3] = {x, dy, gamma};
	int id = ir_add(g, IR_LN_BWD_X, gamma >= 0 ? 3 : 2, in);
	g->nodes[id].ia[0] = g->nodes[node].ia[0];
	g->nodes[id].fa[0] = g->nodes[node].fa[0];
	g->nodes[id].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	accum(a, x, id);
}

/* A MATMUL node of the backward pass: op(p) op(q) scale, with transposes */
static int emit_matmul(ad_ctx *a, int p, bool tp, int q, bool tq, double scale, int like)
{
	ir_graph *g = a->g;
	int in[2] = {p, q};
	int id = ir_add(g, IR_MATMUL, 2, in);
	g->nodes[id].ia[0] = tp;
	g->nodes[id].ia[1] = tq;
	g->nodes[id].fa[0] = scale;
	g->nodes[id].loc = g->nodes[like].loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	return id;
}

/* C = s op(A) op(B):
 *   A plain:      dA = s dC op(B)^T       A transposed: dA = s op(B) dC^T
 *   B plain:      dB = s op(A)^T dC       B transposed: dB = s dC^T op(A) */
static void grad_matmul(ad_ctx *a, int node, int dy)
{
	ir_node *f = &a->g->nodes[node];
	int A = operand(a, node, 0), B = operand(a, node, 1);
	bool ta = f->ia[0], tb = f->ia[1];
	double s = f->fa[0];
	if (a->needs_grad[A])
		accum(a, A, ta ? emit_matmul(a, B, tb, dy, true, s, node) : emit_matmul(a, dy, false, B, !tb, s, node));
	if (a->needs_grad[B])
		accum(a, B, tb ? emit_matmul(a, dy, true, A, ta, s, node) : emit_matmul(a, A, !ta, dy, false, s, node));
}

/* y = x viewed [A, B, C] with its first two axes swapped:  dx = dy viewed
 * [B, A, C], swapped back, in x's shape */
static void grad_heads(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int x = operand(a, node, 0);
	int id = ir_add(g, IR_HEADS, 1, &dy);
	ir_node *b = &g->nodes[id], *f = &g->nodes[node], *xn = &g->nodes[x];
	b->ia[0] = f->ia[1];
	b->ia[1] = f->ia[0];
	b->ia[2] = f->ia[2];
	b->ia[3] = xn->rank;
	for (int k = 0; k < xn->rank; k++)
		b->ia[4 + k] = xn->dims[k];
	b->loc = f->loc;
	NNC_ASSERT(ir_infer_shape(g, id));
	g->nodes[id].seq = xn->seq;
	accum(a, x, id);
}

static void grad_softmax_last(ad_ctx *a, int node, int dy)
{
	int id = emit2(a, IR_SOFTMAX_LAST_GRAD, node, dy, node);
	a->g->nodes[id].ia[0] = a->g->nodes[node].ia[0];
	accum(a, operand(a, node, 0), id);
}

static void grad_seq_xent(ad_ctx *a, int node, int dy)
{
	(void)dy;
	grad_loss(a, node, IR_SEQ_XENT_GRAD);
}

/* ---- recurrent layers (cg_rnn.c; docs/architecture.md "Recurrent layers") ----
 *
 * sema builds  xp = x W_ih + b_ih (a per-position DENSE),  S = LSTM(xp, W_hh,
 * b_hh) (the saved rows),  y = RNN_OUT(S) (the states, or the last one).  The
 * saved rows are read by their RNN_OUT alone, so the whole backward pass is
 * RNN_OUT's rule: the recurrence run backwards over t gives d xp (the
 * gradient of each step's pre-activations from x), then
 *   dhp    = d(h_{t-1} W_hh + b_hh)  (d xp itself for LSTM; GRU's n part is
 *            multiplied by r, which scales the W_hn h + b_hn term),
 *   dW_hh  = sum over samples and t >= 1 of h_{t-1}^T dhp_t,
 *   db_hh  = sum over samples and t of dhp_t,
 * and d xp reaches the DENSE, whose rule gives dW_ih, db_ih and dx. */
static void grad_rnn(ad_ctx *a, int node, int dy)
{
	(void)a, (void)node, (void)dy;
	nnc_unreachable(); /* the saved rows get no gradient: RNN_OUT's rule does the work */
}

/* The W_hh of a recurrent op, packed in panels (of W_hh^T: transpose) */
static int rnn_pack(ad_ctx *a, int w, bool transpose, int like)
{
	int id = ir_add(a->g, IR_RNN_PACK, 1, &w);
	a->g->nodes[id].ia[0] = transpose;
	a->g->nodes[id].loc = a->g->nodes[like].loc;
	NNC_ASSERT(ir_infer_shape(a->g, id));
	return id;
}

static void grad_rnn_out(ad_ctx *a, int node, int dy)
{
	ir_graph *g = a->g;
	int s = operand(a, node, 0);
	ir_node *sn = &g->nodes[s];
	int xp = sn->in[0], w = g->nodes[sn->in[1]].in[0], b = sn->in[2];
	bool lstm = sn->op == IR_LSTM;
	int64_t H = g->nodes[node].ia[1], T = sn->dims[0];
	int bin[3] = {s, dy, rnn_pack(a, w, true, node)};
	int dxp = ir_add(g, lstm ? IR_LSTM_BWD : IR_GRU_BWD, 3, bin);
	g->nodes[dxp].ia[0] = g->nodes[node].ia[0];
	g->nodes[dxp].ia[1] = H;
	g->nodes[dxp].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, dxp));
	int dhp = lstm ? dxp : emit2(a, IR_GRU_DHP, dxp, s, node);
	int hp = ir_add(g, IR_RNN_HPREV, 1, &s); /* h_{t-1}, rows of a per-position dW */
	g->nodes[hp].ia[1] = H;
	g->nodes[hp].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, hp));
	int win[2] = {hp, dhp};
	int dw = ir_add(g, IR_DENSE_BWD_W, 2, win);
	g->nodes[dw].ia[IR_IA_ROWS] = T;
	g->nodes[dw].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, dw));
	accum(a, w, dw);
	int db = ir_add(g, IR_BIAS_GRAD, 1, &dhp);
	g->nodes[db].ia[IR_IA_ROWS] = T;
	g->nodes[db].loc = g->nodes[node].loc;
	NNC_ASSERT(ir_infer_shape(g, db));
	accum(a, b, db);
	accum(a, xp, dxp);
}

static grad_fn *const grad_rules[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = grad,
#include "ops.def"
#undef OP
};

void nnc_autodiff(ir_graph *g, const ir_optimizer *opt)
{
	int n0 = g->n;
	g->adding = IR_ENTRY_TRAIN;
	ad_ctx A = {g, nnc_alloc(sizeof(int) * (size_t)n0 * 4 + 64), nnc_alloc(sizeof(bool) * (size_t)n0 + 1), NULL, 0};
	ad_ctx *a = &A;
	for (int i = 0; i < n0; i++) {
		ir_node *n = &g->nodes[i];
		a->grad[i] = -1;
		a->needs_grad[i] = n->op == IR_PARAM;
		for (int k = 0; k < n->nin; k++)
			a->needs_grad[i] |= a->needs_grad[n->in[k]];
	}
	NNC_ASSERT(g->loss >= 0);
	grad_rules[g->nodes[g->loss].op](a, g->loss, -1);
	for (int i = g->loss - 1; i >= 0; i--) {
		if (g->nodes[i].dead || a->grad[i] < 0 || !a->needs_grad[i])
			continue;
		grad_rules[g->nodes[i].op](a, i, a->grad[i]);
	}
	/* every parameter's gradient lives in grads, at the parameter's offset */
	for (int p = 0; p < g->nparams; p++) {
		int gn = a->grad[g->params[p].node];
		if (gn < 0)
			continue; /* not reachable from the loss: its gradient stays 0 */
		ir_node *n = &g->nodes[gn];
		if (n->storage == ST_GRAD || n->op == IR_PARAM) /* already another param's: copy */
			gn = emit1(a, IR_COPY, gn, gn), n = &g->nodes[gn];
		n->storage = ST_GRAD;
		n->offset = g->params[p].offset;
		n->param = p;
	}
	split_shared_gradients(a);
	/* the update carries the optimizer's constants (baked into its code):
	 *   ia[0] NNRT_OPTF_* flags, ia[1] NNRT_OPT_* kind (adam and adamw share an op),
	 *   ia[2] the optimizer state slot of the accumulated gradient;
	 *   sgd_update     fa = momentum, dampening
	 *   adam_update    fa = beta1, beta2, eps
	 *   rmsprop_update fa = alpha, eps, momentum
	 *   fa[3] the .nn file's weight decay (for --stats: the code reads the step's)
	 * the learning rate and the weight decay are run-time hyper-parameters */
	bool adam = opt->kind == NNRT_OPT_ADAM || opt->kind == NNRT_OPT_ADAMW;
	int u = ir_add(g, adam ? IR_ADAM_UPDATE : opt->kind == NNRT_OPT_RMSPROP ? IR_RMSPROP_UPDATE : IR_SGD_UPDATE, 0,
		       NULL);
	NNC_ASSERT(ir_infer_shape(g, u));
	ir_node *un = &g->nodes[u];
	un->ia[0] = opt->flags;
	un->ia[1] = opt->kind;
	un->ia[2] = ir_rule_slots(opt); /* accumulate: the slot of the accumulated gradient */
	double *fa = un->fa;
	if (adam)
		fa[0] = opt->beta1, fa[1] = opt->beta2, fa[2] = opt->eps;
	else if (opt->kind == NNRT_OPT_RMSPROP)
		fa[0] = opt->alpha, fa[1] = opt->eps, fa[2] = opt->momentum;
	else
		fa[0] = opt->momentum, fa[1] = opt->dampening;
	fa[3] = opt->weight_decay;
	g->opt_floats = ir_opt_slots(opt) * g->param_floats;
}
