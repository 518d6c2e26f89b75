/*
 * onnx_import.c - `nnc import model.onnx -o model.nn`: an ONNX inference
 * graph as a readable .nn program, and its weights as a checkpoint the
 * program's training binary loads (docs/onnx.md).
 *
 * The ModelProto is parsed with protoc-c's bindings of onnx.proto.  The
 * graph is walked once in its (topological) order; every node becomes one
 * stage of nnc's surface syntax, tracked with its per-sample shape.  Stages
 * are strung into `|>` pipelines while the graph is a chain (a value read
 * once, by the next node); a value read twice, or by an n-ary node, ends
 * its line and gets a name, taken from the ONNX node.  Layers are named
 * after their weights ("conv1.weight" -> name: "conv1") or their node.
 * Sub-graphs that repeat become blocks: the graph is imported twice, the
 * first time silently with every candidate (a run of nodes of one ONNX
 * scope with one entry and one exit) written as a block body, to find the
 * candidates whose bodies are the same; the second time those are calls.
 *
 * Everything that is wrong with the file is collected, then reported at
 * once: unsupported ops by name and node, attributes nnc cannot express,
 * dynamic dimensions other than the batch, external data.  The weights go
 * out in nnc's layouts (a Gemm's B transposed to [in, out] unless transB is
 * 0), and the checkpoint is written for the program nnc compiles from the
 * text just written (parsed and checked here, so the table, offsets and
 * fingerprint are the compiled model's).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdarg.h>

#include <onnx.pb-c.h>

#include "diag.h"
#include "onnx.h"
#include "output.h"
#include "sema.h"

#define MAX_IMPORT_BYTES (1L << 30) /* 1 GiB: larger models keep their weights in external data anyway */
#define OPSET_MIN 7
#define OPSET_MAX 21

typedef Onnx__NodeProto Node;

/* A value of the graph: the input, a node's output, or an initializer. */
typedef struct value {
	const char *onnx;       /* its ONNX name */
	const Onnx__TensorProto *init; /* an initializer or Constant, else NULL */
	int rank;               /* per sample (the batch dimension left out) */
	int64_t dims[4];
	int nnc_rank;           /* the rank nnc gives it: global_avgpool's [C] for ONNX's [C, 1, 1] */
	int uses;               /* nodes that read it */
	int line;               /* the open line it ends, or -1 */
	const char *var;        /* its .nn name once it has one */
	int alias;              /* an Identity or Dropout of value alias, or -1 */
	bool softmax;           /* the output of a Softmax of value alias */
	const char *node;       /* the name of the node that computes it, or NULL */
	bool bad;               /* its node could not be imported (reported once, there) */
	int tm;                 /* a step of the time-major detour around an LSTM or GRU (TM_*), 0: none */
} value;

/* ONNX's LSTM and GRU read [T, N, d] and write [T, 1, N, H] (Y) or
 * [1, N, H] (Y_h); nnc's sequences are batch first, [N, T, d].  The nodes
 * around them (nnc's own export: Transpose, the node, Squeeze, Transpose)
 * are aliases of the sequence and of the layer's result, each marked with
 * where it is in that detour, and read by nothing else. */
enum {
	TM_INPUT = 1,   /* x transposed to [T, N, d]: read by LSTM or GRU */
	TM_STATES,      /* Y [T, 1, N, H]: read by Squeeze (axis 1) */
	TM_SQUEEZED,    /* [T, N, H]: read by Transpose (1, 0, 2) */
	TM_LAST,        /* Y_h [1, N, H]: read by Squeeze (axis 0) */
};

typedef struct line {
	nnc_buf text;           /* "SRC |> stage |> stage" */
	int stages;
	int tail;               /* the value it ends with */
	const char *name;       /* when closed */
} line;

typedef nnc_onnx_weight weight;

/* Names handed out, compared without case. */
typedef struct names {
	const char **s;
	int n;
} names;

/* A run of consecutive nodes that share an ONNX scope ("/block2/..." of
 * PyTorch, "residual2." of nnc) and that the rest of the graph sees as a
 * function of one value: one entry (a value it reads from outside, not an
 * initializer) and one exit (its only value read outside).  Runs whose
 * bodies read the same, but for the numbers a block can take as
 * arguments, become one `block`, called once per run. */
typedef struct region {
	const char *scope;      /* "block2": the call's name */
	int first, last;        /* its first and last node (Constants aside) */
	const char *entry, *exit; /* ONNX names */
	int inner_entry_reads;  /* reads of entry inside the run */
	int outer_exit_reads;   /* reads of exit after it (the graph output counts) */
	/* written while its nodes are imported as a body */
	char *body;             /* its statements, each argument a '\1' */
	const char **arg;       /* the arguments' values ("16", "2", "[2, 1]") */
	const char **kind;      /* and what they are ("filters", "stride", "units") */
	int nargs;
	bool bad;               /* a layer not named under the scope, an exit that is the entry */
	int block;              /* its block in the second pass, or -1: expanded */
} region;

/* A block: runs of one body, and which argument of the body is which
 * parameter (-1: the same literal in every call). */
typedef struct block_def {
	const char *name;
	char *text;             /* "block NAME(x, filters) {\n...}\n" */
	int *param;             /* per argument of the body */
	const char **params;    /* the parameters' names after x */
	int nparams;
} block_def;

typedef struct importer {
	const char *path;
	Onnx__GraphProto *g;
	value *vals;
	int nvals, cap;
	line *lines;
	int nlines;
	weight *w;
	int nw;
	names glob;             /* .nn names and layer names handed out */
	names *vnames;          /* where value names go: glob, or the body's own */
	region *regs;
	int nregs;
	int cur;                /* the region whose nodes are being imported as a body, or -1 */
	names body_names;
	block_def *blocks;
	int nblocks;
	int input;              /* the graph input's value */
	bool collect;           /* the first pass: every region is imported as a body, to compare them */
	const int *region_block; /* the first pass's verdict: each region's block, or -1 */
	int nregion_block;
	bool quiet;             /* the first pass: errors are counted, not printed */
	nnc_buf unsupported;    /* "'Op' (node 'n'), ..." */
	int nunsupported;
	int errors;
	int opset;
} importer;

static void err(importer *im, const char *fmt, ...) NNC_PRINTF(2, 3);
static void err(importer *im, const char *fmt, ...)
{
	im->errors++;
	if (im->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%s: error: ", im->path);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *node_name(const Node *n)
{
	return n->name && *n->name ? n->name : n->n_output && n->output[0] ? n->output[0] : "?";
}

/* ---- Values ---- */

static int find(importer *im, const char *name)
{
	for (int i = im->nvals - 1; i >= 0; i--)
		if (!strcmp(im->vals[i].onnx, name))
			return i;
	return -1;
}

static int add_value(importer *im, const char *name)
{
	if (im->nvals == im->cap) {
		int cap = im->cap ? 2 * im->cap : 64;
		im->vals = nnc_realloc_array(im->vals, (size_t)im->cap, (size_t)cap, sizeof *im->vals);
		im->cap = cap;
	}
	value *v = &im->vals[im->nvals];
	memset(v, 0, sizeof *v);
	v->onnx = name;
	v->line = -1;
	v->alias = -1;
	return im->nvals++;
}

/* ov becomes another name of value x (an Identity, a Flatten of a vector):
 * x's readers are then its own but the aliasing node, and ov's, so that a
 * value read through several names ends its line like one read twice. */
static void alias_of(importer *im, value *ov, int x)
{
	ov->alias = x;
	im->vals[x].uses += ov->uses - 1;
}

static int resolve(importer *im, int v)
{
	while (v >= 0 && im->vals[v].alias >= 0 && !im->vals[v].softmax)
		v = im->vals[v].alias;
	return v;
}

/* ---- Names ---- */

static bool taken_in(const names *t, const char *s)
{
	for (int i = 0; i < t->n; i++)
		if (!strcasecmp(t->s[i], s))
			return true;
	return false;
}

/* s with its control characters (line breaks above all) as spaces, for a
 * comment of the written program: the file's strings are the producer's. */
static const char *one_line(const char *s)
{
	char *t = nnc_strdup(s);
	for (char *p = t; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return t;
}

static const char *claim_in(names *t, const char *base)
{
	const char *s = base;
	for (int k = 2; taken_in(t, s); k++)
		s = nnc_sprintf("%s_%d", base, k);
	t->s = nnc_realloc_array(t->s, (size_t)t->n, (size_t)t->n + 1, sizeof *t->s);
	t->s[t->n++] = s;
	return s;
}

static bool taken(importer *im, const char *s)
{
	return taken_in(&im->glob, s);
}

static const char *claim(importer *im, const char *base)
{
	return claim_in(&im->glob, base);
}

/* An identifier from an ONNX name: "/block1/Relu_1" -> "block1_relu_1";
 * keep_dots keeps '.' (layer names, as in "block1.conv1"). */
static char *sanitize(const char *s, bool keep_dots)
{
	size_t n = strlen(s);
	char *o = nnc_alloc(n + 3);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char d = isalnum(c) ? (char)tolower(c) : (keep_dots && c == '.') ? '.' : '_';
		if ((d == '_' || d == '.') && (k == 0 || o[k - 1] == '_' || o[k - 1] == '.'))
			continue;
		o[k++] = d;
	}
	while (k && (o[k - 1] == '_' || o[k - 1] == '.'))
		k--;
	o[k] = 0;
	if (!k || isdigit((unsigned char)o[0])) {
		memmove(o + 2, o, k + 1);
		o[0] = 'v', o[1] = '_';
	}
	return o;
}

static const char *reserved[] = {"model", "input", "label", "output", "loss", "optimizer", "train", "block",
				  "layer", "return", "if", "repeat", "else", "true", "false", "same",
				  /* the layers', which a value could shadow in a reader's eyes */
				  "dense", "conv2d", "maxpool", "avgpool", "global_avgpool", "flatten", "batchnorm", "dropout",
				  "concat", "softmax", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "softplus", "silu",
				  "gelu", NULL};

static const char *value_name(importer *im, const char *base)
{
	char *s = sanitize(base, false);
	if (im->cur >= 0) { /* "/block2/Relu_1" in block2's body: "relu_1" */
		const char *sc = sanitize(im->regs[im->cur].scope, false);
		size_t n = strlen(sc);
		if (!strncmp(s, sc, n) && s[n] == '_' && s[n + 1] && !isdigit((unsigned char)s[n + 1]))
			s += n + 1;
	}
	for (int i = 0; reserved[i]; i++)
		if (!strcmp(s, reserved[i]))
			s = nnc_sprintf("%s_out", s);
	return claim_in(im->vnames, s);
}

/* The layer's name: its weight's ("conv1.weight" -> "conv1") when PyTorch
 * or nnc named it, else the node's ("/stem/Conv" -> "stem.conv"). */
static const char *layer_name(importer *im, const Node *n, const char *weight)
{
	const char *dot = weight ? strrchr(weight, '.') : NULL;
	const char *base;
	if (dot && !strcmp(dot, ".weight") && !strchr(weight, ':')) {
		base = nnc_strndup(weight, (size_t)(dot - weight));
	} else { /* "/block2/short/short.0/Conv" -> "block2.short.short.0" */
		char *b = nnc_strdup(node_name(n));
		char *last = strrchr(b, '/');
		if (last && last != b && n->op_type && !strcmp(last + 1, n->op_type))
			*last = 0;
		for (char *p = b; *p; p++)
			if (*p == '/')
				*p = '.';
		base = b;
	}
	char *s = sanitize(base, true);
	return claim(im, s);
}

/* The name a layer is written with: its own, or in a body the part after
 * the call's name ("block2.conv1" -> "conv1": sema names it "block2." and
 * that again, so the checkpoint's names are those of the expanded
 * program).  A layer named otherwise keeps its run from being a block. */
static const char *written_name(importer *im, const char *layer)
{
	if (im->cur < 0)
		return layer;
	region *r = &im->regs[im->cur];
	const char *sc = sanitize(r->scope, true);
	size_t n = strlen(sc);
	if (strncmp(layer, sc, n) || layer[n] != '.' || !layer[n + 1]) {
		r->bad = true;
		return layer;
	}
	return layer + n + 1;
}

/* A number of a layer's call that a block may take as an argument (of
 * kind "filters", "stride" or "units"): `top` outside a body; in one, a
 * '\1' whose value is `val`. */
static const char *argument(importer *im, const char *kind, const char *top, const char *val)
{
	if (im->cur < 0)
		return top;
	region *r = &im->regs[im->cur];
	r->arg = nnc_realloc_array(r->arg, (size_t)r->nargs, (size_t)r->nargs + 1, sizeof *r->arg);
	r->kind = nnc_realloc_array(r->kind, (size_t)r->nargs, (size_t)r->nargs + 1, sizeof *r->kind);
	r->arg[r->nargs] = val;
	r->kind[r->nargs++] = kind;
	return "\1";
}

/* ---- Tensors ---- */

static int64_t tensor_count(const Onnx__TensorProto *t)
{
	int64_t c = 1;
	for (size_t i = 0; i < t->n_dims; i++)
		c = t->dims[i] < 0 || (t->dims[i] && c > INT64_MAX / t->dims[i]) ? -1 : c * t->dims[i];
	return c;
}

/* The float values of an initializer, or NULL after reporting. */
static float *floats_of(importer *im, const Onnx__TensorProto *t, const Node *n)
{
	const char *tn = t->name ? t->name : "?";
	if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
		err(im, "tensor '%s' (read by node '%s') keeps its data in an external file (data_location EXTERNAL); "
			"nnc import reads only weights stored in the model file", tn, node_name(n));
		return NULL;
	}
	if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
		err(im, "tensor '%s' (read by node '%s') has data_type %d; nnc imports float (1) weights", tn,
		    node_name(n), t->data_type);
		return NULL;
	}
	int64_t c = tensor_count(t);
	if (c < 0 || c > (1LL << 31)) {
		err(im, "tensor '%s': field 'dims' is invalid", tn);
		return NULL;
	}
	if (!c) { /* a layer of 0 units or channels: nnc's sizes are positive */
		err(im, "tensor '%s' (read by node '%s') is empty: one of its dims is 0", tn, node_name(n));
		return NULL;
	}
	float *x = nnc_alloc(sizeof(float) * (size_t)(c ? c : 1));
	if (t->has_raw_data && t->raw_data.len) {
		if ((int64_t)t->raw_data.len != 4 * c) {
			err(im, "tensor '%s': field 'raw_data' holds %zu bytes but its dims need %lld", tn, t->raw_data.len,
			    (long long)(4 * c));
			return NULL;
		}
		const unsigned char *p = t->raw_data.data;
		for (int64_t i = 0; i < c; i++) {
			uint32_t u = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
				     (uint32_t)p[4 * i + 3] << 24;
			memcpy(&x[i], &u, 4);
		}
	} else if ((int64_t)t->n_float_data == c) {
		if (c) /* an empty field's pointer is NULL */
			memcpy(x, t->float_data, sizeof(float) * (size_t)c);
	} else {
		err(im, "tensor '%s': field 'float_data' holds %zu values but its dims need %lld", tn, t->n_float_data,
		    (long long)c);
		return NULL;
	}
	return x;
}

/* An int64 initializer (a Reshape's shape) into v[max]; its count or -1. */
static int ints_of(const Onnx__TensorProto *t, int64_t *v, int max)
{
	int64_t c = tensor_count(t);
	if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || c < 0 || c > max)
		return -1;
	if (t->has_raw_data && (int64_t)t->raw_data.len == 8 * c) {
		for (int64_t i = 0; i < c; i++) {
			uint64_t u = 0;
			for (int b = 7; b >= 0; b--)
				u = u << 8 | t->raw_data.data[8 * i + b];
			v[i] = (int64_t)u;
		}
	} else if ((int64_t)t->n_int64_data == c) {
		if (c) /* an empty field's pointer is NULL */
			memcpy(v, t->int64_data, sizeof(int64_t) * (size_t)c);
	} else {
		return -1;
	}
	return (int)c;
}

static void add_weight(importer *im, const char *name, float *data, int64_t count)
{
	im->w = nnc_realloc_array(im->w, (size_t)im->nw, (size_t)im->nw + 1, sizeof *im->w);
	im->w[im->nw++] = (weight){name, data, count};
}

/* ---- Attributes ---- */

static const Onnx__AttributeProto *attr(const Node *n, const char *name)
{
	for (size_t i = 0; i < n->n_attribute; i++)
		if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
			return n->attribute[i];
	return NULL;
}

static int64_t attr_i(const Node *n, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = attr(n, name);
	return a && a->has_i ? a->i : def;
}

static double attr_f(const Node *n, const char *name, double def)
{
	const Onnx__AttributeProto *a = attr(n, name);
	return a && a->has_f ? a->f : def;
}

/* An INTS attribute of k values into v; def fills a missing one.  False if
 * it has another length. */
static bool attr_ints(const Node *n, const char *name, int k, int64_t *v, int64_t def)
{
	const Onnx__AttributeProto *a = attr(n, name);
	if (!a) {
		for (int i = 0; i < k; i++)
			v[i] = def;
		return true;
	}
	if ((int)a->n_ints != k)
		return false;
	for (int i = 0; i < k; i++)
		v[i] = a->ints[i];
	return true;
}

static const char *attr_s(const Node *n, const char *name)
{
	const Onnx__AttributeProto *a = attr(n, name);
	return a && a->has_s ? nnc_strndup((const char *)a->s.data, a->s.len) : NULL;
}

/* ---- Lines ---- */

/* The shortest decimal that reads back as the same float (ONNX's
 * attributes are float32): 0.1, not 0.100000024. */
static const char *fmt_num(double v)
{
	for (int p = 1; p < 9; p++) {
		char *s = nnc_sprintf("%.*g", p, v);
		if ((float)strtod(s, NULL) == (float)v)
			return s;
	}
	return nnc_sprintf("%.9g", v);
}

/* The .nn name of value v, closing the line it ends. */
static const char *ref(importer *im, int v)
{
	v = resolve(im, v);
	value *x = &im->vals[v];
	if (x->var)
		return x->var;
	NNC_ASSERT(x->line >= 0);
	line *l = &im->lines[x->line];
	l->name = x->var = value_name(im, x->node ? x->node : x->onnx);
	x->line = -1;
	return x->var;
}

static line *new_line(importer *im, int tail)
{
	im->lines = nnc_realloc_array(im->lines, (size_t)im->nlines, (size_t)im->nlines + 1, sizeof *im->lines);
	line *l = &im->lines[im->nlines];
	memset(l, 0, sizeof *l);
	l->tail = tail;
	im->vals[tail].line = im->nlines++;
	return l;
}

/* out = in |> stage: continues in's line when in is read only here. */
static void stage(importer *im, int in, int out, const char *text)
{
	in = resolve(im, in);
	value *x = &im->vals[in];
	line *l;
	if (x->line >= 0 && x->uses == 1) {
		l = &im->lines[x->line];
		x->line = -1;
		l->tail = out;
		im->vals[out].line = (int)(l - im->lines);
	} else {
		const char *src = ref(im, in);
		l = new_line(im, out);
		nnc_buf_puts(&l->text, src);
	}
	nnc_buf_printf(&l->text, "\n  |> %s", text);
	l->stages++;
}

/* out = expr (an n-ary node). */
static void expr_line(importer *im, int out, const char *text)
{
	line *l = new_line(im, out);
	nnc_buf_puts(&l->text, text);
}

/* ---- Nodes ---- */

static void unsupported(importer *im, const Node *n, const char *why)
{
	nnc_buf_printf(&im->unsupported, "%s'%s' (node '%s'%s%s)", im->nunsupported ? ", " : "",
		       n->op_type ? n->op_type : "?", node_name(n), why ? ": " : "", why ? why : "");
	im->nunsupported++;
}

static void set_shape(value *v, int rank, const int64_t *dims)
{
	v->rank = v->nnc_rank = rank;
	for (int i = 0; i < rank; i++)
		v->dims[i] = dims[i];
}

static int64_t size_of(const value *v)
{
	int64_t s = 1;
	for (int i = 0; i < v->rank; i++)
		s *= v->dims[i];
	return s;
}

/* The node's k-th input as a value index, or -1 (missing or optional). */
static int input(importer *im, const Node *n, size_t k)
{
	if (k >= n->n_input || !n->input[k] || !*n->input[k])
		return -1;
	return find(im, n->input[k]);
}

/* Conv: W [F, C, kh, kw], optional bias [F]. */
static bool conv(importer *im, const Node *n, int x, int out)
{
	value *xv = &im->vals[x];
	int w = input(im, n, 1), b = input(im, n, 2);
	if (w < 0 || !im->vals[w].init || (n->n_input > 2 && *n->input[2] && (b < 0 || !im->vals[b].init))) {
		unsupported(im, n, "weights that are not initializers");
		return false;
	}
	const Onnx__TensorProto *W = im->vals[w].init;
	int64_t k[2], s[2], d[2], p[4];
	const char *ap = attr_s(n, "auto_pad");
	if (W->n_dims != 4 || xv->nnc_rank != 3 || W->dims[1] != xv->dims[0] || attr_i(n, "group", 1) != 1 ||
	    !attr_ints(n, "kernel_shape", 2, k, 0) || !attr_ints(n, "strides", 2, s, 1) ||
	    !attr_ints(n, "dilations", 2, d, 1) || !attr_ints(n, "pads", 4, p, 0) || d[0] != 1 || d[1] != 1 ||
	    p[0] != p[2] || p[1] != p[3] || (ap && strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))) {
		unsupported(im, n, "a 2-D convolution of an image with group 1, dilation 1 and symmetric explicit pads "
				   "is what nnc's conv2d is");
		return false;
	}
	if (!k[0])
		k[0] = W->dims[2], k[1] = W->dims[3];
	int64_t F = W->dims[0], oh = (xv->dims[1] + 2 * p[0] - k[0]) / s[0] + 1, ow = (xv->dims[2] + 2 * p[1] - k[1]) / s[1] + 1;
	if (k[0] != W->dims[2] || k[1] != W->dims[3] || oh < 1 || ow < 1 || p[0] >= k[0] || p[1] >= k[1]) {
		unsupported(im, n, "kernel_shape, pads and the weight's shape do not fit the input");
		return false;
	}
	const char *name = layer_name(im, n, W->name);
	float *wd = floats_of(im, W, n), *bd = b >= 0 ? floats_of(im, im->vals[b].init, n) : NULL;
	if (!wd || (b >= 0 && !bd))
		return false;
	if (b >= 0 && tensor_count(im->vals[b].init) != F) {
		err(im, "node '%s': the bias has %lld values for %lld filters", node_name(n),
		    (long long)tensor_count(im->vals[b].init), (long long)F);
		return false;
	}
	add_weight(im, nnc_sprintf("%s.weight", name), wd, tensor_count(W));
	if (bd)
		add_weight(im, nnc_sprintf("%s.bias", name), bd, F);
	const char *fs = nnc_sprintf("%lld", (long long)F);
	const char *ss = nnc_sprintf("[%lld, %lld]", (long long)s[0], (long long)s[1]);
	const char *fa = argument(im, "filters", fs, fs);
	const char *sa = argument(im, "stride", ss, s[0] == s[1] ? nnc_sprintf("%lld", (long long)s[0]) : ss);
	stage(im, x, out,
	      nnc_sprintf("conv2d(%s, [%lld, %lld], stride: %s, pad: [%lld, %lld]%s, name: \"%s\")", fa, (long long)k[0],
			  (long long)k[1], sa, (long long)p[0], (long long)p[1], bd ? "" : ", bias: false",
			  written_name(im, name)));
	set_shape(&im->vals[out], 3, (int64_t[]){F, oh, ow});
	return true;
}

/* Gemm: Y = alpha A B' + beta C, A [n, K]. */
static bool gemm(importer *im, const Node *n, int x, int out)
{
	value *xv = &im->vals[x];
	int w = input(im, n, 1), c = input(im, n, 2);
	if (w < 0 || !im->vals[w].init || (n->n_input > 2 && *n->input[2] && (c < 0 || !im->vals[c].init))) {
		unsupported(im, n, "weights that are not initializers");
		return false;
	}
	const Onnx__TensorProto *W = im->vals[w].init;
	int64_t tb = attr_i(n, "transB", 0);
	double alpha = attr_f(n, "alpha", 1), beta = attr_f(n, "beta", 1);
	int64_t K = size_of(xv);
	if (attr_i(n, "transA", 0) || W->n_dims != 2 || xv->nnc_rank != 1 || W->dims[tb ? 1 : 0] != K) {
		unsupported(im, n, "A must be the [batch, features] input and B a [K, N] weight");
		return false;
	}
	int64_t O = W->dims[tb ? 0 : 1];
	const char *name = layer_name(im, n, W->name);
	float *wd = floats_of(im, W, n);
	float *bd = c >= 0 ? floats_of(im, im->vals[c].init, n) : NULL;
	if (!wd || (c >= 0 && !bd))
		return false;
	float *wn = nnc_alloc(sizeof(float) * (size_t)(K * O)); /* nnc's [K, O] */
	for (int64_t i = 0; i < K; i++)
		for (int64_t j = 0; j < O; j++)
			wn[i * O + j] = (float)(alpha * (tb ? wd[j * K + i] : wd[i * O + j]));
	add_weight(im, nnc_sprintf("%s.weight", name), wn, K * O);
	if (bd) {
		int64_t bc = tensor_count(im->vals[c].init);
		if (bc != O && bc != 1) {
			unsupported(im, n, "C must be a vector of N values or a scalar");
			return false;
		}
		float *bn = nnc_alloc(sizeof(float) * (size_t)O);
		for (int64_t j = 0; j < O; j++)
			bn[j] = (float)(beta * bd[bc == 1 ? 0 : j]);
		add_weight(im, nnc_sprintf("%s.bias", name), bn, O);
	}
	const char *os = nnc_sprintf("%lld", (long long)O);
	stage(im, x, out, nnc_sprintf("dense(%s%s, name: \"%s\")", argument(im, "units", os, os), bd ? "" : ", bias: false",
				      written_name(im, name)));
	set_shape(&im->vals[out], 1, (int64_t[]){O});
	return true;
}

static bool pool(importer *im, const Node *n, int x, int out, bool avg)
{
	value *xv = &im->vals[x];
	int64_t k[2], s[2], p[4], d[2];
	const char *ap = attr_s(n, "auto_pad");
	if (xv->nnc_rank != 3 || !attr_ints(n, "kernel_shape", 2, k, 0) || !k[0] || !attr_ints(n, "strides", 2, s, 1) ||
	    !attr_ints(n, "pads", 4, p, 0) || !attr_ints(n, "dilations", 2, d, 1) || p[0] || p[1] || p[2] || p[3] ||
	    d[0] != 1 || d[1] != 1 || attr_i(n, "ceil_mode", 0) || (ap && strcmp(ap, "NOTSET") && strcmp(ap, "VALID")) ||
	    k[0] > xv->dims[1] || k[1] > xv->dims[2] || n->n_output > 1) {
		unsupported(im, n, "nnc pools an image without padding, dilation or ceil_mode");
		return false;
	}
	stage(im, x, out, nnc_sprintf("%s(size: [%lld, %lld], stride: [%lld, %lld])", avg ? "avgpool" : "maxpool",
				      (long long)k[0], (long long)k[1], (long long)s[0], (long long)s[1]));
	set_shape(&im->vals[out], 3,
		  (int64_t[]){xv->dims[0], (xv->dims[1] - k[0]) / s[0] + 1, (xv->dims[2] - k[1]) / s[1] + 1});
	return true;
}

static bool batchnorm(importer *im, const Node *n, int x, int out)
{
	value *xv = &im->vals[x];
	int in[4];
	for (int i = 0; i < 4; i++) {
		in[i] = input(im, n, (size_t)i + 1);
		if (in[i] < 0 || !im->vals[in[i]].init) {
			unsupported(im, n, "scale, B, mean and var must be initializers");
			return false;
		}
	}
	int64_t C = xv->nnc_rank == 3 ? xv->dims[0] : size_of(xv);
	if ((xv->nnc_rank != 3 && xv->nnc_rank != 1) || attr_i(n, "training_mode", 0) || n->n_output > 1) {
		unsupported(im, n, "inference batch normalisation of features or image channels");
		return false;
	}
	const char *name = layer_name(im, n, im->vals[in[0]].init->name);
	static const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
	for (int i = 0; i < 4; i++) {
		float *d = floats_of(im, im->vals[in[i]].init, n);
		if (!d)
			return false;
		if (tensor_count(im->vals[in[i]].init) != C) {
			err(im, "node '%s': input %d has %lld values for %lld channels", node_name(n), i + 1,
			    (long long)tensor_count(im->vals[in[i]].init), (long long)C);
			return false;
		}
		add_weight(im, nnc_sprintf("%s.%s", name, suffix[i]), d, C);
	}
	double mom = 1 - attr_f(n, "momentum", 0.9), eps = attr_f(n, "epsilon", 1e-5);
	if (!(mom >= 0 && mom <= 1) || !(eps > 0)) {
		unsupported(im, n, "momentum in [0, 1] and epsilon > 0");
		return false;
	}
	/* 1 - 0.9f is 0.100000024: the six digits a momentum is written with */
	stage(im, x, out,
	      nnc_sprintf("batchnorm(momentum: %.6g, eps: %s, name: \"%s\")", mom, fmt_num(eps), written_name(im, name)));
	set_shape(&im->vals[out], xv->rank, xv->dims);
	im->vals[out].nnc_rank = xv->nnc_rank;
	return true;
}

/* A scalar initializer's value, or false. */
static bool scalar(importer *im, int v, const Node *n, double *out)
{
	if (v < 0 || !im->vals[v].init || tensor_count(im->vals[v].init) != 1)
		return false;
	float *f = floats_of(im, im->vals[v].init, n);
	if (!f)
		return false;
	*out = f[0];
	return true;
}

static bool same_shape(const value *a, const value *b)
{
	if (a->nnc_rank != b->nnc_rank || a->rank != b->rank)
		return false;
	for (int i = 0; i < a->rank; i++)
		if (a->dims[i] != b->dims[i])
			return false;
	return true;
}

static bool arith(importer *im, const Node *n, int out, char op)
{
	int a = input(im, n, 0), b = input(im, n, 1);
	double c;
	if (a < 0 || b < 0) {
		unsupported(im, n, "two inputs");
		return false;
	}
	if (!im->vals[a].init && !im->vals[b].init) {
		if (!same_shape(&im->vals[resolve(im, a)], &im->vals[resolve(im, b)])) {
			unsupported(im, n, "broadcasting (nnc adds, subtracts and multiplies tensors of one shape)");
			return false;
		}
		const char *ra = ref(im, a), *rb = ref(im, b);
		expr_line(im, out, nnc_sprintf("%s %c %s", ra, op, rb));
		value *av = &im->vals[resolve(im, a)];
		set_shape(&im->vals[out], av->rank, av->dims);
		im->vals[out].nnc_rank = av->nnc_rank;
		return true;
	}
	int t = im->vals[a].init ? b : a, k = im->vals[a].init ? a : b;
	if (im->vals[t].init || !scalar(im, k, n, &c)) {
		unsupported(im, n, "a constant operand that is not a scalar");
		return false;
	}
	const char *rt = ref(im, t);
	const char *text = op == '-' && t == b ? nnc_sprintf("%s - %s", fmt_num(c), rt)
					       : nnc_sprintf("%s %c %s", rt, op, fmt_num(c));
	expr_line(im, out, text);
	value *tv = &im->vals[resolve(im, t)];
	set_shape(&im->vals[out], tv->rank, tv->dims);
	im->vals[out].nnc_rank = tv->nnc_rank;
	return true;
}

static void count_uses(importer *im, const Onnx__GraphProto *g, const char *name, int *uses);

/* The output of an LSTM or GRU node the program takes: Y (0, every state)
 * or Y_h (1, the last one), whichever is read; -1 if none or both, or
 * LSTM's Y_c, is. */
static int rnn_output(importer *im, const Node *n)
{
	int k = -1;
	for (size_t i = 0; i < n->n_output && i < 3; i++) {
		int uses = 0;
		if (n->output[i] && *n->output[i])
			count_uses(im, im->g, n->output[i], &uses);
		if (uses && (i == 2 || k >= 0))
			return -1;
		if (uses)
			k = (int)i;
	}
	return k;
}

/* LSTM, GRU (docs/onnx.md): nnc's lstm and gru layers, one direction from
 * a zero state with the default activations, X the time-major view of a
 * [T, d] sequence (TM_INPUT).  The weights back in nnc's layout and gate
 * order: W [1, G H, d] and R [1, G H, H] transposed, B [1, 2 G H] split
 * into b_ih and b_hh, the gate blocks from ONNX's i o f c (LSTM) and z r h
 * (GRU) to nnc's i f g o and r z n. */
static bool recurrent(importer *im, const Node *n, int x, int out, int which)
{
	bool lstm = !strcmp(n->op_type, "LSTM");
	int64_t G = lstm ? 4 : 3, H = attr_i(n, "hidden_size", 0);
	static const int from_lstm[4] = {0, 2, 3, 1}, from_gru[3] = {1, 0, 2}; /* ONNX's block of nnc's gate g */
	const int *from = lstm ? from_lstm : from_gru;
	int xd = input(im, n, 0), w = input(im, n, 1), r = input(im, n, 2), b = input(im, n, 3);
	if (xd < 0 || im->vals[xd].tm != TM_INPUT) {
		unsupported(im, n, "X must be a [T, d] sequence transposed to [T, N, d] (Transpose 1, 0, 2)");
		return false;
	}
	if (w < 0 || r < 0 || !im->vals[w].init || !im->vals[r].init || (n->n_input > 3 && *n->input[3] && (b < 0 || !im->vals[b].init))) {
		unsupported(im, n, "weights that are not initializers");
		return false;
	}
	for (size_t k = 4; k < n->n_input; k++)
		if (n->input[k] && *n->input[k]) {
			unsupported(im, n, "sequence_lens, an initial state or peepholes (nnc's layers start from zero)");
			return false;
		}
	const char *dir = attr_s(n, "direction");
	if ((dir && strcmp(dir, "forward")) || attr(n, "activations") || attr(n, "clip") || attr_i(n, "input_forget", 0) ||
	    attr_i(n, "layout", 0) || (!lstm && attr_i(n, "linear_before_reset", 0) != 1)) {
		unsupported(im, n, lstm ? "one forward direction, the default activations, no clip, input_forget 0 and layout 0"
					: "one forward direction, the default activations, no clip, layout 0 and linear_before_reset 1 "
					  "(the reset gate times h W_hn + b_hn, as nnc's gru)");
		return false;
	}
	const value *xv = &im->vals[x];
	const Onnx__TensorProto *W = im->vals[w].init, *R = im->vals[r].init, *B = b >= 0 ? im->vals[b].init : NULL;
	int64_t T = xv->dims[0], d = xv->dims[1], GH = G * H;
	if (which < 0 || xv->nnc_rank != 2 || H < 1 || H > (1 << 20) || W->n_dims != 3 || W->dims[0] != 1 ||
	    W->dims[1] != GH || W->dims[2] != d || R->n_dims != 3 || R->dims[0] != 1 || R->dims[1] != GH ||
	    R->dims[2] != H || (B && tensor_count(B) != 2 * GH)) {
		unsupported(im, n, which < 0 ? "one of Y and Y_h read (and not Y_c)"
					     : "W [1, G hidden_size, d], R [1, G hidden_size, hidden_size] and B [1, 2 G hidden_size]");
		return false;
	}
	float *wd = floats_of(im, W, n), *rd = floats_of(im, R, n), *bd = B ? floats_of(im, B, n) : NULL;
	if (!wd || !rd || (B && !bd))
		return false;
	const char *name = layer_name(im, n, NULL);
	float *wi = nnc_alloc(sizeof(float) * (size_t)(d * GH)), *wh = nnc_alloc(sizeof(float) * (size_t)(H * GH));
	float *bi = nnc_alloc(sizeof(float) * (size_t)GH), *bh = nnc_alloc(sizeof(float) * (size_t)GH);
	for (int64_t g = 0; g < G; g++)
		for (int64_t j = 0; j < H; j++) {
			int64_t row = from[g] * H + j, col = g * H + j; /* ONNX's row, nnc's column */
			for (int64_t k = 0; k < d; k++)
				wi[k * GH + col] = wd[row * d + k];
			for (int64_t k = 0; k < H; k++)
				wh[k * GH + col] = rd[row * H + k];
			bi[col] = bd ? bd[row] : 0;
			bh[col] = bd ? bd[GH + row] : 0;
		}
	add_weight(im, nnc_sprintf("%s.weight_ih", name), wi, d * GH);
	add_weight(im, nnc_sprintf("%s.weight_hh", name), wh, H * GH);
	add_weight(im, nnc_sprintf("%s.bias_ih", name), bi, GH);
	add_weight(im, nnc_sprintf("%s.bias_hh", name), bh, GH);
	const char *hs = nnc_sprintf("%lld", (long long)H);
	stage(im, x, out, nnc_sprintf("%s(%s%s, name: \"%s\")", lstm ? "lstm" : "gru", argument(im, "units", hs, hs),
				      which ? ", sequences: false" : "", written_name(im, name)));
	if (which)
		set_shape(&im->vals[out], 1, (int64_t[]){H});
	else
		set_shape(&im->vals[out], 2, (int64_t[]){T, H});
	im->vals[out].tm = which ? TM_LAST : TM_STATES;
	return true;
}

/* Transpose and Squeeze in the detour around an LSTM or GRU (TM_*): out an
 * alias of x, one step further; false if not one of them. */
static bool detour(importer *im, const Node *n, int xd, int xr, int out)
{
	value *xv = &im->vals[xd], *ov = &im->vals[out];
	int64_t v[4];
	int tm = xv->tm, k = -1;
	if (!strcmp(n->op_type, "Squeeze")) {
		int a = input(im, n, 1);
		if (a >= 0 && im->vals[a].init)
			k = ints_of(im->vals[a].init, v, 4);
		else if (a < 0 && attr(n, "axes") && attr(n, "axes")->n_ints == 1)
			k = 1, v[0] = attr(n, "axes")->ints[0];
		if (k != 1 || !((tm == TM_STATES && v[0] == 1) || (tm == TM_LAST && v[0] == 0)))
			return false;
		ov->tm = tm == TM_STATES ? TM_SQUEEZED : 0;
	} else {
		if (!attr_ints(n, "perm", 3, v, -1) || v[0] != 1 || v[1] != 0 || v[2] != 2 ||
		    !(tm == TM_SQUEEZED || (!tm && !xv->init && im->vals[xr].nnc_rank == 2)))
			return false;
		ov->tm = tm ? 0 : TM_INPUT;
	}
	ov->alias = xd;
	set_shape(ov, im->vals[xr].rank, im->vals[xr].dims);
	ov->nnc_rank = im->vals[xr].nnc_rank;
	if (!ov->tm) /* the layer's result as read after the detour */
		im->vals[xr].uses = ov->uses;
	return true;
}

/* The ops node() maps (docs/onnx.md's import table). */
static bool known_op(const char *op)
{
	static const char *known[] = {"Relu", "Sigmoid", "Tanh", "Softplus", "LeakyRelu", "Elu", "Conv", "Gemm",
				      "MaxPool", "AveragePool", "BatchNormalization", "Add", "Sub", "Mul",
				      "GlobalAveragePool", "Flatten", "Reshape", "Identity", "Dropout", "Softmax",
				      "Concat", "Constant", "LSTM", "GRU", "Transpose", "Squeeze", NULL};
	for (int i = 0; op && known[i]; i++)
		if (!strcmp(op, known[i]))
			return true;
	return false;
}

static bool node(importer *im, const Node *n, int out)
{
	const char *op = n->op_type ? n->op_type : "";
	if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx")) {
		unsupported(im, n, nnc_sprintf("domain '%s'", n->domain));
		return false;
	}
	int x = input(im, n, 0);
	if (n->n_input == 0 || x < 0) {
		if (strcmp(op, "Constant"))
			unsupported(im, n, "no input");
		return false;
	}
	for (size_t k = 0; k < n->n_input; k++) { /* a Softmax is imported as the model's output only */
		int v = input(im, n, k);
		if (v >= 0 && im->vals[resolve(im, v)].softmax) {
			unsupported(im, n, "an input computed by a Softmax (nnc import takes a Softmax only as the last node)");
			return false;
		}
	}
	bool rnn = !strcmp(op, "LSTM") || !strcmp(op, "GRU");
	bool detour_op = !strcmp(op, "Transpose") || !strcmp(op, "Squeeze");
	for (size_t k = 0; k < n->n_input; k++) { /* the time-major views are read by the detour only */
		int v = input(im, n, k);
		if (v >= 0 && im->vals[v].tm &&
		    !(k == 0 && (im->vals[v].tm == TM_INPUT ? rnn : detour_op))) {
			unsupported(im, n, "a time-major value of the detour around an LSTM or GRU (nnc's sequences are batch first)");
			return false;
		}
	}
	int xr = resolve(im, x);
	value *xv = &im->vals[xr], *ov = &im->vals[out];
	if (rnn)
		return recurrent(im, n, xr, out, rnn_output(im, n));
	if (detour_op) {
		if (detour(im, n, x, xr, out))
			return true;
		unsupported(im, n, "a Transpose (1, 0, 2) or Squeeze around an LSTM or GRU, as nnc exports them");
		return false;
	}
	static const struct {
		const char *onnx, *nnc, *opt;
		double def;
	} acts[] = {{"Relu", "relu", NULL, 0},       {"Sigmoid", "sigmoid", NULL, 0}, {"Tanh", "tanh", NULL, 0},
		    {"Softplus", "softplus", NULL, 0}, {"LeakyRelu", "leaky_relu", "alpha", 0.01},
		    {"Elu", "elu", "alpha", 1}};
	for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
		if (!strcmp(op, acts[i].onnx)) {
			if (xv->init) {
				unsupported(im, n, "a constant input");
				return false;
			}
			stage(im, x, out, acts[i].opt ? nnc_sprintf("%s(%s: %s)", acts[i].nnc, acts[i].opt,
								    fmt_num(attr_f(n, acts[i].opt, acts[i].def)))
						      : acts[i].nnc);
			set_shape(ov, xv->rank, xv->dims);
			ov->nnc_rank = xv->nnc_rank;
			return true;
		}
	if (xv->init && strcmp(op, "Add") && strcmp(op, "Sub") && strcmp(op, "Mul")) {
		unsupported(im, n, "a constant input");
		return false;
	}
	if (!strcmp(op, "Conv"))
		return conv(im, n, xr, out);
	if (!strcmp(op, "Gemm"))
		return gemm(im, n, xr, out);
	if (!strcmp(op, "MaxPool") || !strcmp(op, "AveragePool"))
		return pool(im, n, xr, out, op[0] == 'A');
	if (!strcmp(op, "BatchNormalization"))
		return batchnorm(im, n, xr, out);
	if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul"))
		return arith(im, n, out, op[0] == 'A' ? '+' : op[0] == 'S' ? '-' : '*');
	if (!strcmp(op, "GlobalAveragePool")) {
		if (xv->nnc_rank != 3) {
			unsupported(im, n, "an image input");
			return false;
		}
		stage(im, xr, out, "global_avgpool");
		set_shape(ov, 3, (int64_t[]){xv->dims[0], 1, 1});
		ov->nnc_rank = 1;
		return true;
	}
	if (!strcmp(op, "Flatten") || !strcmp(op, "Reshape")) {
		if (!strcmp(op, "Flatten") && attr_i(n, "axis", 1) != 1) {
			unsupported(im, n, "axis 1 (all of a sample's values)");
			return false;
		}
		if (!strcmp(op, "Reshape")) {
			int s = input(im, n, 1);
			int64_t sh[8];
			int k = s >= 0 && im->vals[s].init ? ints_of(im->vals[s].init, sh, 8) : -1;
			if (k != 2 || !(sh[0] == -1 || sh[0] == 0) || !(sh[1] == size_of(xv) || (sh[1] == -1 && sh[0] == 0))) {
				unsupported(im, n, "a constant shape [-1, K] or [0, -1] that flattens each sample");
				return false;
			}
		}
		if (xv->nnc_rank == 1) {
			alias_of(im, ov, xr);
		} else {
			stage(im, xr, out, "flatten");
		}
		set_shape(ov, 1, (int64_t[]){size_of(xv)});
		return true;
	}
	if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
		alias_of(im, ov, xr);
		set_shape(ov, xv->rank, xv->dims);
		ov->nnc_rank = xv->nnc_rank;
		return true;
	}
	if (!strcmp(op, "Softmax")) {
		int64_t axis = attr_i(n, "axis", im->opset >= 13 ? -1 : 1);
		if (xv->nnc_rank != 1 || (axis != 1 && axis != -1)) {
			unsupported(im, n, "a softmax over each sample's features");
			return false;
		}
		ov->alias = xr;
		ov->softmax = true;
		set_shape(ov, 1, xv->dims);
		return true;
	}
	if (!strcmp(op, "Concat")) {
		if (attr_i(n, "axis", 1) != 1 || n->n_input < 2) {
			unsupported(im, n, "axis 1 (features or channels)");
			return false;
		}
		nnc_buf b = {0};
		int64_t total = 0;
		for (size_t i = 0; i < n->n_input; i++) {
			int v = input(im, n, i);
			if (v < 0 || im->vals[v].init || im->vals[resolve(im, v)].softmax) {
				unsupported(im, n, "inputs that are computed values");
				return false;
			}
			const value *vv = &im->vals[resolve(im, v)];
			if (vv->nnc_rank != xv->nnc_rank || (vv->rank == 3 && (vv->dims[1] != xv->dims[1] || vv->dims[2] != xv->dims[2]))) {
				unsupported(im, n, "inputs of one rank (and image size)");
				return false;
			}
			total += vv->dims[0];
			nnc_buf_printf(&b, "%s%s", i ? ", " : "concat(", ref(im, v));
		}
		nnc_buf_puts(&b, ")");
		expr_line(im, out, b.data);
		set_shape(ov, xv->rank, xv->dims);
		ov->dims[0] = total;
		ov->nnc_rank = xv->nnc_rank;
		return true;
	}
	unsupported(im, n, NULL);
	return false;
}

/* ---- The model ---- */

static bool check_input(importer *im, const Onnx__ValueInfoProto *vi, int v)
{
	const char *name = vi->name ? vi->name : "?";
	const Onnx__TypeProto *t = vi->type;
	if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type || !t->tensor_type->shape) {
		err(im, "graph input '%s': field 'type' is not a tensor type with a shape", name);
		return false;
	}
	const Onnx__TypeProto__Tensor *tt = t->tensor_type;
	if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
		err(im, "graph input '%s': elem_type %d; nnc's input is float (1)", name, tt->elem_type);
		return false;
	}
	size_t r = tt->shape->n_dim;
	if (r < 2 || r > 4) {
		err(im, "graph input '%s' has rank %zu; nnc imports [N, features], [N, T, d] or [N, C, H, W] inputs", name, r);
		return false;
	}
	int64_t dims[4];
	for (size_t i = 1; i < r; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
		if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 1 ||
		    d->dim_value > (1 << 24)) {
			err(im, "graph input '%s': dimension %zu is %s%s%s; nnc needs static sizes for everything but the "
				"batch (dimension 0)",
			    name, i,
			    d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "dynamic ('" : "not a positive size",
			    d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param ? d->dim_param : "",
			    d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM ? "')" : "");
			return false;
		}
		dims[i - 1] = d->dim_value;
	}
	set_shape(&im->vals[v], (int)r - 1, dims);
	return true;
}

static void count_uses(importer *im, const Onnx__GraphProto *g, const char *name, int *uses)
{
	*uses = 0;
	for (size_t i = 0; i < g->n_node; i++)
		for (size_t k = 0; k < g->node[i]->n_input; k++)
			if (g->node[i]->input[k] && !strcmp(g->node[i]->input[k], name))
				(*uses)++;
	for (size_t i = 0; i < g->n_output; i++)
		if (g->output[i]->name && !strcmp(g->output[i]->name, name))
			(*uses)++;
	(void)im;
}

/* ---- Repeated sub-graphs as blocks ---- */

/* The scope of a node's name: "/block2/conv1/Conv" -> "block2" (PyTorch's
 * module path), "residual2.conv1" -> "residual2" (nnc's layer names);
 * NULL for a top-level node ("/Relu", "conv1"). */
static const char *scope_of(const Node *n)
{
	const char *s = n->name;
	if (!s || !*s)
		return NULL;
	const char *e = s[0] == '/' ? strchr(s + 1, '/') : strchr(s, '.');
	const char *b = s[0] == '/' ? s + 1 : s;
	return e && e > b ? nnc_strndup(b, (size_t)(e - b)) : NULL;
}

static bool is_constant(const Node *n)
{
	return n->op_type && !strcmp(n->op_type, "Constant");
}

/* Reads of `name` by nodes a..b, and whether one of them writes it. */
static int reads_in(const Onnx__GraphProto *g, int a, int b, const char *name)
{
	int r = 0;
	for (int i = a; i <= b; i++)
		for (size_t k = 0; k < g->node[i]->n_input; k++)
			r += g->node[i]->input[k] && !strcmp(g->node[i]->input[k], name);
	return r;
}

static bool written_in(const Onnx__GraphProto *g, int a, int b, const char *name)
{
	for (int i = a; i <= b; i++)
		for (size_t k = 0; k < g->node[i]->n_output; k++)
			if (g->node[i]->output[k] && !strcmp(g->node[i]->output[k], name))
				return true;
	return false;
}

/* The values nodes a..b read from outside (not weights or constants) and
 * let out (read after b, or the graph's output): how many of each, the
 * first of each into *entry, *exit. */
static void run_io(importer *im, int a, int b, const char **entry, int *nentry, const char **exit, int *nexit)
{
	const Onnx__GraphProto *g = im->g;
	int n = (int)g->n_node;
	*entry = *exit = NULL;
	*nentry = *nexit = 0;
	for (int j = a; j <= b; j++) {
		const Node *m = g->node[j];
		for (size_t k = 0; k < m->n_input && !is_constant(m); k++) {
			const char *in = m->input[k];
			int v = in && *in ? find(im, in) : -1;
			/* written by an earlier node of the run: inside (a graph that
			 * writes a value twice is refused later, but its run must not
			 * take the value read before the second write for its own) */
			if (!in || !*in || (v >= 0 && im->vals[v].init) || written_in(g, a, j - 1, in) ||
			    (*entry && !strcmp(*entry, in)))
				continue;
			*entry = *entry ? *entry : in;
			++*nentry;
		}
		for (size_t k = 0; k < m->n_output; k++) {
			const char *o = m->output[k];
			if (!o || !*o || (!(b + 1 < n && reads_in(g, b + 1, n - 1, o)) &&
					  !(g->n_output && g->output[0]->name && !strcmp(g->output[0]->name, o))))
				continue;
			*exit = *exit ? *exit : o;
			++*nexit;
		}
	}
}

static bool is_activation(const Node *n)
{
	static const char *acts[] = {"Relu", "Sigmoid", "Tanh", "Softplus", "LeakyRelu", "Elu", NULL};
	for (int i = 0; n->op_type && acts[i]; i++)
		if (!strcmp(n->op_type, acts[i]))
			return true;
	return false;
}

/* The runs of nodes of one scope with one entry and one exit (region).
 * A run that lets out two values takes in the unscoped nodes after it
 * that read only its values (nnc's exports name a block's layers, not
 * its `h + s`), then the activations of the one value it lets out then. */
static void find_regions(importer *im)
{
	const Onnx__GraphProto *g = im->g;
	int n = (int)g->n_node;
	for (int i = 0; i < n;) {
		const char *sc = is_constant(g->node[i]) ? NULL : scope_of(g->node[i]);
		if (!sc) {
			i++;
			continue;
		}
		int last = i, count = 0;
		bool ok = !strchr(sanitize(sc, true), '.'); /* the call's name */
		for (int k = 0; k < im->nregs; k++) /* a scope cut in two: one call of that name */
			ok &= strcasecmp(sanitize(im->regs[k].scope, true), sanitize(sc, true)) != 0;
		for (int j = i; j < n; j++) {
			const Node *m = g->node[j];
			if (is_constant(m))
				continue;
			const char *ms = scope_of(m);
			if (!ms || strcmp(ms, sc))
				break;
			ok &= !(m->op_type && !strcmp(m->op_type, "Softmax"));
			last = j, count++;
		}
		const char *entry, *exit;
		int nentry, nexit;
		run_io(im, i, last, &entry, &nentry, &exit, &nexit);
		int scoped_last = last;
		for (int j = last + 1; nentry == 1 && nexit > 1 && j < n && !scope_of(g->node[j]) && !is_constant(g->node[j]);
		     j++) {
			const Node *m = g->node[j];
			bool inside = m->op_type && strcmp(m->op_type, "Softmax");
			for (size_t k = 0; k < m->n_input && inside; k++) {
				const char *in = m->input[k];
				int v = in && *in ? find(im, in) : -1;
				inside = !in || !*in || (v >= 0 && im->vals[v].init) || written_in(g, i, last, in) ||
					 !strcmp(in, entry);
			}
			if (!inside)
				break;
			last = j, count++;
			run_io(im, i, last, &entry, &nentry, &exit, &nexit);
		}
		if (last > scoped_last && nexit == 1)
			while (last + 1 < n && is_activation(g->node[last + 1]) && !scope_of(g->node[last + 1]) &&
			       g->node[last + 1]->n_input == 1 && !strcmp(g->node[last + 1]->input[0], exit) &&
			       reads_in(g, last + 1, n - 1, exit) == 1) {
				last++, count++;
				run_io(im, i, last, &entry, &nentry, &exit, &nexit);
			}
		if (ok && count >= 2 && nentry == 1 && nexit == 1) {
			im->regs = nnc_realloc_array(im->regs, (size_t)im->nregs, (size_t)im->nregs + 1, sizeof *im->regs);
			region *r = &im->regs[im->nregs];
			memset(r, 0, sizeof *r);
			r->scope = sc, r->first = i, r->last = last, r->entry = entry, r->exit = exit;
			r->inner_entry_reads = reads_in(g, i, last, entry);
			r->outer_exit_reads = (last + 1 < n ? reads_in(g, last + 1, n - 1, exit) : 0) +
					      (g->output[0]->name && !strcmp(g->output[0]->name, exit));
			r->block = im->region_block && im->nregs < im->nregion_block ? im->region_block[im->nregs] : -1;
			im->nregs++;
		}
		i = last + 1;
	}
}

/* "NAME = TEXT" (or "return TEXT"), short pipelines on one line, with
 * `indent` before every line. */
static void put_line(nnc_buf *b, const char *indent, const char *lhs, const line *l)
{
	const char *t = l->text.data;
	if (l->stages <= 2 && strlen(t) < 100) {
		char *one = nnc_strdup(t);
		for (char *p = one; (p = strstr(p, "\n  |>"));)
			memmove(p, p + 2, strlen(p + 2) + 1), *p = ' ';
		t = one;
	}
	nnc_buf_printf(b, "%s%s", indent, lhs);
	for (; *t; t++) {
		nnc_buf_printf(b, "%c", *t);
		if (*t == '\n')
			nnc_buf_puts(b, indent);
	}
	nnc_buf_puts(b, "\n");
}

/* What begin_region sets aside of the top level. */
typedef struct saved_top {
	line *lines;
	int nlines;
	int entry, raw_entry;
	const char *var;
	int line, uses;
} saved_top;

/* The nodes of region ri are imported next as the body of a block: the
 * entry is the block's x, lines and value names are the body's own. */
static void begin_region(importer *im, int ri, saved_top *st)
{
	region *r = &im->regs[ri];
	st->raw_entry = find(im, r->entry);
	st->entry = resolve(im, st->raw_entry);
	value *e = &im->vals[st->entry];
	st->var = e->var, st->line = e->line, st->uses = e->uses;
	st->lines = im->lines, st->nlines = im->nlines;
	e->var = "x", e->line = -1;
	im->lines = NULL, im->nlines = 0;
	im->body_names = (names){0};
	static const char *own[] = {"x", "filters", "stride", "units", "name"};
	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		claim_in(&im->body_names, own[i]);
	im->vnames = &im->body_names;
	im->cur = ri;
	r->nargs = 0;
}

/* The call of block b by region r: "NAME(filters: 16, stride: 2, name: \"block2\")". */
static const char *call_text(importer *im, const region *r)
{
	const block_def *d = &im->blocks[r->block];
	nnc_buf b = {0};
	nnc_buf_printf(&b, "%s(", d->name);
	for (int p = 0; p < d->nparams; p++)
		for (int a = 0; a < r->nargs; a++)
			if (d->param[a] == p) {
				nnc_buf_printf(&b, "%s: %s, ", d->params[p], r->arg[a]);
				break;
			}
	nnc_buf_printf(&b, "name: \"%s\")", sanitize(r->scope, true));
	char *s = nnc_strdup(b.data);
	nnc_buf_free(&b);
	return s;
}

/* The body's statements into r->body; the top level back, with the
 * region one stage: entry |> call. */
static void end_region(importer *im, saved_top *st)
{
	region *r = &im->regs[im->cur];
	int xr = find(im, r->exit), xo = xr >= 0 ? resolve(im, xr) : -1;
	/* the top level goes on from xo; not from a value an unimportable node
	 * left without a line (the first pass goes on after errors) */
	bool through = xo >= 0 && xo != st->entry && !im->vals[xo].bad && !im->vals[st->entry].bad;
	if (!through || im->vals[xo].softmax || im->vals[xo].bad || im->vals[xo].init)
		r->bad = true;
	nnc_buf b = {0};
	if (!r->bad) {
		int ret = im->vals[xo].var ? -1 : im->vals[xo].line;
		for (int i = 0; i < im->nlines; i++)
			if (!im->lines[i].name && i != ret)
				ref(im, im->lines[i].tail);
		for (int i = 0; i < im->nlines; i++)
			if (i != ret)
				put_line(&b, "  ", nnc_sprintf("%s = ", im->lines[i].name), &im->lines[i]);
		if (ret >= 0)
			put_line(&b, "  ", "return ", &im->lines[ret]);
		else
			nnc_buf_printf(&b, "  return %s\n", im->vals[xo].var);
		r->body = nnc_strdup(b.data);
	}
	nnc_buf_free(&b);
	for (int i = 0; i < im->nlines; i++)
		nnc_buf_free(&im->lines[i].text);
	im->lines = st->lines, im->nlines = st->nlines;
	im->vnames = &im->glob;
	im->cur = -1;
	value *e = &im->vals[st->entry];
	e->var = st->var, e->line = st->line;
	e->uses = st->raw_entry == st->entry ? st->uses - r->inner_entry_reads + 1 : st->uses;
	if (!through && xo >= 0 && xo != st->entry) { /* its line was the body's */
		im->vals[xo].var = NULL, im->vals[xo].line = -1;
		im->vals[xo].bad = true;
	}
	if (!through)
		return;
	value *x = &im->vals[xo];
	x->var = NULL, x->line = -1, x->uses = r->outer_exit_reads;
	stage(im, st->entry, xo, r->block >= 0 ? call_text(im, r) : "region"); /* "region": the first pass's, not written */
}

/* After the first pass: the regions of one body (two or more) become a
 * block; an argument that differs between them is a parameter (those
 * that are equal in every call one parameter), the others literals.
 * Sets region_block and blocks of `next`, the second pass. */
static void build_blocks(importer *im, importer *next)
{
	int *cls = nnc_alloc(sizeof(int) * (size_t)(im->nregs + 1));
	next->region_block = cls;
	next->nregion_block = im->nregs;
	for (int i = 0; i < im->nregs; i++) {
		region *r = &im->regs[i];
		cls[i] = -1;
		if (r->bad || !r->body)
			continue;
		int first = -1, members = 0;
		for (int j = 0; j < im->nregs; j++)
			if (!im->regs[j].bad && im->regs[j].body && !strcmp(im->regs[j].body, r->body)) {
				first = first < 0 ? j : first;
				members++;
			}
		if (members < 2)
			continue;
		if (first < i) {
			cls[i] = cls[first];
			continue;
		}
		/* a new block, after region i's scope: "block2" -> "block" */
		char *base = sanitize(r->scope, false);
		size_t bl = strlen(base);
		while (bl && (isdigit((unsigned char)base[bl - 1]) || base[bl - 1] == '_'))
			base[--bl] = 0;
		const char *name = bl ? base : "unit";
		/* "block" (PyTorch's block1, block2): "block_1" after the first call;
		 * the same for the names sema keeps for its layers, losses, data */
		const char *const *lists[] = {reserved, sema_builtin_layers, sema_loss_names, sema_opt_names, sema_data_names};
		bool builtin = false;
		for (size_t l = 0; l < sizeof lists / sizeof *lists; l++)
			for (int k = 0; lists[l][k]; k++)
				builtin |= !strcmp(name, lists[l][k]);
		/* the names the program's top level takes: the input, the label, the logits */
		const char *top[] = {im->vals[im->input].var, "y", "label_", "logits"};
		for (size_t k = 0; k < sizeof top / sizeof *top; k++)
			if (!strcasecmp(name, top[k]))
				name = nnc_sprintf("%s_block", name);
		if (builtin) {
			const char *num = sanitize(r->scope, false) + bl;
			while (*num == '_')
				num++;
			name = nnc_sprintf("%s_%s", name, *num ? num : "unit");
		}
		next->blocks = nnc_realloc_array(next->blocks, (size_t)next->nblocks, (size_t)next->nblocks + 1,
						 sizeof *next->blocks);
		block_def *d = &next->blocks[next->nblocks];
		memset(d, 0, sizeof *d);
		d->name = claim(next, name); /* before the second pass's names: nothing else takes it */
		d->param = nnc_alloc(sizeof(int) * (size_t)(r->nargs + 1));
		names pn = {0};
		claim_in(&pn, "x");
		for (int a = 0; a < r->nargs; a++) {
			d->param[a] = -1;
			bool same = true;
			for (int j = i + 1; j < im->nregs; j++)
				if (im->regs[j].body && !im->regs[j].bad && !strcmp(im->regs[j].body, r->body))
					same &= !strcmp(im->regs[j].arg[a], r->arg[a]);
			if (same)
				continue;
			for (int a2 = 0; a2 < a && d->param[a] < 0; a2++) {
				bool eq = d->param[a2] >= 0 && !strcmp(r->kind[a2], r->kind[a]);
				for (int j = i; j < im->nregs && eq; j++)
					if (im->regs[j].body && !im->regs[j].bad && !strcmp(im->regs[j].body, r->body))
						eq = !strcmp(im->regs[j].arg[a2], im->regs[j].arg[a]);
				if (eq)
					d->param[a] = d->param[a2];
			}
			if (d->param[a] >= 0)
				continue;
			const char *pname = r->kind[a];
			for (int k = 2; taken_in(&pn, pname); k++)
				pname = nnc_sprintf("%s%d", r->kind[a], k);
			claim_in(&pn, pname);
			d->params = nnc_realloc_array(d->params, (size_t)d->nparams, (size_t)d->nparams + 1, sizeof *d->params);
			d->param[a] = d->nparams;
			d->params[d->nparams++] = pname;
		}
		nnc_buf b = {0};
		nnc_buf_printf(&b, "block %s(x", d->name);
		for (int p = 0; p < d->nparams; p++)
			nnc_buf_printf(&b, ", %s", d->params[p]);
		nnc_buf_puts(&b, ") {\n");
		int a = 0;
		for (const char *p = r->body; *p; p++)
			if (*p == '\1') {
				nnc_buf_puts(&b, d->param[a] >= 0 ? d->params[d->param[a]] : r->arg[a]);
				a++;
			} else {
				nnc_buf_printf(&b, "%c", *p);
			}
		nnc_buf_puts(&b, "}\n");
		d->text = nnc_strdup(b.data);
		nnc_buf_free(&b);
		cls[i] = next->nblocks++;
	}
}

/* One pass over the model: the .nn program into *nn, the weights into
 * im->w. */
static int import_pass(importer *im, const unsigned char *data, size_t len, const char *model_name, char **nn)
{
	const char *path = im->path;
	saved_top top = {0};
	im->cur = -1;
	im->vnames = &im->glob;
	Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
	if (!m) {
		err(im, "not an ONNX model: the protobuf does not parse (a malformed or truncated file)");
		return NNC_EXIT_INPUT;
	}
	int rc = NNC_EXIT_INPUT;
	for (size_t i = 0; i < m->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->opset_import[i];
		if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx"))
			im->opset = (int)(o->has_version ? o->version : 0);
	}
	if (!m->graph) {
		err(im, "field 'graph' is missing");
		goto out;
	}
	if (!im->opset || im->opset < OPSET_MIN || im->opset > OPSET_MAX) {
		err(im, "field 'opset_import': %s%d; nnc imports ai.onnx opsets %d to %d", im->opset ? "ai.onnx opset " : "no ai.onnx opset",
		    im->opset, OPSET_MIN, OPSET_MAX);
		goto out;
	}
	Onnx__GraphProto *g = im->g = m->graph;
	for (size_t i = 0; i < g->n_initializer; i++) {
		int v = add_value(im, g->initializer[i]->name ? g->initializer[i]->name : "");
		im->vals[v].init = g->initializer[i];
	}
	for (size_t i = 0; i < g->n_node; i++) /* Constant nodes are initializers too */
		if (g->node[i]->op_type && !strcmp(g->node[i]->op_type, "Constant") && g->node[i]->n_output == 1) {
			const Onnx__AttributeProto *a = attr(g->node[i], "value");
			if (a && a->t) {
				int v = add_value(im, g->node[i]->output[0]);
				im->vals[v].init = a->t;
			}
		}
	int xin = -1;
	const Onnx__ValueInfoProto *xinfo = NULL;
	for (size_t i = 0; i < g->n_input; i++) {
		if (!g->input[i]->name || find(im, g->input[i]->name) >= 0)
			continue; /* an initializer listed as an input (older exporters) */
		if (xin >= 0) {
			err(im, "graph input '%s': nnc models have one input, and '%s' is already it", g->input[i]->name,
			    im->vals[xin].onnx);
			goto out;
		}
		xin = add_value(im, g->input[i]->name);
		xinfo = g->input[i];
	}
	if (xin < 0) {
		err(im, "field 'graph.input' lists no input");
		goto out;
	}
	if (g->n_output != 1 || !g->output[0]->name) {
		err(im, "field 'graph.output' lists %zu outputs; nnc models have one", g->n_output);
		goto out;
	}
	if (!check_input(im, xinfo, xin))
		goto out;
	im->input = xin;
	im->vals[xin].var = value_name(im, g->input[0]->name && find(im, g->input[0]->name) == xin ? g->input[0]->name : im->vals[xin].onnx);
	count_uses(im, g, im->vals[xin].onnx, &im->vals[xin].uses);
	find_regions(im);

	int ri = 0; /* the next region */
	for (size_t i = 0; i < g->n_node; i++) {
		const Node *n = g->node[i];
		if (n->op_type && !strcmp(n->op_type, "Constant"))
			continue;
		if (ri < im->nregs && im->regs[ri].first == (int)i && find(im, im->regs[ri].entry) >= 0 &&
		    (im->collect || im->regs[ri].block >= 0))
			begin_region(im, ri, &top);
		for (size_t k = 0; k < n->n_input; k++)
			if (n->input[k] && *n->input[k] && find(im, n->input[k]) < 0) {
				err(im, "node '%s' reads '%s', which no earlier node, initializer or input defines", node_name(n),
				    n->input[k]);
				goto out;
			}
		/* the output imported: the first, but an LSTM's or GRU's last state Y_h */
		bool rnn = n->op_type && (!strcmp(n->op_type, "LSTM") || !strcmp(n->op_type, "GRU"));
		int k = rnn && rnn_output(im, n) > 0 ? rnn_output(im, n) : 0;
		if (n->n_output <= (size_t)k || !n->output[k] || !*n->output[k]) {
			err(im, "node '%s': field 'output' is empty", node_name(n));
			goto out;
		}
		if (find(im, n->output[k]) >= 0) {
			err(im, "node '%s' writes '%s', which is already defined", node_name(n), n->output[k]);
			goto out;
		}
		int out = add_value(im, n->output[k]);
		im->vals[out].node = n->name && *n->name ? n->name : NULL;
		count_uses(im, g, n->output[k], &im->vals[out].uses);
		bool poisoned = false; /* reads what an unimportable node computes */
		for (size_t k = 0; k < n->n_input; k++)
			if (n->input[k] && *n->input[k] && im->vals[resolve(im, find(im, n->input[k]))].bad)
				poisoned = true;
		if (poisoned) {
			if (!known_op(n->op_type))
				unsupported(im, n, NULL);
			im->vals[out].bad = true;
		} else if (!node(im, n, out)) {
			im->vals[out].bad = true;
		}
		for (size_t j = 0; rnn && j < n->n_output; j++) /* the outputs not imported: nothing may read them */
			if (j != (size_t)k && n->output[j] && *n->output[j] && find(im, n->output[j]) < 0)
				im->vals[add_value(im, n->output[j])].bad = true;
		if (im->errors > 20)
			goto out;
		if (ri < im->nregs && im->regs[ri].last == (int)i) {
			if (im->cur == ri)
				end_region(im, &top);
			ri++;
		}
	}
	if (im->nunsupported)
		err(im, "%d node%s nnc cannot import: %s", im->nunsupported, im->nunsupported == 1 ? "" : "s",
		    im->unsupported.data);
	if (im->errors)
		goto out;

	int o = find(im, g->output[0]->name);
	if (o < 0) {
		err(im, "graph output '%s' is not computed by any node", g->output[0]->name);
		goto out;
	}
	bool softmax = im->vals[o].softmax;
	int logits = resolve(im, softmax ? im->vals[o].alias : o);
	value *lv = &im->vals[logits];
	if (lv->nnc_rank != 1 || logits == xin || lv->init) {
		err(im, "graph output '%s' is not a vector of scores per sample; nnc import makes classifiers", g->output[0]->name);
		goto out;
	}
	if (!im->nw) { /* nnc compiles networks that train (sema refuses one without parameters) */
		err(im, "the graph has no weights (no Conv, Gemm, MatMul or BatchNormalization with initializers); "
		        "nnc import makes networks with parameters to train");
		goto out;
	}
	/* the last line is the logits */
	if (lv->line >= 0 && !lv->var) {
		lv->var = im->lines[lv->line].name = claim(im, taken(im, "logits") ? value_name(im, "logits") : "logits");
		lv->line = -1;
	}
	for (int i = 0; i < im->nlines; i++)
		if (!im->lines[i].name)
			ref(im, im->lines[i].tail);

	/* the program */
	nnc_buf b = {0};
	value *xv = &im->vals[xin];
	nnc_buf_printf(&b, "# Imported by nnc import from %s (%s%s%s, ai.onnx opset %d).\n", one_line(path),
		       m->producer_name && *m->producer_name ? one_line(m->producer_name) : "unknown producer",
		       m->producer_version && *m->producer_version ? " " : "",
		       m->producer_version ? one_line(m->producer_version) : "", im->opset);
	nnc_buf_printf(&b, "model %s\n\n", model_name);
	nnc_buf_printf(&b, "input  %s : f32[", xv->var);
	for (int i = 0; i < xv->rank; i++)
		nnc_buf_printf(&b, "%s%lld", i ? ", " : "", (long long)xv->dims[i]);
	const char *label = claim(im, taken(im, "y") ? "label_" : "y");
	nnc_buf_printf(&b, "]\nlabel  %s : class(%lld)\n\n", label, (long long)lv->dims[0]);
	if (im->nblocks)
		nnc_buf_puts(&b, "# Sub-graphs that repeat, each called once per ONNX scope that computes it.\n");
	for (int i = 0; i < im->nblocks; i++)
		nnc_buf_printf(&b, "%s\n", im->blocks[i].text);
	for (int i = 0; i < im->nlines; i++)
		put_line(&b, "", nnc_sprintf("%s = ", im->lines[i].name), &im->lines[i]);
	if (!softmax)
		nnc_buf_printf(&b, "output %s                 # what the ONNX graph returns: the scores themselves\n", lv->var);
	nnc_buf_printf(&b,
		       "\n# nnc import wrote the training part below with defaults: edit the loss, the optimizer\n"
		       "# and the data to train or fine-tune the imported weights (the checkpoint beside this file).\n"
		       "loss      softmax_cross_entropy(%s, %s)\n"
		       "optimizer sgd(lr: 0.01, momentum: 0.9)\n\n"
		       "train {\n",
		       lv->var, label);
	if (lv->dims[0] == 10 && ((xv->rank == 3 && xv->dims[0] == 1 && xv->dims[1] == 28 && xv->dims[2] == 28) ||
				  (xv->rank == 2 && xv->dims[0] == 28 && xv->dims[1] == 28) ||
				  (xv->rank == 1 && xv->dims[0] == 784)))
		nnc_buf_printf(&b, "  data:   idx(\"/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz\",\n"
				   "              \"/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz\", scale: 1/255)\n"
				   "  test:   idx(\"/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz\",\n"
				   "              \"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz\", scale: 1/255)\n");
	else
		nnc_buf_printf(&b, "  data:   idx(\"train-images.idx\", \"train-labels.idx\", scale: 1/255)\n");
	nnc_buf_printf(&b, "  batch:  64\n  epochs: 1\n}\n");
	*nn = nnc_strdup(b.data);
	nnc_buf_free(&b);
	rc = NNC_EXIT_OK;
out:
	onnx__model_proto__free_unpacked(m, NULL);
	if (im->cur >= 0) { /* an error inside a body: the top level's lines too */
		for (int i = 0; i < im->nlines; i++)
			nnc_buf_free(&im->lines[i].text);
		im->lines = top.lines, im->nlines = top.nlines;
	}
	for (int i = 0; i < im->nlines; i++)
		nnc_buf_free(&im->lines[i].text);
	nnc_buf_free(&im->unsupported);
	return rc;
}

/* The .nn program of the ONNX model, and its weights (weight[]).  The
 * first pass, silent, imports every region as a body to compare them; the
 * second writes the regions that repeat as calls of blocks and the rest
 * expanded (all of it when the first failed: it reports why). */
int nnc_onnx_import(const unsigned char *data, size_t len, const char *path, const char *model_name, char **nn,
		    nnc_onnx_weight **weights, int *nweights)
{
	importer first = {.path = path, .quiet = true, .collect = true};
	importer second = {.path = path};
	if (import_pass(&first, data, len, model_name, nn) == NNC_EXIT_OK)
		build_blocks(&first, &second);
	int rc = import_pass(&second, data, len, model_name, nn);
	if (rc == NNC_EXIT_OK)
		*weights = second.w, *nweights = second.nw;
	return rc;
}

/* ---- nnc import ---- */

static int import_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "nnc import: error: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: nnc import MODEL.onnx [-o MODEL.nn] [--checkpoint FILE] [--name NAME] [--force]\n");
	return NNC_EXIT_USAGE;
}

/* The checkpoint of the program just written: nnc's own front end gives
 * its tables and fingerprint; the weights go where they say. */
static int write_checkpoint(const char *nn_path, const char *text, nnc_onnx_weight *w, int nw, const char *ckpt)
{
	nnc_source src = {.path = nn_path, .text = text, .len = (long)strlen(text)};
	nnc_program *prog = nnc_parse(&src);
	nnc_train_config cfg;
	ir_graph *g = prog ? nnc_sema(prog, &cfg) : NULL;
	if (!g) {
		fprintf(stderr, "nnc import: internal error: the program written for %s does not compile (above)\n", nn_path);
		return NNC_EXIT_INTERNAL;
	}
	nnrt_model m;
	nnc_onnx_model_tables(g, &cfg, &m);
	float *params = nnc_alloc(sizeof(float) * (size_t)(m.param_floats + 1));
	float *state = nnc_alloc(sizeof(float) * (size_t)(m.state_floats + 1));
	nnrt_model_initial_values(&m, (uint64_t)cfg.seed, params, state);
	const ir_param *tabs[2] = {g->params, g->states};
	int counts[2] = {g->nparams, g->nstates};
	float *arrays[2] = {params, state};
	for (int t = 0; t < 2; t++)
		for (int i = 0; i < counts[t]; i++) {
			const ir_param *p = &tabs[t][i];
			int k = 0;
			while (k < nw && strcmp(w[k].name, p->name))
				k++;
			if (k == nw || w[k].count != p->size) {
				fprintf(stderr, "nnc import: internal error: no weights for '%s' (%lld values)\n", p->name,
					(long long)p->size);
				return NNC_EXIT_INTERNAL;
			}
			memcpy(arrays[t] + p->offset, w[k].data, sizeof(float) * (size_t)p->size);
		}
	return nnrt_model_save_values(&m, params, state, ckpt) ? NNC_EXIT_INTERNAL : NNC_EXIT_OK;
}

int nnc_onnx_import_main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *ckpt = NULL, *name = NULL;
	bool force = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-o") || !strcmp(a, "--checkpoint") || !strcmp(a, "--name")) {
			if (i + 1 >= argc || !*argv[i + 1])
				return import_usage("%s needs an argument", a);
			const char **slot = !strcmp(a, "-o") ? &out : !strcmp(a, "--checkpoint") ? &ckpt : &name;
			if (*slot)
				return import_usage("%s given twice", a);
			*slot = argv[++i];
		} else if (!strcmp(a, "--force")) {
			force = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: nnc import MODEL.onnx [-o MODEL.nn] [--checkpoint FILE] [--name NAME] [--force]\n"
			       "writes the ONNX model as a .nn program (default: MODEL.nn) and its weights as a checkpoint\n"
			       "(default: the program's name with .ckpt) for `./MODEL --load FILE` (docs/onnx.md)\n");
			return NNC_EXIT_OK;
		} else if (a[0] == '-' && a[1]) {
			return import_usage("unknown option '%s'", a);
		} else if (in) {
			return import_usage("more than one input file ('%s')", a);
		} else {
			in = a;
		}
	}
	if (!in || !*in)
		return import_usage("%s", "no input file");
	const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
	size_t bl = strlen(base);
	const char *stem = bl > 5 && !strcmp(base + bl - 5, ".onnx") ? nnc_strndup(base, bl - 5) : base;
	if (!out)
		out = nnc_sprintf("%s.nn", stem);
	if (!ckpt) {
		size_t ol = strlen(out);
		ckpt = ol > 3 && !strcmp(out + ol - 3, ".nn") ? nnc_sprintf("%.*s.ckpt", (int)(ol - 3), out)
							    : nnc_sprintf("%s.ckpt", out);
	}
	if (!name) {
		const char *ob = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
		size_t l = strlen(ob);
		name = sanitize(l > 3 && !strcmp(ob + l - 3, ".nn") ? nnc_strndup(ob, l - 3) : ob, false);
	} else {
		for (const char *p = name; *p; p++)
			if (!(isalnum((unsigned char)*p) || *p == '_') || isdigit((unsigned char)name[0]))
				return import_usage("--name '%s' is not an identifier", name);
	}
	int rc = nnc_out_claim_input(in);
	if (!rc)
		rc = nnc_out_claim(out, "-o", force);
	if (!rc)
		rc = nnc_out_claim(ckpt, "--checkpoint", force);
	if (rc)
		return rc;
	FILE *f = fopen(in, "rb");
	if (!f) {
		fprintf(stderr, "nnc import: error: cannot read %s: %s\n", in, strerror(errno));
		return NNC_EXIT_INPUT;
	}
	nnc_buf data = {0};
	unsigned char chunk[65536];
	size_t n, total = 0;
	unsigned char *bytes = NULL;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (total + n > (size_t)MAX_IMPORT_BYTES) {
			fclose(f);
			fprintf(stderr, "%s: error: larger than 1 GiB; nnc import reads models whose weights are in the file\n", in);
			return NNC_EXIT_INPUT;
		}
		bytes = nnc_realloc_array(bytes, total, total + n, 1);
		memcpy(bytes + total, chunk, n);
		total += n;
	}
	bool rerr = ferror(f);
	fclose(f);
	(void)data;
	if (rerr) {
		fprintf(stderr, "nnc import: error: cannot read %s: %s\n", in, strerror(errno));
		return NNC_EXIT_INPUT;
	}
	char *nn;
	nnc_onnx_weight *w;
	int nw;
	if ((rc = nnc_onnx_import(bytes ? bytes : (unsigned char *)"", total, in, name, &nn, &w, &nw)))
		return rc;
	const char *tmp = nnc_out_stage(out);
	if (!tmp || (rc = nnc_out_write(tmp, nn, strlen(nn))))
		return tmp ? rc : NNC_EXIT_INTERNAL;
	const char *ctmp = nnc_out_stage(ckpt);
	if (!ctmp || (rc = write_checkpoint(out, nn, w, nw, ctmp)))
		return ctmp ? rc : NNC_EXIT_INTERNAL;
	if ((rc = nnc_out_commit()))
		return rc;
	printf("nnc import: wrote %s and %s\n", out, ckpt);
	return NNC_EXIT_OK;
}
