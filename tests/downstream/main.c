/*
 * main.c - a downstream program: trains the xor model through its generated
 * header, hands the parameters to an inference-only build of the same model
 * (another prefix, same program) and checks both predict alike.
 * Prints "downstream ok" and exits 0 when all is well.
 */
#include <stdio.h>
#include <string.h>

#include "xor.h"
#include "xor_infer.h"

enum { N = 256 };

static uint64_t state = 7;
static float uniform(void) /* in [-1, 1) */
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)(state >> 40) / (float)(1 << 23) - 1.0f;
}

static int check(int ok, const char *what)
{
	if (!ok)
		printf("downstream FAILED: %s\n", what);
	return ok;
}

int main(void)
{
	static float x[N][XOR_INPUT_SIZE], out[N][XOR_OUTPUT_SIZE], out2[N][XOR_INFER_OUTPUT_SIZE];
	static int32_t y[N];
	for (int i = 0; i < N; i++) {
		x[i][0] = uniform();
		x[i][1] = uniform();
		y[i] = (x[i][0] > 0) != (x[i][1] > 0);
	}
	int err;
	xor_instance *net = xor_new(&err);
	xor_infer_instance *inf = xor_infer_new(&err);
	if (!check(net && inf, "new"))
		return 1;
	float first = 0, loss = 0;
	for (int epoch = 0; epoch < 60; epoch++) {
		for (int b = 0; b < N; b += XOR_BATCH) {
			if (!check(xor_train_step(net, x[b], y + b, XOR_BATCH, &loss) == NNRT_OK, "train_step"))
				return 1;
			if (epoch == 0 && b == 0)
				first = loss;
		}
	}
	double acc = 0;
	xor_evaluate(net, x[0], y, N, NULL, &acc);
	printf("xor: loss %.4f -> %.4f, accuracy %.4f\n", first, loss, acc);
	if (!check(loss < first && acc >= 0.95, "xor did not learn"))
		return 1;

	float buf[64];
	for (int p = 0; p < XOR_PARAM_TENSORS; p++) {
		int64_t size = xor_model.params[p].size;
		if (!check(size <= 64 && xor_get_param(net, p, buf, size) == NNRT_OK &&
		               xor_infer_set_param(inf, p, buf, size) == NNRT_OK, "copy parameters"))
			return 1;
	}
	if (!check(xor_infer(net, x[0], N, out[0]) == NNRT_OK && xor_infer_infer(inf, x[0], N, out2[0]) == NNRT_OK,
	           "infer"))
		return 1;
	if (!check(memcmp(out, out2, sizeof out) == 0, "the inference-only build predicts differently"))
		return 1;
	/* the newer parts of the API, from the installed library too */
	xor_set_error_handler(net, nnrt_error_ignore, NULL);
	if (!check(xor_set_epoch(net, 60) == NNRT_OK && xor_epoch(net) == 60, "set_epoch") ||
	    !check(xor_load(net, "no such file.ckpt") == NNRT_ERR_IO && xor_error(net)[0], "load a missing file"))
		return 1;
	xor_clear_error(net);
	if (!check(xor_error(net)[0] == 0, "clear_error"))
		return 1;
	xor_free(net);
	xor_infer_free(inf);
	printf("downstream ok\n");
	return 0;
}
