/*
 * onnx.c - writing a model's ONNX file (docs/onnx.md), and the two helpers
 * nnc's --emit-onnx and import use to give values to a model that has no
 * instance yet.
 *
 * nnc builds the ModelProto at compile time (compiler/onnx_export.c) and
 * embeds it without the payloads of the tensors that hold parameters or
 * state; their sizes are static, so writing the file is copying bytes and
 * floats in order, and the runtime needs no protobuf library.  The floats
 * go out little-endian, as ONNX's raw_data requires, whatever the host,
 * and in the layout the piece gives where ONNX's is not nnc's (an LSTM's
 * weights transposed, its gates in ONNX's order): a gather per float.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nnrt_internal.h"

/* The training binary's graph: its object defines it (nnc's
 * nnc_onnx_embed); weak, so that programs built otherwise still link. */
extern const nnrt_onnx nnrt_main_onnx __attribute__((weak));

static void say(char *err, size_t n, const char *fmt, const char *a, const char *b)
{
	if (err && n)
		snprintf(err, n, fmt, a, b);
}

/* Whether p's layout (nnrt.h) describes a matrix of its floats: rows
 * divides count, blocks its columns, and perm names blocks that exist. */
static int layout_ok(const nnrt_onnx_piece *p)
{
	if (p->rows == 0)
		return 1;
	if (p->rows < 0 || p->count % p->rows || p->blocks < 0 || p->blocks > 16 || (p->transpose & ~(int64_t)1))
		return 0;
	int64_t cols = p->count / p->rows, nb = p->blocks > 1 ? p->blocks : 1;
	if (cols % nb)
		return 0;
	for (int64_t b = 0; nb > 1 && b < nb; b++)
		if (((p->perm >> (4 * b)) & 15) >= nb)
			return 0;
	return 1;
}

/* The index into the piece's source of the file's i-th float (layout_ok) */
static int64_t source_index(const nnrt_onnx_piece *p, int64_t i)
{
	if (p->rows == 0)
		return i;
	int64_t cols = p->count / p->rows, r, c;
	if (p->transpose)
		c = i / p->rows, r = i % p->rows;
	else
		r = i / cols, c = i % cols;
	if (p->blocks > 1) {
		int64_t w = cols / p->blocks;
		c = ((p->perm >> (4 * (c / w))) & 15) * w + c % w;
	}
	return r * cols + c;
}

/* Writes p's count floats of x little-endian, in p's layout; returns
 * whether all were written. */
static int put_floats(FILE *f, const float *x, const nnrt_onnx_piece *p)
{
	unsigned char buf[4096];
	int64_t i = 0, count = p->count;
	while (i < count) {
		size_t k = 0;
		for (; i < count && k + 4 <= sizeof buf; i++, k += 4) {
			uint32_t u;
			memcpy(&u, &x[source_index(p, i)], 4);
			buf[k] = (unsigned char)u;
			buf[k + 1] = (unsigned char)(u >> 8);
			buf[k + 2] = (unsigned char)(u >> 16);
			buf[k + 3] = (unsigned char)(u >> 24);
		}
		if (fwrite(buf, 1, k, f) != k)
			return 0;
	}
	return 1;
}

int nnrt_onnx_write(const nnrt_onnx *o, const float *params, const float *state, const char *path, char *err,
                    size_t n)
{
	if (!o || !path || !*path) {
		say(err, n, "%s%s", "no ONNX graph or no file name", "");
		return NNRT_ERR_ARG;
	}
	if (o->version != NNRT_ONNX_VERSION) {
		say(err, n, "%s%s", "the model's ONNX graph is of another nnc version: rebuild the program with this nnc", "");
		return NNRT_ERR_MODEL;
	}
	if (o->error) {
		say(err, n, "%s%s", o->error, "");
		return NNRT_ERR_MODEL;
	}
	for (int64_t i = 0; i < o->n_pieces; i++)
		if (!layout_ok(&o->pieces[i])) {
			say(err, n, "%s%s", "the model's ONNX graph is malformed (a tensor's layout)", "");
			return NNRT_ERR_MODEL;
		}
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (!tmp) {
		say(err, n, "%s%s", "out of memory", "");
		return NNRT_ERR_NOMEM;
	}
	snprintf(tmp, plen + 16, "%s.tmp%d", path, (int)getpid() % 100000);
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		say(err, n, "cannot write %s: %s", path, strerror(errno));
		free(tmp);
		return NNRT_ERR_IO;
	}
	int ok = 1;
	int64_t pos = 0;
	for (int64_t i = 0; ok && i < o->n_pieces; i++) {
		const nnrt_onnx_piece *p = &o->pieces[i];
		const float *src = p->from == NNRT_ONNX_STATE ? state : params;
		ok = fwrite(o->bytes + pos, 1, (size_t)(p->at - pos), f) == (size_t)(p->at - pos) &&
		     put_floats(f, src + p->offset, p);
		pos = p->at;
	}
	ok = ok && fwrite(o->bytes + pos, 1, (size_t)(o->len - pos), f) == (size_t)(o->len - pos);
	int saved = errno;
	if (fclose(f) != 0 && ok) {
		ok = 0;
		saved = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = 0;
		saved = errno;
	}
	if (!ok) {
		remove(tmp);
		say(err, n, "cannot write %s: %s", path, strerror(saved));
	}
	free(tmp);
	return ok ? NNRT_OK : NNRT_ERR_IO;
}

int nnrt_instance_export_onnx(nnrt_instance *inst, const nnrt_onnx *o, const char *path)
{
	if (!inst)
		return NNRT_ERR_ARG;
	char msg[256];
	int rc = nnrt_onnx_write(o, inst->params, inst->state, path, msg, sizeof msg);
	if (rc) {
		snprintf(inst->msg, sizeof inst->msg, "export_onnx: %s", msg);
		if (inst->on_error)
			inst->on_error(inst->on_error_ctx, rc, inst->msg);
	}
	return rc;
}

int nnrt_onnx_export_main(const float *params, const float *state, const char *path)
{
	char msg[512];
	if (!&nnrt_main_onnx) {
		nnrt_error("--export-onnx: this program was not built by nnc with an ONNX graph");
		return NNRT_EXIT_FAILURE;
	}
	if (nnrt_onnx_write(&nnrt_main_onnx, params, state, path, msg, sizeof msg)) {
		nnrt_error("--export-onnx %s: %s", path, msg);
		return NNRT_EXIT_FAILURE;
	}
	return NNRT_EXIT_OK;
}

void nnrt_model_initial_values(const nnrt_model *m, uint64_t seed, float *params, float *state)
{
	nnrt_rng r;
	nnrt_rng_seed(&r, seed);
	if (m->param_floats > 0)
		memset(params, 0, (size_t)m->param_floats * sizeof(float));
	nnrt_init_params(m, params, &r);
	if (state)
		nnrt_init_state(m, state);
}

int nnrt_model_save_values(const nnrt_model *m, const float *params, const float *state, const char *path)
{
	nnrt_train_state st;
	memset(&st, 0, sizeof st);
	nnrt_rng_seed(&st.rng, (uint64_t)m->seed);
	float *opt = calloc(m->opt_floats > 0 ? (size_t)m->opt_floats : 1, sizeof(float));
	if (!opt) {
		nnrt_error("cannot write %s: out of memory", path);
		return NNRT_ERR_NOMEM;
	}
	int rc = nnrt_ckpt_save(path, m, params, opt, state, &st);
	free(opt);
	return rc ? NNRT_ERR_IO : NNRT_OK;
}
