/*
 * generate.c - sampling text from a trained sequence model (issue #16):
 * the training binary's --generate and nnrt_instance_generate() of the
 * embedding API.
 *
 * A model with a token(V)[T] input and a class(V)[T] label predicts, at
 * each position, the next token.  Generation runs the compiled inference
 * graph on one window: the context (prompt, then what was sampled) fills
 * the window from position 0; once it is longer than T, the window holds
 * its last T tokens.  The distribution at the context's last position is
 * sharpened or flattened by the temperature (p^(1/t), renormalised), cut
 * to its k most likely tokens, and sampled with the runtime's seeded
 * generator, so a seed gives the same text every time.  For a causal model
 * the positions after the context do not affect the ones before, so the
 * filler after a short context (zeros) changes nothing; no KV cache: each
 * token runs the whole window again.
 */
#include "nnrt_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Index of token to draw from probs[0..V) at temperature t, top k (0: all) */
static int32_t draw(const float *probs, int64_t V, double temp, int64_t k, double *w, nnrt_rng *r)
{
	double total = 0;
	for (int64_t v = 0; v < V; v++)
		w[v] = probs[v] > 0 ? pow((double)probs[v], 1.0 / temp) : 0;
	if (k > 0 && k < V) {
		/* the k-th largest weight; ties kept by lower index */
		for (int64_t v = 0; v < V; v++) {
			int64_t above = 0;
			for (int64_t u = 0; u < V && above < k; u++)
				above += w[u] > w[v] || (w[u] == w[v] && u < v);
			if (above >= k)
				w[v] = -w[v] - 1; /* marked: dropped below */
		}
		for (int64_t v = 0; v < V; v++)
			if (w[v] < 0)
				w[v] = 0;
	}
	for (int64_t v = 0; v < V; v++)
		total += w[v];
	if (!(total > 0))
		return 0;
	double u = nnrt_rng_uniform_d(r) * total, acc = 0;
	for (int64_t v = 0; v < V; v++) {
		acc += w[v];
		if (u < acc && w[v] > 0)
			return (int32_t)v;
	}
	for (int64_t v = V - 1; v >= 0; v--)
		if (w[v] > 0)
			return (int32_t)v;
	return 0;
}

int nnrt_instance_generate(nnrt_instance *inst, const int32_t *prompt, int64_t np, int64_t n, float temperature,
                           int64_t top_k, uint64_t seed, int32_t *out)
{
	if (!inst || !prompt || !out || np < 1 || n < 0 || !(temperature > 0) || top_k < 0)
		return NNRT_ERR_ARG;
	const nnrt_model *m = inst->m;
	int64_t T = m->input_size;
	if (m->loss != NNRT_LOSS_SEQ_XENT || m->label_size != T || m->output_size % T)
		return NNRT_ERR_MODEL; /* not a next-token model */
	int64_t V = m->output_size / T;
	for (int64_t i = 0; i < np; i++)
		if (prompt[i] < 0 || prompt[i] >= V)
			return NNRT_ERR_ARG;
	float *x = nnrt_alloc_floats(T, "the generation window");
	float *probs = nnrt_alloc_floats(m->output_size, "the generated probabilities");
	int32_t *ctx = nnrt_calloc(np + n, sizeof(int32_t), "the generated text");
	double *w = nnrt_calloc(V, sizeof(double), "the sampling weights");
	int rc = NNRT_OK;
	if (!x || !probs || !ctx || !w) {
		rc = NNRT_ERR_NOMEM;
		goto out;
	}
	memcpy(ctx, prompt, sizeof(int32_t) * (size_t)np);
	nnrt_rng r;
	nnrt_rng_seed(&r, seed);
	for (int64_t i = 0; i < n; i++) {
		int64_t len = np + i, start = len > T ? len - T : 0, used = len - start;
		memset(x, 0, sizeof(float) * (size_t)T);
		for (int64_t t = 0; t < used; t++)
			x[t] = (float)ctx[start + t];
		if ((rc = nnrt_instance_infer(inst, x, 1, probs)) != NNRT_OK)
			goto out;
		ctx[len] = out[i] = draw(probs + (used - 1) * V, V, temperature, top_k, w, &r);
	}
out:
	nnrt_free(x);
	nnrt_free(probs);
	nnrt_free(ctx);
	nnrt_free(w);
	return rc;
}

int nnrt_generate_text(nnrt_instance *inst, const nnrt_cli *c)
{
	const nnrt_model *m = inst->m;
	const char *prompt = c->prompt ? c->prompt : "\n";
	int64_t np = (int64_t)strlen(prompt), V = m->output_size / m->input_size;
	int32_t *ids = nnrt_calloc(np + c->generate, sizeof(int32_t), "the generated text");
	if (!ids)
		return NNRT_EXIT_FAILURE;
	for (int64_t i = 0; i < np; i++) {
		ids[i] = (unsigned char)prompt[i];
		if (ids[i] >= V) {
			nnrt_error("--prompt: byte %lld is %d, outside the model's vocabulary of %lld tokens", (long long)i,
			           (int)ids[i], (long long)V);
			nnrt_free(ids);
			return NNRT_EXIT_USAGE;
		}
	}
	int rc = nnrt_instance_generate(inst, ids, np, c->generate, c->temperature > 0 ? (float)c->temperature : 1.0f,
	                                c->top_k, c->seed, ids + np);
	if (rc != NNRT_OK) {
		nnrt_error("--generate: %s", nnrt_strerror(rc));
		nnrt_free(ids);
		return NNRT_EXIT_FAILURE;
	}
	fputs("generated:\n", stdout);
	for (int64_t i = 0; i < np + c->generate; i++)
		putchar(ids[i] < 256 ? ids[i] : '?');
	putchar('\n');
	nnrt_free(ids);
	return 0;
}
