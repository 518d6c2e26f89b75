/*
 * fuse.c - operator fusion on the training graph.
 *
 * Rules, applied in this order:
 *   1. sigmoid_grad(p, bce_grad(p, y))  ->  bce_grad(p, y) w.r.t. the logit,
 *      i.e. (p - y)/(n k): exact, and no 0/0 when p saturates.
 *   2. act(dense(x, W, b))  ->  dense(x, W, b) act=...  when the dense output
 *      has no other user: bias and activation are applied in the matmul
 *      epilogue, on values still in registers.  Likewise for conv2d.  An
 *      activation whose derivative reads its input z (acts.def's `from`)
 *      keeps its node and its tensor, but the product's epilogue writes it
 *      (act_dst) besides z, which the derivative reads: one pass over the
 *      tile instead of two (the activation node is then in_epilogue).
 *   2b. act(batchnorm(x)) -> batchnorm(x) act=...  for an activation whose
 *      derivative reads its output y: applied in the normalising pass.
 *   3. act_grad(v, dense_bwd_x(dy, Wt))  ->  dense_bwd_x(dy, Wt, v) dact=...
 *      the backward matmul multiplies by act'(v) before storing, v being
 *      the activation's output y or input x as its derivative needs;
 *      likewise for the backward convolution and pooling: the gradient
 *      leaving a pooling layer goes through the activation before it is
 *      stored.
 *   4. an activation derivative that rule 3 left, read only by a
 *      batchnorm's backward ops: they apply it where they read dy.
 *   5. softmax_last(matmul(a, b)) over the product's rows, the product
 *      read by nothing else  ->  attention_probs(a, b): attention's scores,
 *      mask and softmax in one pass.
 *   6. matmul(attention_probs(q, k), v), the probabilities read by nothing
 *      else in eval and inference  ->  attention_out(p, v, q, k): eval and
 *      inference compute the attention whole, without the probabilities.
 * Every activation of acts.def takes part; its option (fa[IR_FA_ACT])
 * moves with it into the epilogue.  Then nodes whose value nobody uses are
 * removed.
 */
#include "ir.h"

#include <string.h>

static bool is_act(ir_op op) { return ir_op_act(op) != ACT_NONE && !ir_op_is_act_grad(op); }

/*
 * Who reads each node, so that a rule asks it instead of scanning the rest
 * of the graph (which made fusion quadratic: 1000 layers, 30 s).  A list
 * may hold nodes that died or no longer read it; readers check.
 */
typedef struct user_list {
	int *v;
	int n, cap;
} user_list;

static user_list *users;

static void add_user(int id, int user)
{
	user_list *l = &users[id];
	if (l->n == l->cap) {
		int cap = l->cap ? 2 * l->cap : 2;
		l->v = nnc_realloc_array(l->v, (size_t)l->n, (size_t)cap, sizeof *l->v);
		l->cap = cap;
	}
	l->v[l->n++] = user;
}

static void find_users(ir_graph *g)
{
	users = nnc_alloc(sizeof *users * (size_t)(g->n ? g->n : 1));
	for (int i = 0; i < g->n; i++)
		for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].nin; k++)
			add_user(g->nodes[i].in[k], i);
}

static bool reads(const ir_node *n, int id)
{
	for (int k = 0; k < n->nin; k++)
		if (n->in[k] == id)
			return true;
	return false;
}

/* The single live user of `id`, or -1 if it has none or several. */
static int sole_user(ir_graph *g, int id)
{
	int user = -1;
	nnc_work.graph_steps += users[id].n;
	for (int j = 0; j < users[id].n; j++) {
		int i = users[id].v[j];
		if (g->nodes[i].dead || !reads(&g->nodes[i], id) || i == user)
			continue;
		if (user >= 0)
			return -1;
		user = i;
	}
	return user;
}

/* Node `from` disappears: its users read `to` instead, which takes its place. */
static void forward_to(ir_graph *g, int from, int to)
{
	ir_node *f = &g->nodes[from], *t = &g->nodes[to];
	nnc_work.graph_steps += users[from].n;
	for (int j = 0; j < users[from].n; j++) {
		ir_node *u = &g->nodes[users[from].v[j]];
		if (u->dead || !reads(u, from))
			continue;
		for (int k = 0; k < u->nin; k++)
			if (u->in[k] == from)
				u->in[k] = to;
		add_user(to, users[from].v[j]);
	}
	if (g->output == from)
		g->output = to;
	if (g->loss == from)
		g->loss = to;
	if (f->storage == ST_GRAD) {
		t->storage = ST_GRAD;
		t->offset = f->offset;
		t->param = f->param;
	}
	if (f->name)
		t->name = f->name;
	f->dead = true;
}

static bool is_root(ir_graph *g, int i)
{
	ir_node *n = &g->nodes[i];
	return i == g->loss || i == g->output || n->storage == ST_GRAD || ir_is_update(n->op) ||
	       n->op == IR_INPUT || n->op == IR_LABEL || n->op == IR_PARAM ||
	       n->op == IR_STATE || ir_writes_state(n);
}

/* act(batchnorm(x) + r) -> one batchnorm node with r as its last operand
 * (a residual block's end: one pass over memory instead of three).  The
 * activation's node becomes the batchnorm, so that r (often converted or
 * computed after the batchnorm) comes before it; the batchnorm and the sum
 * disappear.  Needs an activation whose derivative reads its output
 * (nothing reads the sum or the batchnorm's own value then), r of the same
 * layout, and the sum and the batchnorm read by nothing else. */
static bool residual_into_batchnorm(ir_graph *g, int i)
{
	ir_node *n = &g->nodes[i];
	int s = n->in[0];
	ir_node *sn = &g->nodes[s];
	if (sn->op != IR_ADD || ir_act_get(ir_op_act(n->op))->from != ACT_FROM_Y || sole_user(g, s) != i ||
	    s == g->output || sn->storage == ST_GRAD || n->storage == ST_GRAD)
		return false;
	for (int k = 0; k < 2; k++) {
		int b = sn->in[k], r = sn->in[1 - k];
		ir_node *bn = &g->nodes[b], *rn = &g->nodes[r];
		if (bn->op != IR_BATCHNORM || bn->act != ACT_NONE || ir_bn_residual(bn) || bn->nin >= IR_MAX_IN ||
		    sole_user(g, b) != s || b == g->output || b == r || !ir_same_shape(bn, rn) ||
		    rn->batched != bn->batched || rn->layout != bn->layout)
			continue;
		ir_act act = ir_op_act(n->op);
		double opt = n->fa[IR_FA_ACT];
		const char *name = n->name ? n->name : bn->name;
		*n = *bn; /* the batchnorm, at the activation's place */
		n->in[n->nin++] = r;
		n->ia[0] = 1;
		n->act = act;
		n->fa[IR_FA_ACT] = opt;
		n->name = name;
		for (int q = 0; q < n->nin; q++)
			add_user(n->in[q], i);
		bn->dead = true;
		sn->dead = true;
		return true;
	}
	return false;
}

void nnc_fuse(ir_graph *g)
{
	find_users(g);
	/* 1. bce through sigmoid */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || n->op != IR_SIGMOID_GRAD)
			continue;
		ir_node *d = &g->nodes[n->in[1]];
		if (d->op == IR_BCE_GRAD && d->in[0] == n->in[0] && sole_user(g, n->in[1]) == i) {
			d->ia[0] = 1; /* gradient w.r.t. the sigmoid's input */
			forward_to(g, i, n->in[1]);
		}
	}
	/* 2. activation into the dense epilogue */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !is_act(n->op))
			continue;
		if (residual_into_batchnorm(g, i))
			continue;
		int d = n->in[0];
		ir_node *dn = &g->nodes[d];
		if (dn->op == IR_BATCHNORM && dn->act == ACT_NONE && ir_act_get(ir_op_act(n->op))->from == ACT_FROM_Y &&
		    sole_user(g, d) == i && d != g->output) {
			/* applied in the normalising pass; the derivative reads y */
			dn->act = ir_op_act(n->op);
			dn->fa[IR_FA_ACT] = n->fa[IR_FA_ACT];
			forward_to(g, i, d);
			continue;
		}
		if ((dn->op != IR_DENSE && dn->op != IR_CONV2D) || dn->act != ACT_NONE)
			continue;
		if (sole_user(g, d) == i && d != g->output) {
			dn->act = ir_op_act(n->op);
			dn->fa[IR_FA_ACT] = n->fa[IR_FA_ACT];
			dn->loc = n->loc;
			forward_to(g, i, d);
		} else if (ir_act_get(ir_op_act(n->op))->from == ACT_FROM_X) {
			dn->act = ir_op_act(n->op);
			dn->fa[IR_FA_ACT] = n->fa[IR_FA_ACT];
			dn->act_dst = i;
			n->in_epilogue = true;
		}
	}
	/* 3. activation derivative into the backward matmul epilogue */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !ir_op_is_act_grad(n->op))
			continue;
		int b = n->in[1];
		ir_node *bn = &g->nodes[b];
		bool fusable = bn->op == IR_DENSE_BWD_X || bn->op == IR_DENSE_BWD_XT || bn->op == IR_CONV2D_BWD_X ||
			       bn->op == IR_AVGPOOL_BWD || bn->op == IR_MAXPOOL_BWD || bn->op == IR_GAVGPOOL_BWD;
		if (fusable && bn->dact == ACT_NONE && sole_user(g, b) == i && bn->storage != ST_GRAD &&
		    bn->nin < IR_MAX_IN) {
			/* what the derivative reads (y or x) becomes the last operand */
			bn->dact = ir_op_act(n->op);
			bn->fa[IR_FA_ACT] = n->fa[IR_FA_ACT];
			bn->in[bn->nin++] = n->in[0];
			add_user(n->in[0], b);
			forward_to(g, i, b);
		}
	}
	/* 4. an activation derivative left over (the layer after it has no
	 * backward product or pooling to take it, e.g. a residual sum) whose
	 * readers are a batchnorm's backward ops: each applies it where it
	 * reads dy */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !ir_op_is_act_grad(n->op) || n->storage == ST_GRAD)
			continue;
		bool all = users[i].n > 0;
		int nusers = 0;
		for (int j = 0; j < users[i].n && all; j++) {
			ir_node *u = &g->nodes[users[i].v[j]];
			if (u->dead || !reads(u, i))
				continue;
			nusers++;
			all = (u->op == IR_BN_BWD_PARTIAL || u->op == IR_BN_BWD_X) && u->in[1] == i && u->in[0] != i &&
			      u->dact == ACT_NONE && u->nin < IR_MAX_IN;
		}
		if (!all || !nusers)
			continue;
		for (int j = 0; j < users[i].n; j++) {
			ir_node *u = &g->nodes[users[i].v[j]];
			if (u->dead || !reads(u, i))
				continue;
			u->dact = ir_op_act(n->op);
			u->fa[IR_FA_ACT] = n->fa[IR_FA_ACT];
			u->in[1] = n->in[1];
			u->in[u->nin++] = n->in[0];
			add_user(n->in[0], users[i].v[j]);
			add_user(n->in[1], users[i].v[j]);
		}
		n->dead = true;
	}
	/* 5. attention's scores into their softmax: softmax_last over the rows
	 * of a matmul that nothing else reads -> ATTN_PROBS (cg_seq.c), which
	 * normalises each tile's rows as it computes them: the scores are no
	 * tensor of their own, and causal rows skip the products above the
	 * diagonal.  The backward pass reads the probabilities only. */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || n->op != IR_SOFTMAX_LAST)
			continue;
		int s = n->in[0];
		ir_node *sn = &g->nodes[s];
		if (sn->op != IR_MATMUL || sole_user(g, s) != i || s == g->output || sn->storage == ST_GRAD ||
		    sn->entries != n->entries)
			continue;
		int r = sn->rank;
		int64_t M = sn->dims[r - 2], N = sn->dims[r - 1], K = g->nodes[sn->in[0]].dims[r - (sn->ia[0] ? 2 : 1)];
		bool causal = n->ia[0];
		if ((n->ia[1] && n->ia[1] != N) || (causal && M != N) || (sn->ia[1] && K * N > IR_MATMUL_BT_FLOATS))
			continue;
		n->op = IR_ATTN_PROBS;
		n->nin = 2;
		n->in[0] = sn->in[0];
		n->in[1] = sn->in[1];
		memset(n->ia, 0, sizeof n->ia);
		n->ia[0] = sn->ia[0];
		n->ia[1] = sn->ia[1];
		n->ia[2] = causal;
		n->fa[0] = sn->fa[0];
		add_user(n->in[0], i);
		add_user(n->in[1], i);
		sn->dead = true;
	}
	/* 6. the weighted sum after it: y = matmul(p, v), p = attention_probs(q,
	 * k) that nothing else reads in eval and inference -> attention_out(p,
	 * v, q, k): the train step's p v as before (the backward pass reads p),
	 * eval and inference the whole attention from q, k, v a tile of p at a
	 * time (cg_seq.c), which then never make p */
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || n->op != IR_MATMUL || n->ia[0] || n->ia[1] || n->storage == ST_GRAD || i == g->output)
			continue;
		int p = n->in[0];
		ir_node *pn = &g->nodes[p];
		if (pn->op != IR_ATTN_PROBS || pn->entries != n->entries || !(n->entries & (IR_ENTRY_EVAL | IR_ENTRY_INFER)) ||
		    IR_MATMUL_ROWS_MAX * pn->dims[pn->rank - 1] > IR_MATMUL_BT_FLOATS || p == g->output)
			continue;
		bool alone = true;
		for (int j = 0; j < users[p].n && alone; j++) {
			const ir_node *u = &g->nodes[users[p].v[j]];
			alone = u->dead || !reads(u, p) || users[p].v[j] == i || !(u->entries & (IR_ENTRY_EVAL | IR_ENTRY_INFER));
		}
		if (!alone)
			continue;
		n->op = IR_ATTN_OUT;
		n->in[2] = pn->in[0];
		n->in[3] = pn->in[1];
		n->nin = 4;
		add_user(n->in[2], i);
		add_user(n->in[3], i);
		pn->entries &= (uint8_t)~(IR_ENTRY_EVAL | IR_ENTRY_INFER);
	}
	/* dead nodes: walk backwards so chains disappear in one pass, counting
	 * the live reads of each node once */
	int *nuses = nnc_alloc(sizeof *nuses * (size_t)(g->n ? g->n : 1));
	for (int i = 0; i < g->n; i++)
		for (int k = 0; !g->nodes[i].dead && k < g->nodes[i].nin; k++)
			nuses[g->nodes[i].in[k]]++;
	for (int i = g->n - 1; i >= 0; i--) {
		if (g->nodes[i].dead || is_root(g, i) || nuses[i] > 0)
			continue;
		g->nodes[i].dead = true;
		for (int k = 0; k < g->nodes[i].nin; k++)
			nuses[g->nodes[i].in[k]]--;
	}
	ir_drop_dead_act_dst(g);
	users = NULL;
}
