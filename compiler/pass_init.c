/*
 * pass_init.c - the default initialiser of each weight the user left
 * unset, chosen from what reads the layer's value (run at the end of sema).
 */
#include "nnrt.h"

#include "sema.h"

/* A reader that passes a value on to its own readers for the purpose of
 * initialisation: a batchnorm renormalises what it reads and a dropout only
 * masks it, so the activation after them is the one that decides
 * (`conv2d(..) |> batchnorm |> relu` wants He, as in Keras and PyTorch).
 * The batchnorm's statistics (BN_PARTIAL) read the value too and have no
 * say. */
static bool looks_through(const ir_node *u, int k) { return k == 0 && (u->op == IR_BATCHNORM || u->op == IR_DROPOUT); }

/* The default initialiser of a dense weight depends on what follows it:
 * He when every reader is an activation whose table row asks for it (relu
 * and its kin keep the variance of their layers), or a batchnorm or dropout
 * whose every reader is, Glorot otherwise. */
void nnc_default_inits(ir_graph *g)
{
	/* the readers of every node, counted in one pass */
	int *users = nnc_alloc(sizeof(int) * (size_t)g->n);
	bool *not_he = nnc_alloc((size_t)g->n); /* some reader does not want He */
	bool *seen = nnc_alloc((size_t)g->nparams + 1); /* a weight's default was chosen once */
	for (int j = 0; j < g->n; j++)
		for (int k = 0; !g->nodes[j].dead && k < g->nodes[j].nin; k++)
			users[g->nodes[j].in[k]]++;
	/* readers come after what they read: backwards, a batchnorm's or a
	 * dropout's own readers are settled before it is looked through */
	for (int j = g->n - 1; j >= 0; j--) {
		const ir_node *u = &g->nodes[j];
		bool he = ir_op_act(u->op) != ACT_NONE && ir_act_get(ir_op_act(u->op))->init == NNRT_INIT_HE_UNIFORM;
		for (int k = 0; !u->dead && k < u->nin; k++)
			not_he[u->in[k]] |= !(he || u->op == IR_BN_PARTIAL || (looks_through(u, k) && users[j] && !not_he[j]));
	}
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || (n->op != IR_DENSE && n->op != IR_CONV2D))
			continue;
		int pi = g->nodes[n->in[1]].param;
		ir_param *w = &g->params[pi];
		if (w->init_set)
			continue;
		/* a shared layer's weight: He only if every use asks for it */
		bool he = users[i] && !not_he[i] && (!seen[pi] || w->init == NNRT_INIT_HE_UNIFORM);
		w->init = he ? NNRT_INIT_HE_UNIFORM : NNRT_INIT_GLOROT_UNIFORM;
		seen[pi] = true;
	}
}
