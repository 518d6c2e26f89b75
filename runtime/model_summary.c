/*
 * model_summary.c - the training binary's --summary: what the model
 * descriptor knows about the model, as a table and totals, without loading
 * any data.
 *
 * A binary has no graph, only the descriptor nnc wrote into it (nnrt.h):
 * the parameter and state tables, the planned sizes and the training step's
 * ops with their FLOPs.  So its table lists layers by their tensors (a layer
 * is the prefix of its tensors' names: conv1.weight and conv1.bias are
 * conv1; a block call's layers share the call-site prefix, residual2.conv1,
 * and are shown under a group line naming the call), and the ops of the
 * training step with their FLOPs per sample.  `nnc model.nn --summary`
 * shows the per-value table with output shapes and memory; the totals of
 * both are the same numbers, and tests/test_e2e.c checks that they are.
 */
#include "nnrt_internal.h"

#include <string.h>

/* Length of the layer part of a tensor name ("a.b.weight" -> 3), or 0. */
static size_t layer_len(const char *name)
{
	const char *dot = strrchr(name, '.');
	return dot ? (size_t)(dot - name) : 0;
}

/* Length of the block-call part of a layer name ("res2.conv1" -> 4), or 0. */
static size_t group_len(const char *name, size_t layer)
{
	for (size_t i = layer; i > 0; i--)
		if (name[i - 1] == '.')
			return i - 1;
	return 0;
}

static void shape_str(const nnrt_param_info *p, char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "[");
	for (int k = 0; k < p->rank && n < cap; k++)
		n += (size_t)snprintf(buf + n, cap - n, "%s%lld", k ? ", " : "", (long long)p->shape[k]);
	if (n < cap)
		snprintf(buf + n, cap - n, "]");
}

/* One tensor table (parameters or state), grouped by layer and block call. */
static void print_tensors(const nnrt_param_info *rows, int32_t n, const char *kind)
{
	const char *prev = NULL;
	size_t prev_len = 0, prev_group = 0;
	for (int32_t i = 0; i < n; i++) {
		const char *name = rows[i].name;
		size_t l = layer_len(name), gl = group_len(name, l);
		if (gl && !(prev && prev_group == gl && strncmp(prev, name, gl) == 0))
			printf("  %.*s (block)\n", (int)gl, name);
		if (!prev || prev_len != l || strncmp(prev, name, l) != 0)
			printf("  %s%.*s\n", gl ? "  " : "", l ? (int)(l - (gl ? gl + 1 : 0)) : 1,
			       l ? name + (gl ? gl + 1 : 0) : "-");
		char shape[96];
		shape_str(&rows[i], shape, sizeof shape);
		printf("    %s%-24s %-10s %-20s %12lld\n", gl ? "  " : "", name + (l ? l + 1 : 0), kind, shape,
		       (long long)rows[i].size);
		prev = name;
		prev_len = l;
		prev_group = gl;
	}
}

void nnrt_print_summary(const nnrt_model *m)
{
	char in[128], lab[128];
	printf("model %s  ; batch %lld, summary from the binary's model descriptor\n", m->name, (long long)m->batch);
	printf("  input   %s\n  label   %s\n", nnrt_fmt_input(m, in, sizeof in), nnrt_fmt_label(m, lab, sizeof lab));
	printf("layers and their tensors:\n");
	print_tensors(m->params, m->n_params, "param");
	print_tensors(m->state, m->n_state, "state");
	double fwd = 0, step = 0;
	if (m->n_ops > 0) {
		printf("ops of the training step (FLOPs per sample):\n");
		for (int32_t i = 0; i < m->n_ops; i++) {
			const nnrt_op_info *o = &m->ops[i];
			if (o->flops_per_step > 0)
				printf("  %-36s %-12s %14.0f per step\n", o->name, o->kind, o->flops_per_step);
			else
				printf("  %-36s %-12s %14.0f\n", o->name, o->kind, o->flops_per_sample);
			fwd += o->flops_per_sample;
			step += o->flops_per_step;
		}
	}
	int64_t trainable = 0, fixed = 0;
	for (int32_t i = 0; i < m->n_params; i++)
		trainable += m->params[i].size;
	for (int32_t i = 0; i < m->n_state; i++)
		fixed += m->state[i].size;
	printf("totals\n");
	printf("  trainable parameters      %lld in %d tensors\n", (long long)trainable, m->n_params);
	printf("  non-trainable parameters  %lld in %d tensors\n", (long long)fixed, m->n_state);
	printf("  parameter memory          %.3f MiB\n", (double)(trainable + fixed) * 4 / (1024.0 * 1024.0));
	printf("  planned workspace         %.3f MiB for batch %lld\n", (double)m->ws_floats * 4 / (1024.0 * 1024.0),
	       (long long)m->batch);
	printf("  FLOPs of a training step  %.0f per sample, %.0f per step (the update)\n", fwd, step);
}
