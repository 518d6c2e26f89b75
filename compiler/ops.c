/*
 * ops.c - the shape rule of every op in ops.def.
 *
 * A shape rule reads its operands' shapes, sets the node's shape, and reports
 * a user error (naming the op, both shapes, and where each operand was
 * defined) when they do not fit.  Rules of backward-only ops cannot fail on a
 * well-formed forward graph; they assert instead.
 */
#include "diag.h"
#include "ir.h"

typedef bool shape_fn(ir_graph *g, ir_node *n);

static ir_node *in(ir_graph *g, ir_node *n, int k) { return &g->nodes[n->in[k]]; }

/* "x (defined at 3:1)" style note for an operand. */
static void note_operand(ir_graph *g, ir_node *o, const char *role)
{
	/* a layout change sema inserted is not what the user wrote */
	while ((o->op == IR_TO_CN || o->op == IR_TO_NC) && !o->name)
		o = &g->nodes[o->in[0]];
	if (o->loc.line > 0)
		nnc_note(g->src, o->loc, "%s%s%s has shape %s", role, o->name ? " " : "", o->name ? o->name : "",
			 ir_shape_str(o));
}

static bool shape_leaf(ir_graph *g, ir_node *n)
{
	(void)g;
	(void)n;
	return true; /* set by whoever creates the leaf */
}

static bool shape_same1(ir_graph *g, ir_node *n)
{
	ir_node *a = in(g, n, 0);
	ir_set_shape(n, a->batched, a->rank, a->dims);
	n->layout = n->op == IR_TO_CN ? LAYOUT_CN : n->op == IR_TO_NC ? LAYOUT_NC : a->layout;
	return true;
}

static bool shape_like0(ir_graph *g, ir_node *n)
{
	return shape_same1(g, n);
}

static bool shape_same2(ir_graph *g, ir_node *n)
{
	ir_node *a = in(g, n, 0), *b = in(g, n, 1);
	if (!ir_same_shape(a, b)) {
		nnc_error(g->src, n->loc, "'%s' needs operands of the same shape, but got %s and %s",
			  ir_op_name(n->op), ir_shape_str(a), ir_shape_str(b));
		note_operand(g, a, "left operand");
		note_operand(g, b, "right operand");
		return false;
	}
	ir_set_shape(n, a->batched, a->rank, a->dims);
	NNC_ASSERT(a->layout == b->layout || !a->batched || !b->batched);
	n->layout = a->layout;
	return true;
}

/* Output size of a window sliding over `in` values. */
static int64_t out_dim(int64_t in, int64_t k, int64_t stride, int64_t pad)
{
	return (in + 2 * pad - k) / stride + 1;
}

/* x[C, H, W] (CN), w[F, C, KH, KW] -> [F, OH, OW] (CN).  sema checked that
 * the kernel fits; ia = kh kw sh sw ph pw. */
static bool shape_conv(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0), *w = in(g, n, 1);
	NNC_ASSERT(x->rank == 3 && w->rank == 4 && w->dims[1] == x->dims[0]);
	int64_t d[3] = {w->dims[0], out_dim(x->dims[1], n->ia[0], n->ia[2], n->ia[4]),
			out_dim(x->dims[2], n->ia[1], n->ia[3], n->ia[5])};
	NNC_ASSERT(d[1] > 0 && d[2] > 0);
	ir_set_shape(n, true, 3, d);
	n->layout = LAYOUT_CN;
	return true;
}

static bool shape_pool(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	NNC_ASSERT(x->rank == 3);
	int64_t d[3] = {x->dims[0], out_dim(x->dims[1], n->ia[0], n->ia[2], 0),
			out_dim(x->dims[2], n->ia[1], n->ia[3], 0)};
	NNC_ASSERT(d[1] > 0 && d[2] > 0);
	ir_set_shape(n, true, 3, d);
	n->layout = LAYOUT_CN;
	return true;
}

static bool shape_gpool(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	NNC_ASSERT(x->rank == 3);
	int64_t d[1] = {x->dims[0]};
	ir_set_shape(n, true, 1, d);
	n->layout = LAYOUT_CN;
	return true;
}

/* (dy, w) -> dx with x's shape, kept in ia[6..8] */
static bool shape_conv_bx(ir_graph *g, ir_node *n)
{
	(void)g;
	int64_t d[3] = {n->ia[6], n->ia[7], n->ia[8]};
	ir_set_shape(n, true, 3, d);
	n->layout = LAYOUT_CN;
	return true;
}

/* (x, dy) -> [F, C, KH, KW] */
static bool shape_conv_bw(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0), *dy = in(g, n, 1);
	int64_t d[4] = {dy->dims[0], x->dims[0], n->ia[0], n->ia[1]};
	ir_set_shape(n, false, 4, d);
	return true;
}

static bool shape_conv_bg(ir_graph *g, ir_node *n)
{
	int64_t d[1] = {in(g, n, 0)->dims[0]};
	ir_set_shape(n, false, 1, d);
	return true;
}

/* pooling gradients have the shape of the pooled input x = in[0] */
static bool shape_pool_bwd(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	ir_set_shape(n, true, x->rank, x->dims);
	n->layout = LAYOUT_CN;
	return true;
}

/* W[i, o], dyT[o] (CN) -> dxT with x's shape (rank ia[10], dims ia[6..9]), CN */
static bool shape_dense_bxt(ir_graph *g, ir_node *n)
{
	ir_node *w = in(g, n, 0);
	ir_set_shape(n, true, (int)n->ia[10], &n->ia[6]);
	NNC_ASSERT(n->size == w->dims[0]);
	n->layout = LAYOUT_CN;
	return true;
}

/* x[n, i] . W[i, o] + b[o] -> [n, o]; x of higher rank is read flattened. */
static bool shape_dense(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0), *w = in(g, n, 1);
	if (!x->batched) {
		nnc_error(g->src, n->loc, "'dense' needs a per-sample value, but its input has shape %s",
			  ir_shape_str(x));
		return false;
	}
	NNC_ASSERT(w->rank == 2 && w->dims[0] * ir_rows(n) == x->size);
	int64_t d[2] = {ir_rows(n), w->dims[1]};
	if (ir_rows(n) > 1) /* per position: [T, d] -> [T, units] */
		ir_set_shape(n, true, 2, d);
	else
		ir_set_shape(n, true, 1, &d[1]);
	return true;
}

static bool shape_transpose(ir_graph *g, ir_node *n)
{
	ir_node *w = in(g, n, 0);
	NNC_ASSERT(w->rank == 2 && !w->batched);
	int64_t d[2] = {w->dims[1], w->dims[0]};
	ir_set_shape(n, false, 2, d);
	return true;
}

/* dy[n, o] . Wt[o, i] -> [n, i] */
static bool shape_dense_bx(ir_graph *g, ir_node *n)
{
	ir_node *dy = in(g, n, 0), *wt = in(g, n, 1);
	NNC_ASSERT(dy->batched && wt->rank == 2 && wt->dims[0] * ir_rows(n) == dy->size);
	int64_t d[2] = {ir_rows(n), wt->dims[1]};
	if (ir_rows(n) == 1 && n->ia[10] > 1) { /* the shape of an x read flattened (autodiff's grad_dense) */
		ir_set_shape(n, true, (int)n->ia[10], &n->ia[6]);
		NNC_ASSERT(n->size == wt->dims[1]);
	} else if (ir_rows(n) > 1)
		ir_set_shape(n, true, 2, d);
	else
		ir_set_shape(n, true, 1, &d[1]);
	return true;
}

/* x[n, i], dy[n, o] -> [i, o] */
static bool shape_dense_bw(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0), *dy = in(g, n, 1);
	NNC_ASSERT(x->batched && dy->batched);
	int64_t d[2] = {x->size / ir_rows(n), dy->size / ir_rows(n)};
	ir_set_shape(n, false, 2, d);
	return true;
}

static bool shape_bias_grad(ir_graph *g, ir_node *n)
{
	ir_node *dy = in(g, n, 0);
	int64_t d[1] = {dy->size / ir_rows(n)};
	ir_set_shape(n, false, 1, d);
	return true;
}

/* ---- sequences (docs/architecture.md "Sequences") ---- */

/* ids[T], W[V, d] -> [T, d] */
static bool shape_embed(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0), *w = in(g, n, 1);
	NNC_ASSERT(x->batched && x->rank == 1 && w->rank == 2);
	int64_t d[2] = {x->dims[0], w->dims[1]};
	ir_set_shape(n, true, 2, d);
	n->seq = true;
	return true;
}

/* (ids, dy[T, d]) -> [V, d], V = ia[0] */
static bool shape_embed_grad(ir_graph *g, ir_node *n)
{
	ir_node *dy = in(g, n, 1);
	int64_t d[2] = {n->ia[0], dy->dims[dy->rank - 1]};
	ir_set_shape(n, false, 2, d);
	return true;
}

/* (x, dy) -> [d], the last axis */
static bool shape_ln_gamma(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	int64_t d[1] = {x->dims[x->rank - 1]};
	ir_set_shape(n, false, 1, d);
	return true;
}

/* a[.., M, K] . b[.., K, N] -> [.., M, N] (ia[0], ia[1]: a, b given transposed) */
static bool shape_matmul(ir_graph *g, ir_node *n)
{
	ir_node *a = in(g, n, 0), *b = in(g, n, 1);
	int r = a->rank;
	bool lead = a->batched && b->batched && r >= 2 && b->rank == r;
	for (int k = 0; lead && k < r - 2; k++)
		lead = a->dims[k] == b->dims[k];
	int64_t ka = lead ? a->dims[n->ia[0] ? r - 2 : r - 1] : 0, kb = lead ? b->dims[n->ia[1] ? r - 1 : r - 2] : -1;
	if (!lead || ka != kb) {
		nnc_error(g->src, n->loc,
			  "'matmul' needs per-sample matrices [..., M, K] and [..., K, N] with the same leading axes%s, but got %s and %s",
			  n->ia[0] || n->ia[1] ? " (after the transposes asked for)" : "", ir_shape_str(a), ir_shape_str(b));
		note_operand(g, a, "left operand");
		note_operand(g, b, "right operand");
		return false;
	}
	int64_t d[IR_MAX_RANK];
	for (int k = 0; k < r - 2; k++)
		d[k] = a->dims[k];
	d[r - 2] = a->dims[n->ia[0] ? r - 1 : r - 2];
	d[r - 1] = b->dims[n->ia[1] ? r - 2 : r - 1];
	ir_set_shape(n, true, r, d);
	return true;
}

/* x viewed as [A, B, C] -> [B, A, C], stored as rank ia[3], dims ia[4..] */
static bool shape_heads(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	ir_set_shape(n, true, (int)n->ia[3], &n->ia[4]);
	NNC_ASSERT(x->batched && n->size == x->size && n->ia[0] * n->ia[1] * n->ia[2] == x->size);
	return true;
}

/* a[n, ka], b[n, kb], ... -> [n, ka + kb + ...] (features), or images
 * a[n, Ca, H, W], ... -> [n, Ca + Cb + ..., H, W] (channels): either way
 * the per-sample values of the operands one after another, in their common
 * layout.  sema checked the ranks and sizes and made the layouts agree. */
static bool shape_concat(ir_graph *g, ir_node *n)
{
	ir_node *a = in(g, n, 0);
	NNC_ASSERT(n->nin >= 2 && a->batched && (a->rank == 1 || a->rank == 3));
	int64_t d[3] = {0, a->rank == 3 ? a->dims[1] : 0, a->rank == 3 ? a->dims[2] : 0};
	for (int k = 0; k < n->nin; k++) {
		ir_node *b = in(g, n, k);
		NNC_ASSERT(b->batched && b->rank == a->rank && b->layout == a->layout);
		NNC_ASSERT(a->rank == 1 || (b->dims[1] == d[1] && b->dims[2] == d[2]));
		d[0] += b->dims[0];
	}
	ir_set_shape(n, true, a->rank, d);
	n->layout = a->layout;
	return true;
}

/* dy -> the part of it one operand of a concat gave: rank ia[1], dims
 * ia[2..4], from per-sample value ia[0] on, in dy's layout */
static bool shape_slice(ir_graph *g, ir_node *n)
{
	ir_node *dy = in(g, n, 0);
	ir_set_shape(n, true, (int)n->ia[1], &n->ia[2]);
	NNC_ASSERT(dy->batched && n->ia[0] >= 0 && n->ia[0] + n->size <= dy->size);
	n->layout = dy->layout;
	return true;
}

/* loss(pred, label) -> scalar.  The label's kind was checked by sema. */
static bool shape_loss(ir_graph *g, ir_node *n)
{
	ir_node *p = in(g, n, 0), *y = in(g, n, 1);
	if (!p->batched) {
		nnc_error(g->src, n->loc, "'%s' needs a per-sample prediction, but got shape %s", ir_op_name(n->op),
			  ir_shape_str(p));
		return false;
	}
	if (n->op == IR_XENT) {
		if (p->size != g->label_size) {
			nnc_error(g->src, n->loc,
				  "'softmax_cross_entropy' needs %lld logits per sample to match label class(%lld), but got shape %s",
				  (long long)g->label_size, (long long)g->label_size, ir_shape_str(p));
			note_operand(g, p, "logits");
			if (y->loc.line > 0)
				nnc_note(g->src, y->loc, "label %s is class(%lld)", y->name ? y->name : "",
					 (long long)g->label_size);
			return false;
		}
	} else if (n->op == IR_SEQ_XENT) {
		if (p->size != g->label_size * g->label_vocab) {
			nnc_error(g->src, n->loc,
				  "'softmax_cross_entropy' needs %lld x %lld logits per sample to match label class(%lld)[%lld], but got shape %s",
				  (long long)g->label_size, (long long)g->label_vocab, (long long)g->label_vocab,
				  (long long)g->label_size, ir_shape_str(p));
			note_operand(g, p, "logits");
			return false;
		}
	} else if (p->size != y->size) {
		nnc_error(g->src, n->loc, "'%s' needs the prediction and the target to have the same size, but got %s and %s",
			  ir_op_name(n->op), ir_shape_str(p), ir_shape_str(y));
		note_operand(g, p, "prediction");
		note_operand(g, y, "target");
		return false;
	}
	ir_set_shape(n, false, 0, NULL);
	return true;
}

static bool shape_update(ir_graph *g, ir_node *n)
{
	(void)g;
	ir_set_shape(n, false, 0, NULL);
	return true;
}

/* batch normalisation's statistics: [2, C] for x's C channels (ir_bn_channels) */
static bool shape_bn_stats(ir_graph *g, ir_node *n)
{
	ir_node *x = in(g, n, 0);
	int64_t d[2] = {2, x->batched ? ir_bn_channels(x) : x->dims[1]};
	ir_set_shape(n, false, 2, d);
	return true;
}

/* the backward coefficients of dx: [4, C] from the partial [2, C] */
static bool shape_bn_coef(ir_graph *g, ir_node *n)
{
	int64_t d[2] = {4, in(g, n, 0)->dims[1]};
	ir_set_shape(n, false, 2, d);
	return true;
}

/* dgamma or dbeta: [C], one row of the partial [2, C]; a folded bias: [C]
 * from the statistics [2, C] */
static bool shape_bn_pgrad(ir_graph *g, ir_node *n)
{
	int64_t d[1] = {in(g, n, 0)->dims[1]};
	ir_set_shape(n, false, 1, d);
	return true;
}

/* ---- recurrent layers (cg_rnn.c): sema checked the operands ---- */

/* Values a recurrent op keeps per position, in units of H: LSTM
 * [h | c | i f g o], GRU [h | r z n hn] */
int64_t ir_rnn_row(ir_op op) { return op == IR_LSTM ? 6 : 5; }

/* W [K, N] -> [ceil(N / 16), K, 16] (ia[0]: of W^T: [ceil(K / 16), N, 16]) */
static bool shape_rnn_pack(ir_graph *g, ir_node *n)
{
	ir_node *w = in(g, n, 0);
	int64_t K = w->dims[n->ia[0] ? 1 : 0], N = w->dims[n->ia[0] ? 0 : 1], d[3] = {(N + 15) / 16, K, 16};
	ir_set_shape(n, false, 3, d);
	return true;
}

/* (xp [T, G H], packed W_hh, b_hh [G H]) -> the saved rows [T, K H] */
static bool shape_rnn(ir_graph *g, ir_node *n)
{
	ir_node *xp = in(g, n, 0), *b = in(g, n, 2);
	int64_t G = n->op == IR_LSTM ? 4 : 3, H = b->dims[0] / G;
	NNC_ASSERT(xp->batched && xp->rank == 2 && xp->layout == LAYOUT_NC && xp->dims[1] == G * H);
	int64_t d[2] = {xp->dims[0], ir_rnn_row(n->op) * H};
	ir_set_shape(n, true, 2, d);
	return true;
}

/* saved [T, K H] -> the states h [T, H], or the last one [H] (ia[0]);
 * RNN_HPREV: the states one step later, [T, H] */
static bool shape_rnn_out(ir_graph *g, ir_node *n)
{
	ir_node *s = in(g, n, 0);
	int64_t d[2] = {s->dims[0], n->ia[1]};
	if (n->ia[0])
		ir_set_shape(n, true, 1, &d[1]);
	else
		ir_set_shape(n, true, 2, d);
	n->seq = !n->ia[0];
	return true;
}

/* (saved [T, K H], dy, packed W_hh^T [., G H, 16]) -> d xp [T, G H] */
static bool shape_rnn_bwd(ir_graph *g, ir_node *n)
{
	ir_node *s = in(g, n, 0), *wt = in(g, n, 2);
	int64_t d[2] = {s->dims[0], wt->dims[1]};
	ir_set_shape(n, true, 2, d);
	n->seq = true;
	return true;
}

static shape_fn *const shape_rules[IR_NUM_OPS] = {
#define OP(id, name, arity, shape, grad, lower, kind, flops) [IR_##id] = shape,
#include "ops.def"
#undef OP
};

bool ir_infer_shape(ir_graph *g, int id)
{
	ir_node *n = &g->nodes[id];
	return shape_rules[n->op](g, n);
}
