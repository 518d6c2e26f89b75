/*
 * summary.c - `nnc model.nn --summary`: a table of the model's layers and
 * values, as Keras's model.summary() gives one, and its totals.
 *
 *   model lenet  ; batch 64, summary (per sample unless said)
 *   name                 op                output shape        params   state     FLOPs   act. KiB
 *   x                    input             [n, 1, 28, 28]           0       0         0       3.06
 *   conv1                conv2d+tanh       [n, 6, 28, 28]         156       0    241080      18.38
 *   ...
 *
 * One row per forward value (every node the eval step runs, except the
 * parameters, state tensors and label, which are counted in the rows that
 * read them).  A row is named by the value's name in the .nn file, else by
 * the parameters it reads ("dense1" for dense1.weight), else "%id".  Values
 * of a block call carry its call-site prefix (`residual2.conv1`): rows that
 * share a prefix are shown under a group line naming it, with the group's
 * parameters, so blocks read as groups.
 *
 * It runs on the graph after planning, so that the planned workspace is the
 * real one: an activation fused into the op before it has no memory or code
 * of its own, and shows as that op's suffix ("conv2d+tanh") instead of a
 * row.  FLOPs are ir_node_flops (what
 * --stats and the profile count); activation memory is the value's floats
 * per sample held in the workspace (0 for values never materialised).
 *
 * The totals are the model descriptor's: trainable parameters (every
 * parameter tensor), non-trainable (state tensors: batchnorm's running
 * statistics), their MiB as stored (unpadded), the planned workspace for a
 * batch, and FLOPs per sample of the forward and of the backward pass
 * (nodes of the train step only), which --stats prints too.
 */
#include "ir.h"
#include "util.h"

#include <string.h>

/* Whether a node is a row of the table: a forward value with code of its
 * own (an activation fused into the product before it is that row's op). */
static bool is_row(const ir_node *n, const bool *fwd, int i)
{
	if (!fwd[i] || n->dead || n->in_epilogue)
		return false;
	return n->op != IR_PARAM && n->op != IR_STATE && n->op != IR_LABEL && n->op != IR_STEP_COUNT;
}

/* The prefix of `name` up to its last '.' (arena), or NULL. */
static const char *prefix_of(const char *name)
{
	const char *dot = name ? strrchr(name, '.') : NULL;
	return dot ? nnc_sprintf("%.*s", (int)(dot - name), name) : NULL;
}

/* A row's name: the value's, else its parameters' layer, else "%id". */
static const char *row_name(const ir_graph *g, const ir_node *n, int id)
{
	if (n->name)
		return n->name;
	for (int k = 0; k < n->nin; k++) {
		const ir_node *in = &g->nodes[n->in[k]];
		if (in->op == IR_PARAM && in->param >= 0) {
			const char *p = prefix_of(g->params[in->param].name);
			if (p)
				return p;
		}
	}
	return nnc_sprintf("%%%d", id);
}

/* Parameter and state floats a node reads directly. */
static void row_counts(const ir_graph *g, const ir_node *n, int64_t *params, int64_t *state)
{
	*params = *state = 0;
	for (int k = 0; k < n->nin; k++) {
		const ir_node *in = &g->nodes[n->in[k]];
		if (in->op == IR_PARAM)
			*params += in->size;
		else if (in->op == IR_STATE)
			*state += in->size;
	}
}

/* The block call a row belongs to: the prefix of its name, when the name
 * has one (block values are named "call.value"). */
static const char *group_of(const char *name)
{
	return strchr(name, '.') ? prefix_of(name) : NULL;
}

void nnc_summary(ir_graph *g, nnc_buf *out)
{
	nnc_buf_printf(out, "model %s  ; batch %lld, summary (per sample unless said)\n", g->model_name,
		       (long long)g->batch);
	nnc_buf_printf(out, "%-28s %-26s %-20s %10s %8s %12s %10s\n", "name", "op", "output shape", "params", "state",
		       "FLOPs", "act. KiB");
	const char *group = NULL;
	bool *fwd = ir_forward_nodes(g);
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (!is_row(n, fwd, i))
			continue;
		const char *name = row_name(g, n, i);
		const char *grp = group_of(name);
		if (grp && (!group || strcmp(grp, group) != 0)) {
			/* The group's line: what its rows (up to the next other
			 * prefix) hold together. */
			int64_t gp = 0, gs = 0;
			for (int j = i; j < g->n; j++) {
				ir_node *m = &g->nodes[j];
				if (!is_row(m, fwd, j))
					continue;
				const char *mg = group_of(row_name(g, m, j));
				if (!mg || strcmp(mg, grp) != 0)
					break;
				int64_t p, s;
				row_counts(g, m, &p, &s);
				gp += p;
				gs += s;
			}
			nnc_buf_printf(out, "%-28s %-26s %-20s %10lld %8lld\n", grp, "(block)", "", (long long)gp,
				       (long long)gs);
		}
		group = grp;
		const char *op = ir_op_name(n->op);
		if (n->act != ACT_NONE)
			op = nnc_sprintf("%s+%s", op, ir_act_get(n->act)->name);
		int64_t p, s;
		row_counts(g, n, &p, &s);
		double flops = ir_node_flops(g, n);
		double kib = n->storage == ST_WS || n->storage == ST_OUT || n->storage == ST_INPUT
				     ? (double)n->size * 4 / 1024.0
				     : 0;
		nnc_buf_printf(out, "%s%-*s %-26s %-20s %10lld %8lld %12.0f %10.2f\n", grp ? "  " : "", grp ? 26 : 28,
			       grp ? name + strlen(grp) + 1 : name, op, ir_shape_str(n), (long long)p, (long long)s,
			       flops, kib);
	}

	double ff = 0, bf = 0;
	for (int i = 0; i < g->n; i++) {
		ir_node *n = &g->nodes[i];
		if (n->dead || !(n->entries & (IR_ENTRY_TRAIN | IR_ENTRY_EVAL)))
			continue;
		if (fwd[i])
			ff += ir_node_flops(g, n);
		else if (!(n->entries & IR_ENTRY_TRAIN))
			continue; /* eval and inference only (a folded layer) */
		else if (n->op != IR_SGD_UPDATE && n->op != IR_ADAM_UPDATE)
			bf += ir_node_flops(g, n);
	}
	int64_t trainable = 0, fixed = 0;
	for (int i = 0; i < g->nparams; i++)
		trainable += g->params[i].size;
	for (int i = 0; i < g->nstates; i++)
		fixed += g->states[i].size;
	nnc_buf_printf(out, "totals\n");
	nnc_buf_printf(out, "  trainable parameters      %lld in %d tensors\n", (long long)trainable, g->nparams);
	nnc_buf_printf(out, "  non-trainable parameters  %lld in %d tensors\n", (long long)fixed, g->nstates);
	nnc_buf_printf(out, "  parameter memory          %.3f MiB\n", (double)(trainable + fixed) * 4 / (1024.0 * 1024.0));
	nnc_buf_printf(out, "  planned workspace         %.3f MiB for batch %lld\n",
		       (double)g->ws_floats * 4 / (1024.0 * 1024.0), (long long)g->batch);
	nnc_buf_printf(out, "  FLOPs per sample          forward %.0f, backward %.0f\n", ff, bf);
}
