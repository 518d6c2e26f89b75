/*
 * sema_train.c - the training configuration: the optimizer statement, the
 * train block and its data sources (paths resolved beside the .nn file).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* realpath, PATH_MAX (LLVM's flags set it too) */
#endif
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sema.h"

const char *const sema_opt_names[] = {"sgd", "adam", "adamw", "rmsprop", NULL};

/* The optimizers: their options and defaults (torch.optim's). */
static const struct {
	const char *name;
	int kind; /* NNRT_OPT_* */
	const char *const opts[10];
	double lr, weight_decay;
} optimizers[] = {
	{"sgd", NNRT_OPT_SGD,
	 {"lr", "momentum", "dampening", "nesterov", "weight_decay", "decay_biases", "clip_norm", "clip_value"}, 0.01, 0},
	{"adam", NNRT_OPT_ADAM,
	 {"lr", "beta1", "beta2", "eps", "amsgrad", "weight_decay", "decay_biases", "clip_norm", "clip_value"}, 0.001, 0},
	{"adamw", NNRT_OPT_ADAMW,
	 {"lr", "beta1", "beta2", "eps", "amsgrad", "weight_decay", "decay_biases", "clip_norm", "clip_value"}, 0.001,
	 0.01},
	{"rmsprop", NNRT_OPT_RMSPROP,
	 {"lr", "alpha", "eps", "momentum", "centered", "weight_decay", "decay_biases", "clip_norm", "clip_value"}, 0.01,
	 0},
};

/* The boolean options and their NNRT_OPTF_* flag. */
static const struct {
	const char *name;
	int flag;
} opt_flags[] = {
	{"nesterov", NNRT_OPTF_NESTEROV},
	{"centered", NNRT_OPTF_CENTERED},
	{"amsgrad", NNRT_OPTF_AMSGRAD},
	{"decay_biases", NNRT_OPTF_DECAY_BIASES},
};

/* optimizer sgd(lr: 0.01, momentum: 0, dampening: 0, nesterov: false, weight_decay: 0, decay_biases: false)
 * optimizer adam(lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, amsgrad: false, weight_decay: 0, ...)
 * optimizer adamw(... as adam, weight_decay: 0.01)
 * optimizer rmsprop(lr: 0.01, alpha: 0.99, eps: 1e-8, momentum: 0, centered: false, weight_decay: 0, ...)
 * and on each: clip_norm: X (the gradient's global norm), clip_value: X (each value to [-X, X]) */
void sema_stmt_optimizer(sema *s, const nnc_stmt *st)
{
	ir_optimizer *o = &s->cfg->opt;
	const nnc_ast *e = st->expr;
	if (s->opt_stmt) {
		nnc_error(s->src, st->loc, "the optimizer is already defined");
		nnc_note(s->src, s->opt_stmt->loc, "first defined here");
		return;
	}
	s->opt_stmt = st;
	if (e->kind != AST_CALL && e->kind != AST_NAME) {
		nnc_error(s->src, e->loc, "an optimizer must be a call such as sgd(lr: 0.05)");
		return;
	}
	int which = -1;
	for (size_t k = 0; k < sizeof optimizers / sizeof optimizers[0]; k++)
		if (!strcmp(e->str, optimizers[k].name))
			which = (int)k;
	if (which < 0) {
		nnc_error(s->src, e->kind == AST_CALL ? e->callee_loc : e->loc, "unknown optimizer '%s'", e->str);
		const char *best = nnc_suggest(e->str, sema_opt_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("optimizers are: %s", sema_join_choices(sema_opt_names));
		return;
	}
	memset(o, 0, sizeof *o);
	o->kind = optimizers[which].kind;
	o->lr = optimizers[which].lr;
	o->weight_decay = optimizers[which].weight_decay;
	o->beta1 = 0.9;
	o->beta2 = 0.999;
	o->eps = 1e-8;
	o->alpha = 0.99;
	if (e->kind == AST_NAME)
		return;
	if (!sema_check_args(s, e, 0, optimizers[which].opts))
		return;
	const nnc_arg *nesterov = NULL;
	for (int i = 0; i < e->nargs; i++) {
		const nnc_arg *a = &e->args[i];
		bool is_flag = false;
		for (size_t k = 0; k < sizeof opt_flags / sizeof opt_flags[0]; k++)
			if (!strcmp(a->name, opt_flags[k].name)) {
				bool b = false;
				is_flag = true;
				if (sema_arg_bool(s, a, nnc_sprintf("'%s'", a->name), &b) && b)
					o->flags |= opt_flags[k].flag;
			}
		if (is_flag) {
			if (!strcmp(a->name, "nesterov"))
				nesterov = a;
			continue;
		}
		double v = 0;
		if (!sema_arg_num(s, a, nnc_sprintf("'%s'", a->name), &v))
			continue;
		const char *bad = NULL;
		if (!strcmp(a->name, "lr")) {
			o->lr = v;
			if (!(v > 0) || !isfinite(v))
				bad = "the learning rate must be positive";
		} else if (!strcmp(a->name, "momentum")) {
			o->momentum = v;
			if (!(v >= 0 && v < 1))
				bad = "momentum must be in [0, 1)";
		} else if (!strcmp(a->name, "dampening")) {
			o->dampening = v;
			if (!(v >= 0 && v <= 1))
				bad = "dampening must be in [0, 1]";
		} else if (!strcmp(a->name, "beta1")) {
			o->beta1 = v;
			if (!(v >= 0 && v < 1))
				bad = "beta1 must be in [0, 1)";
		} else if (!strcmp(a->name, "beta2")) {
			o->beta2 = v;
			if (!(v >= 0 && v < 1))
				bad = "beta2 must be in [0, 1)";
		} else if (!strcmp(a->name, "alpha")) {
			o->alpha = v;
			if (!(v >= 0 && v < 1))
				bad = "alpha must be in [0, 1)";
		} else if (!strcmp(a->name, "eps")) {
			o->eps = v;
			if (!(v > 0))
				bad = "eps must be positive";
		} else if (!strcmp(a->name, "weight_decay")) {
			o->weight_decay = v;
			if (!(v >= 0))
				bad = "weight_decay must be non-negative";
		} else if (!strcmp(a->name, "clip_norm")) {
			o->clip_norm = v;
			o->flags |= NNRT_OPTF_CLIP_NORM; /* compiles the norm's pass in */
			if (!(v > 0))
				bad = "clip_norm must be positive";
		} else if (!strcmp(a->name, "clip_value")) {
			o->clip_value = v;
			if (!(v > 0))
				bad = "clip_value must be positive";
		}
		if (bad)
			nnc_error(s->src, a->value->loc, "%s, not %g", bad, v);
		else if (!sema_float_ok(s, a->value->loc, nnc_sprintf("'%s'", a->name), v))
			;
		else if (v > 0 && (float)v == 0)
			nnc_error(s->src, a->value->loc, "'%s' is too small: %g is 0 as a 32-bit float", a->name, v);
	}
	/* torch.optim.SGD refuses the same */
	if (nesterov && (o->flags & NNRT_OPTF_NESTEROV) && (o->momentum == 0 || o->dampening != 0)) {
		nnc_error(s->src, nesterov->value->loc, "Nesterov momentum needs a momentum and no dampening");
		nnc_hint("give a momentum, e.g. sgd(lr: 0.1, momentum: 0.9, nesterov: true)");
	}
}

/* Resolves `path` relative to the directory of the .nn file. */
static const char *resolve_path(sema *s, const char *path)
{
	if (path[0] == '/')
		return path;
	const char *slash = strrchr(s->src->path, '/');
	char *dir = slash ? nnc_strndup(s->src->path, (size_t)(slash - s->src->path)) : nnc_strdup(".");
	char buf[PATH_MAX];
	char *abs = realpath(dir, buf);
	return nnc_sprintf("%s/%s", abs ? abs : dir, path);
}

/* Column list for csv: a string, a number, or a list of them -> "a,b,3". */
static const char *csv_cols(sema *s, const nnc_arg *a)
{
	const nnc_ast *e = a->value;
	nnc_buf b = {0};
	const nnc_ast *one[1] = {e};
	int n = e->kind == AST_LIST ? e->nargs : 1;
	const char *r = NULL;
	for (int i = 0; i < n; i++) {
		const nnc_ast *it = e->kind == AST_LIST ? e->args[i].value : one[0];
		if (it->kind == AST_STR) {
			if (strchr(it->str, ',')) {
				nnc_error(s->src, it->loc, "a column name cannot contain ','");
				goto out;
			}
			nnc_buf_printf(&b, "%s%s", i ? "," : "", it->str);
		} else if (it->kind == AST_NUM && it->is_int && it->num >= 0 && it->num <= INT32_MAX) {
			nnc_buf_printf(&b, "%s%lld", i ? "," : "", (long long)it->num);
		} else {
			nnc_error(s->src, it->loc, "a CSV column is a name (string) or a 0-based index");
			goto out;
		}
	}
	if (n == 0) {
		nnc_error(s->src, e->loc, "the column list is empty");
		goto out;
	}
	r = nnc_strdup(b.data);
out:
	nnc_buf_free(&b);
	return r;
}

/* Number of features a synthetic set produces (or 0 if not synthetic). */
static int64_t synth_features(const nnrt_data_spec *d)
{
	switch (d->kind) {
	case NNRT_DATA_XOR: case NNRT_DATA_MOONS: case NNRT_DATA_CIRCLES: case NNRT_DATA_SPIRAL: return 2;
	case NNRT_DATA_PARITY: case NNRT_DATA_MAJORITY: return d->classes;
	default: return 0;
	}
}

/* Each data source kind has its own parser.  It fills d from the call e and
 * returns false to stop at once (nothing more is worth checking); a mistake
 * after which the remaining options are still checked clears *ok instead. */
typedef bool data_parser(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok);

/* idx("images", "labels", scale:, shift:, limit:) */
static bool data_idx(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	static const char *const opts[] = {"scale", "shift", "limit", NULL};
	(void)ok;
	if (!sema_check_args(s, e, 2, opts))
		return false;
	const nnc_arg *pi = sema_positional(e, 0), *pl = sema_positional(e, 1);
	if (!pi || !pl) {
		nnc_error(s->src, e->loc, "idx() needs two paths: the image file and the label file");
		return false;
	}
	const char *p1, *p2;
	if (!sema_arg_str(s, pi, "the image file", &p1) || !sema_arg_str(s, pl, "the label file", &p2))
		return false;
	d->path_x = resolve_path(s, p1);
	d->path_y = resolve_path(s, p2);
	return true;
}

/* csv("file.csv", x: COLUMNS, y: COLUMNS, header: false, scale:, shift:, limit:)
 * COLUMNS: "name" | index | [COLUMN, ...] */
static bool data_csv(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	static const char *const opts[] = {"header", "x", "y", "scale", "shift", "limit", NULL};
	if (!sema_check_args(s, e, 1, opts))
		return false;
	const nnc_arg *pp = sema_positional(e, 0), *a;
	const char *p;
	if (!pp) {
		nnc_error(s->src, e->loc, "csv() needs the path of the file");
		return false;
	}
	if (!sema_arg_str(s, pp, "the CSV file", &p))
		return false;
	d->path_x = resolve_path(s, p);
	bool hdr = false;
	if ((a = sema_find_named(e, "header")))
		*ok &= sema_arg_bool(s, a, "'header'", &hdr);
	d->has_header = hdr;
	if (!(a = sema_find_named(e, "x"))) {
		nnc_error(s->src, e->loc, "csv() needs the feature columns, e.g. x: [\"x1\", \"x2\"]");
		return false;
	}
	*ok &= (d->cols_x = csv_cols(s, a)) != NULL;
	if (!(a = sema_find_named(e, "y"))) {
		nnc_error(s->src, e->loc, "csv() needs the label column(s), e.g. y: \"label\"");
		return false;
	}
	*ok &= (d->cols_y = csv_cols(s, a)) != NULL;
	return true;
}

/* xor | moons | circles (count: 1000, noise: 0, seed: 1)
 * spiral(count: 1000, noise: 0, seed: 1, classes: 3)
 * parity | majority (bits: N, count: 2^N) */
static bool data_synth(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	static const char *const synth_opts[] = {"count", "noise", "seed", NULL};
	static const char *const spiral_opts[] = {"count", "noise", "seed", "classes", NULL};
	static const char *const bits_opts[] = {"bits", "count", NULL};
	const char *f = e->str;
	const nnc_arg *a;
	double v = 0;
	bool bits = d->kind == NNRT_DATA_PARITY || d->kind == NNRT_DATA_MAJORITY;
	if (!sema_check_args(s, e, 0, bits ? bits_opts : d->kind == NNRT_DATA_SPIRAL ? spiral_opts : synth_opts))
		return false;
	d->seed = 1;
	d->classes = d->kind == NNRT_DATA_SPIRAL ? 3 : 2;
	if (bits) {
		if (!(a = sema_find_named(e, "bits"))) {
			nnc_error(s->src, e->loc, "%s() needs the number of bits, e.g. %s(bits: 3)", f, f);
			return false;
		}
		if (!sema_arg_int(s, a, "'bits'", 1, &d->classes))
			return false;
		if (d->classes > 20) {
			nnc_error(s->src, a->value->loc, "'bits' must be at most 20");
			return false;
		}
	}
	if ((a = sema_find_named(e, "noise"))) {
		if (!sema_arg_num(s, a, "'noise'", &v) || !sema_float_ok(s, a->value->loc, "'noise'", v)) {
			*ok = false;
		} else if (!(v >= 0)) {
			nnc_error(s->src, a->value->loc, "'noise' must be non-negative");
			*ok = false;
		} else {
			d->noise = (float)v;
		}
	}
	if ((a = sema_find_named(e, "seed")))
		*ok &= sema_arg_int(s, a, "'seed'", 0, &d->seed);
	if ((a = sema_find_named(e, "classes")))
		*ok &= sema_arg_int_in(s, a, "'classes'", 2, 1000, &d->classes);
	if ((a = sema_find_named(e, "count"))) {
		/* the runtime's limit: the set is generated whole in memory */
		*ok &= sema_arg_int_in(s, a, "'count'", 1, 4294967296.0, &d->count);
	} else if (!bits)
		d->count = 1000;
	return true;
}

/* The vocabulary a sequence source may use (the spec's classes): the
 * smaller of the token input's and the per-position label's; false (after
 * reporting) when the model is not a sequence model. */
static bool seq_model(sema *s, const nnc_ast *e, nnrt_data_spec *d)
{
	ir_graph *g = s->g;
	if (g->input < 0 || g->label < 0)
		return true; /* reported elsewhere */
	if (!g->input_vocab || !g->label_vocab || g->label_size != g->nodes[g->input].size) {
		nnc_error(s->src, e->loc,
			  "%s() gives a class per position: the model needs input token(V)[T] and label class(V)[T] with the same T",
			  e->str);
		nnc_note(s->src, g->nodes[g->input].loc, "the input has shape %s", ir_shape_str(&g->nodes[g->input]));
		return false;
	}
	d->classes = g->input_vocab < g->label_vocab ? g->input_vocab : g->label_vocab;
	if (d->kind == NNRT_DATA_REVERSE && d->classes < 10) {
		nnc_error(s->src, e->loc, "reverse() gives the digits 0..9, but the vocabulary has only %lld tokens",
			  (long long)d->classes);
		return false;
	}
	return true;
}

/* reverse(count: 1000, seed: 1): T random digits, the label them reversed */
static bool data_reverse(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	static const char *const opts[] = {"count", "seed", NULL};
	const nnc_arg *a;
	if (!sema_check_args(s, e, 0, opts))
		return false;
	d->seed = 1;
	d->count = 1000;
	if ((a = sema_find_named(e, "seed")))
		*ok &= sema_arg_int(s, a, "'seed'", 0, &d->seed);
	if ((a = sema_find_named(e, "count")))
		*ok &= sema_arg_int_in(s, a, "'count'", 1, 4294967296.0, &d->count);
	return seq_model(s, e, d);
}

/* text("corpus.txt", context: T, limit: N): windows of T bytes, the label
 * the next byte at each position */
static bool data_text(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	static const char *const opts[] = {"context", "limit", NULL};
	if (!sema_check_args(s, e, 1, opts))
		return false;
	const nnc_arg *pp = sema_positional(e, 0), *a;
	const char *p;
	if (!pp) {
		nnc_error(s->src, e->loc, "text() needs the path of the corpus");
		return false;
	}
	if (!sema_arg_str(s, pp, "the corpus", &p))
		return false;
	d->path_x = resolve_path(s, p);
	if (!seq_model(s, e, d))
		return false;
	int64_t ctx = 0;
	if ((a = sema_find_named(e, "context")) && sema_arg_int(s, a, "'context'", 1, &ctx) && s->g->input >= 0 &&
	    ctx != s->g->nodes[s->g->input].size) {
		nnc_error(s->src, a->value->loc, "the context of text() is %lld, but input '%s' has %lld positions", (long long)ctx,
			  s->g->nodes[s->g->input].name, (long long)s->g->nodes[s->g->input].size);
		*ok = false;
	}
	return true;
}

/* The data sources, in the order sema_data_names lists them. */
static const struct {
	const char *name;
	int kind; /* NNRT_DATA_* */
	data_parser *parse;
} data_sources[] = {
	{"idx", NNRT_DATA_IDX, data_idx},           {"csv", NNRT_DATA_CSV, data_csv},
	{"xor", NNRT_DATA_XOR, data_synth},         {"moons", NNRT_DATA_MOONS, data_synth},
	{"circles", NNRT_DATA_CIRCLES, data_synth}, {"spiral", NNRT_DATA_SPIRAL, data_synth},
	{"parity", NNRT_DATA_PARITY, data_synth},   {"majority", NNRT_DATA_MAJORITY, data_synth},
	{"reverse", NNRT_DATA_REVERSE, data_reverse}, {"text", NNRT_DATA_TEXT, data_text},
};

/* The names of data_sources, for suggestions. */
const char *const sema_data_names[] = {"idx", "csv", "xor", "moons", "circles", "spiral", "parity", "majority", "reverse", "text", NULL};
_Static_assert(sizeof data_sources / sizeof data_sources[0] + 1 == sizeof sema_data_names / sizeof sema_data_names[0],
	       "every data source is in sema_data_names");

/* The options every data source takes: scale: S, shift: B (x -> x * S + B),
 * limit: N (the first N samples).  Clears *ok on a mistake. */
static void data_common(sema *s, const nnc_ast *e, nnrt_data_spec *d, bool *ok)
{
	const nnc_arg *a;
	double v = 0;
	if ((a = sema_find_named(e, "scale"))) {
		if (sema_arg_num(s, a, "'scale'", &v) && sema_float_ok(s, a->value->loc, "'scale'", v)) {
			d->scale = (float)v;
			if (d->scale == 0) {
				/* the runtime would read 0 as "not given" */
				nnc_error(s->src, a->value->loc, "'scale' must not be 0: every feature would be 0");
				*ok = false;
			}
		} else {
			*ok = false;
		}
	}
	if ((a = sema_find_named(e, "shift"))) {
		if (sema_arg_num(s, a, "'shift'", &v) && sema_float_ok(s, a->value->loc, "'shift'", v))
			d->shift = (float)v;
		else
			*ok = false;
	}
	if ((a = sema_find_named(e, "limit")))
		*ok &= sema_arg_int(s, a, "'limit'", 1, &d->count);
}

/* The model cross-check of a CSV source: the columns chosen in the program,
 * as many as the model reads?  The training binary refuses the data
 * otherwise (--data keeps the column choice), but the file may not exist
 * yet, so this is a warning.  Only for an error-free model, whose
 * declarations can be trusted. */
static void check_csv_columns(sema *s, const nnc_ast *e, const nnrt_data_spec *d)
{
	ir_graph *g = s->g;
	if (nnc_diag_error_count() != s->errors0 || g->input < 0 || g->label < 0)
		return;
	const nnc_arg *xa = sema_find_named(e, "x"), *ya = sema_find_named(e, "y");
	int nx = 1, ny = 1;
	for (const char *c = d->cols_x; *c; c++)
		nx += *c == ',';
	for (const char *c = d->cols_y; *c; c++)
		ny += *c == ',';
	const ir_node *in = &g->nodes[g->input], *lb = &g->nodes[g->label];
	int64_t want_y = g->label_kind == NNRT_LABEL_CLASS ? 1 : g->label_size;
	if (nx != in->size) {
		nnc_warning(s->src, xa->value->loc,
			    "csv() reads %d feature column%s, but input '%s' has shape %s: %lld value%s per sample", nx,
			    nx == 1 ? "" : "s", in->name, ir_shape_str(in), (long long)in->size,
			    in->size == 1 ? "" : "s");
		nnc_note(s->src, in->loc, "'%s' is declared here", in->name);
		nnc_hint("the training program will refuse this data");
	} else if (ny != want_y) {
		if (g->label_kind == NNRT_LABEL_CLASS)
			nnc_warning(s->src, ya->value->loc,
				    "csv() reads %d label columns, but label '%s' is class(%lld): one column, the class "
				    "index", ny, lb->name, (long long)g->label_size);
		else
			nnc_warning(s->src, ya->value->loc,
				    "csv() reads %d label column%s, but label '%s' has shape %s: %lld value%s per sample",
				    ny, ny == 1 ? "" : "s", lb->name, ir_shape_str(lb), (long long)want_y,
				    want_y == 1 ? "" : "s");
		nnc_note(s->src, lb->loc, "'%s' is declared here", lb->name);
		nnc_hint("the training program will refuse this data");
	}
}

/* The model cross-check of a synthetic source, whose sample shape and
 * classes are known: an error when the model's input or label disagree. */
static bool check_synth_shape(sema *s, const nnc_ast *e, const nnrt_data_spec *d)
{
	ir_graph *g = s->g;
	const char *f = e->str;
	int64_t nf = synth_features(d);
	if (nf && g->input >= 0 && g->nodes[g->input].size != nf) {
		nnc_error(s->src, e->loc, "%s() gives %lld features per sample, but input '%s' has shape %s", f,
			  (long long)nf, g->nodes[g->input].name, ir_shape_str(&g->nodes[g->input]));
		return false;
	}
	if (nf && g->label >= 0) {
		int64_t classes = d->kind == NNRT_DATA_SPIRAL ? d->classes : 2;
		if (g->label_kind == NNRT_LABEL_CLASS && g->label_size != classes) {
			nnc_error(s->src, e->loc, "%s() has %lld classes, but label '%s' is class(%lld)", f,
				  (long long)classes, g->nodes[g->label].name, (long long)g->label_size);
			return false;
		}
		if (g->label_kind == NNRT_LABEL_REAL && (g->label_size != 1 || classes != 2)) {
			nnc_error(s->src, e->loc, "%s() gives class labels; declare the label as class(%lld)%s", f,
				  (long long)classes, classes == 2 ? " or f32[1] (0 or 1)" : "");
			return false;
		}
	}
	return true;
}

/* data: SOURCE / test: SOURCE in the train block, SOURCE one of the calls
 * above; d is filled and checked against the model. */
static bool data_source(sema *s, const nnc_arg *setting, nnrt_data_spec *d)
{
	const nnc_ast *e = setting->value;
	if (e->kind != AST_CALL) {
		nnc_error(s->src, e->loc, "'%s' must be a data source such as idx(\"images\", \"labels\") or moons(count: 1000)",
			  setting->name);
		return false;
	}
	memset(d, 0, sizeof *d);
	d->scale = 1;
	const char *f = e->str;
	data_parser *parse = NULL;
	for (size_t i = 0; i < sizeof data_sources / sizeof data_sources[0]; i++)
		if (!strcmp(f, data_sources[i].name)) {
			d->kind = data_sources[i].kind;
			parse = data_sources[i].parse;
		}
	if (!parse) {
		nnc_error(s->src, e->callee_loc, "unknown data source '%s'", f);
		const char *best = nnc_suggest(f, sema_data_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("data sources are: %s", sema_join_choices(sema_data_names));
		return false;
	}
	bool ok = true;
	if (!parse(s, e, d, &ok))
		return false;
	data_common(s, e, d, &ok);
	if (!ok)
		return false;
	if (d->kind == NNRT_DATA_CSV)
		check_csv_columns(s, e, d);
	if ((d->kind == NNRT_DATA_CSV || d->kind == NNRT_DATA_IDX) && s->g->input_vocab) /* ids checked when read */
		d->classes = s->g->label_vocab && s->g->label_vocab < s->g->input_vocab ? s->g->label_vocab : s->g->input_vocab;
	return check_synth_shape(s, e, d);
}

/* ---- the learning-rate schedule ---- */

/* The schedules, in the order sema_schedule_names lists them. */
static const struct {
	const char *name;
	int kind; /* NNRT_SCHED_* */
	const char *const opts[8];
} schedules[] = {
	{"constant", NNRT_SCHED_CONSTANT, {NULL}},
	{"step", NNRT_SCHED_STEP, {"every", "gamma"}},
	{"multistep", NNRT_SCHED_MULTISTEP, {"at", "gamma"}},
	{"exponential", NNRT_SCHED_EXPONENTIAL, {"gamma"}},
	{"cosine", NNRT_SCHED_COSINE, {"epochs", "min", "period", "mult"}},
	{"polynomial", NNRT_SCHED_POLYNOMIAL, {"epochs", "power", "min"}},
	{"onecycle", NNRT_SCHED_ONECYCLE,
	 {"epochs", "pct", "div", "final_div", "base_momentum", "max_momentum", "cycle_momentum"}},
};
static const char *const schedule_names[] = {"constant",   "step",     "multistep", "exponential",
					     "cosine",     "polynomial", "onecycle", NULL};

/* A number option of a schedule: *v keeps its default when absent;
 * false (after reporting) when given but not in (lo, hi] (lo_incl: [lo, hi]). */
static bool sched_num(sema *s, const nnc_ast *e, const char *name, double lo, bool lo_incl, double hi, double *v)
{
	const nnc_arg *a = sema_find_named(e, name);
	if (!a)
		return true;
	if (!sema_arg_num(s, a, nnc_sprintf("'%s'", name), v) || !sema_float_ok(s, a->value->loc, nnc_sprintf("'%s'", name), *v))
		return false;
	if (!(lo_incl ? *v >= lo : *v > lo) || !(*v <= hi)) {
		if (isinf(hi))
			nnc_error(s->src, a->value->loc, "'%s' must be %s %g, not %g", name, lo_incl ? ">=" : ">", lo, *v);
		else
			nnc_error(s->src, a->value->loc, "'%s' must be in %c%g, %g], not %g", name, lo_incl ? '[' : '(', lo,
				  hi, *v);
		return false;
	}
	return true;
}

/* onecycle's momentum: base_momentum: 0.85, max_momentum: 0.95 (both in
 * (0, 1): 0 would read as "not cycled"), cycle_momentum: false for none. */
static void onecycle_momentum(sema *s, const nnc_ast *e, nnrt_schedule *sc)
{
	const char *const names[] = {"base_momentum", "max_momentum"};
	double *vals[] = {&sc->mom_base, &sc->mom_max};
	for (int k = 0; k < 2; k++) {
		const nnc_arg *a = sema_find_named(e, names[k]);
		double v = 0;
		if (!a || !sema_arg_num(s, a, nnc_sprintf("'%s'", names[k]), &v))
			continue;
		if (!(v > 0 && v < 1))
			nnc_error(s->src, a->value->loc, "'%s' must be in (0, 1), not %g", names[k], v);
		else
			*vals[k] = v;
	}
	const nnc_arg *cy = sema_find_named(e, "cycle_momentum");
	bool on = true;
	if (!cy || !sema_arg_bool(s, cy, "'cycle_momentum'", &on) || on)
		return;
	sc->mom_base = sc->mom_max = 0;
	for (int k = 0; k < 2; k++)
		if (sema_find_named(e, names[k]))
			nnc_error(s->src, sema_find_named(e, names[k])->name_loc,
				  "'%s' has no effect with cycle_momentum: false", names[k]);
}

/* schedule: constant | step(every: E, gamma: 0.1) | multistep(at: [E, ...], gamma: 0.1)
 *         | exponential(gamma: G) | cosine(epochs: T, min: 0) | cosine(period: T0, mult: 1, min: 0)
 *         | polynomial(epochs: T, power: 1, min: 0)
 *         | onecycle(epochs: T, pct: 0.3, div: 25, final_div: 1e4, base_momentum: 0.85, max_momentum: 0.95,
 *                    cycle_momentum: true)
 * Durations are epochs (fractions allowed) after the warmup; T defaults to
 * the rest of the training.  The rates are absolute (min: 1e-5). */
static void schedule_setting(sema *s, const nnc_arg *setting, nnrt_schedule *sc)
{
	const nnc_ast *e = setting->value;
	if (e->kind != AST_CALL && e->kind != AST_NAME) {
		nnc_error(s->src, e->loc, "'schedule' must be a schedule such as cosine() or step(every: 30, gamma: 0.1)");
		return;
	}
	int which = -1;
	for (size_t k = 0; k < sizeof schedules / sizeof schedules[0]; k++)
		if (!strcmp(e->str, schedules[k].name))
			which = (int)k;
	if (which < 0) {
		nnc_error(s->src, e->kind == AST_CALL ? e->callee_loc : e->loc, "unknown schedule '%s'", e->str);
		const char *best = nnc_suggest(e->str, schedule_names);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("schedules are: %s", sema_join_choices(schedule_names));
		return;
	}
	int64_t warmup = sc->warmup;
	memset(sc, 0, sizeof *sc);
	sc->warmup = warmup;
	sc->kind = schedules[which].kind;
	/* the defaults */
	switch (sc->kind) {
	case NNRT_SCHED_STEP: case NNRT_SCHED_MULTISTEP: sc->b = 0.1; break;
	case NNRT_SCHED_POLYNOMIAL: sc->b = 1; break;
	case NNRT_SCHED_COSINE: sc->b = 1; break;
	case NNRT_SCHED_ONECYCLE: /* torch's OneCycleLR, cycle_momentum=True */
		sc->b = 0.3, sc->c = 25, sc->d = 1e4, sc->mom_base = 0.85, sc->mom_max = 0.95;
		break;
	}
	if (e->kind == AST_NAME) {
		if (sc->kind == NNRT_SCHED_STEP || sc->kind == NNRT_SCHED_MULTISTEP || sc->kind == NNRT_SCHED_EXPONENTIAL)
			goto needs;
		return;
	}
	if (!sema_check_args(s, e, 0, schedules[which].opts))
		return;
	const double inf = INFINITY;
	switch (sc->kind) {
	case NNRT_SCHED_STEP:
		if (!sema_find_named(e, "every"))
			goto needs;
		sched_num(s, e, "every", 0, false, inf, &sc->a);
		sched_num(s, e, "gamma", 0, false, inf, &sc->b);
		break;
	case NNRT_SCHED_MULTISTEP: {
		const nnc_arg *at = sema_find_named(e, "at");
		if (!at)
			goto needs;
		sched_num(s, e, "gamma", 0, false, inf, &sc->b);
		const nnc_ast *l = at->value;
		if (l->kind != AST_LIST || l->nargs < 1 || l->nargs > NNRT_MAX_MILESTONES) {
			nnc_error(s->src, l->loc, "'at' must be a list of 1 to %d epochs, e.g. at: [30, 60]",
				  NNRT_MAX_MILESTONES);
			return;
		}
		for (int i = 0; i < l->nargs; i++) {
			nnc_arg one = {.name = "at", .name_loc = at->name_loc, .value = l->args[i].value};
			double v = 0;
			if (!sema_arg_num(s, &one, "a milestone", &v) || !sema_float_ok(s, one.value->loc, "a milestone", v))
				return;
			if (!(v > (i ? sc->milestones[i - 1] : 0))) {
				nnc_error(s->src, one.value->loc, "the milestones must be positive and increasing, not %g after %g",
					  v, i ? sc->milestones[i - 1] : 0);
				return;
			}
			sc->milestones[i] = v;
		}
		sc->n_milestones = l->nargs;
		break;
	}
	case NNRT_SCHED_EXPONENTIAL:
		if (!sema_find_named(e, "gamma"))
			goto needs;
		sched_num(s, e, "gamma", 0, false, inf, &sc->b);
		break;
	case NNRT_SCHED_COSINE: {
		const nnc_arg *ep = sema_find_named(e, "epochs"), *pe = sema_find_named(e, "period");
		if (ep && pe) {
			nnc_error(s->src, pe->name_loc, "'period' (cosine with restarts) and 'epochs' (one decay) exclude each other");
			return;
		}
		if (sema_find_named(e, "mult") && !pe) {
			nnc_error(s->src, sema_find_named(e, "mult")->name_loc, "'mult' needs a restart 'period'");
			return;
		}
		sched_num(s, e, "epochs", 0, false, inf, &sc->a);
		sched_num(s, e, "period", 0, false, inf, &sc->d);
		sched_num(s, e, "mult", 1, true, inf, &sc->b);
		sched_num(s, e, "min", 0, true, inf, &sc->c);
		break;
	}
	case NNRT_SCHED_POLYNOMIAL:
		sched_num(s, e, "epochs", 0, false, inf, &sc->a);
		sched_num(s, e, "power", 0, false, inf, &sc->b);
		sched_num(s, e, "min", 0, true, inf, &sc->c);
		break;
	case NNRT_SCHED_ONECYCLE:
		sched_num(s, e, "epochs", 0, false, inf, &sc->a);
		sched_num(s, e, "pct", 0, false, 1, &sc->b);
		sched_num(s, e, "div", 0, false, inf, &sc->c);
		sched_num(s, e, "final_div", 0, false, inf, &sc->d);
		onecycle_momentum(s, e, sc);
		break;
	}
	return;
needs:
	nnc_error(s->src, e->loc, "schedule '%s' needs %s", e->str,
		  sc->kind == NNRT_SCHED_STEP	     ? "'every' (epochs), e.g. step(every: 30, gamma: 0.1)"
		  : sc->kind == NNRT_SCHED_MULTISTEP ? "the milestones 'at', e.g. multistep(at: [30, 60], gamma: 0.1)"
						     : "'gamma' (per epoch), e.g. exponential(gamma: 0.95)");
}

/* The schedule's minimum or final rate must be below the learning rate
 * (the optimizer may come after the train block: checked at the end). */
void sema_check_schedule(sema *s)
{
	nnc_train_config *cfg = s->cfg;
	const nnrt_schedule *sc = &cfg->sched;
	if (!s->train_stmt || !s->opt_stmt || nnc_diag_error_count() != s->errors0)
		return;
	if (cfg->accumulate > 1) {
		cfg->opt.accumulate = cfg->accumulate;
		cfg->opt.flags |= NNRT_OPTF_ACCUMULATE;
		if (cfg->opt.flags & NNRT_OPTF_CLIP_NORM) {
			const nnc_stmt *st = s->train_stmt;
			for (int i = 0; i < st->nsettings; i++)
				if (!strcmp(st->settings[i].name, "accumulate"))
					nnc_error(s->src, st->settings[i].value->loc,
						  "accumulate does not work with clip_norm yet (the norm of the "
						  "accumulated gradient is not computed)");
		}
	}
	if ((sc->kind == NNRT_SCHED_COSINE || sc->kind == NNRT_SCHED_POLYNOMIAL) && sc->c > cfg->opt.lr) {
		const nnc_stmt *st = s->train_stmt;
		for (int i = 0; i < st->nsettings; i++)
			if (!strcmp(st->settings[i].name, "schedule")) {
				const nnc_arg *m = sema_find_named(st->settings[i].value, "min");
				nnc_error(s->src, m ? m->value->loc : st->settings[i].value->loc,
					  "the schedule's 'min' rate %g is above the learning rate %g", sc->c, cfg->opt.lr);
			}
	}
	/* a warmup longer than the training: known here for a synthetic set */
	int64_t n = cfg->train.count;
	if (sc->warmup > 0 && n > 0 && cfg->train.kind >= NNRT_DATA_XOR) {
		int64_t total = (n + cfg->batch - 1) / cfg->batch * cfg->epochs;
		if (sc->warmup >= total) {
			const nnc_stmt *st = s->train_stmt;
			for (int i = 0; i < st->nsettings; i++)
				if (!strcmp(st->settings[i].name, "warmup"))
					nnc_error(s->src, st->settings[i].value->loc,
						  "the warmup of %lld steps is not shorter than the training: %lld epoch%s of "
						  "%lld steps",
						  (long long)sc->warmup, (long long)cfg->epochs, cfg->epochs == 1 ? "" : "s",
						  (long long)((n + cfg->batch - 1) / cfg->batch));
		}
	}
}

static const char *const train_keys[] = {"data",     "test",   "batch",	   "epochs", "seed",
					 "schedule", "warmup", "accumulate", "augment", "validation", "early_stop",
					 "precision", NULL};

/* augment: [crop(pad: 4), flip, flip(p: 0.5), erase(size: 8, p: 0.5)]
 * The transforms of the training images; whatever the list's order, they
 * run as crop, flip, erase (augment.c).  Names, options, ranges and
 * messages are the runtime's (runtime/augment.h), which reads the binary's
 * --augment with the same rules.  Their fit to the input's shape is checked
 * at the end (sema_check_augment), the input may come later. */
static void augment_setting(sema *s, const nnc_arg *a, nnc_train_config *cfg)
{
	const nnc_ast *l = a->value;
	if (l->kind != AST_LIST || l->nargs < 1) {
		nnc_error(s->src, l->loc, "'augment' must be a list of transforms, e.g. augment: [crop(pad: 4), flip]");
		return;
	}
	cfg->aug.loc = l->loc;
	nnrt_augment_spec *spec = &cfg->aug.spec;
	bool seen[NNRT_AUG_COUNT] = {false};
	char why[256];
	for (int i = 0; i < l->nargs; i++) {
		const nnc_ast *e = l->args[i].value;
		if (e->kind != AST_NAME && e->kind != AST_CALL) {
			nnc_error(s->src, e->loc, "a transform is expected here: %s", nnrt_augment_forms);
			continue;
		}
		nnc_loc at = e->kind == AST_CALL ? e->callee_loc : e->loc;
		int tr = -1;
		for (int k = 0; k < NNRT_AUG_COUNT; k++)
			if (!strcmp(nnrt_augment_names[k], e->str))
				tr = k;
		if (tr < 0) {
			nnc_error(s->src, at, "unknown transform '%s'", e->str);
			const char *best = nnc_suggest(e->str, nnrt_augment_names);
			if (best)
				nnc_hint("did you mean '%s'?", best);
			else
				nnc_hint("transforms are: %s", sema_join_choices(nnrt_augment_names));
			continue;
		}
		if (seen[tr]) {
			nnc_error(s->src, at, "transform '%s' is given twice", e->str);
			continue;
		}
		seen[tr] = true;
		const char *const *keys = nnrt_augment_keys(tr);
		if (e->kind == AST_CALL && !sema_check_args(s, e, 0, keys))
			continue;
		nnrt_augment_begin(spec, tr);
		bool ok = true;
		for (int k = 0; ok && keys[k]; k++) {
			const nnc_arg *o = e->kind == AST_CALL ? sema_find_named(e, keys[k]) : NULL;
			double v;
			if (!o)
				continue;
			if (!sema_arg_num(s, o, "a number", &v))
				ok = false;
			else if (nnrt_augment_set(spec, tr, k, v, why, sizeof why)) {
				nnc_error(s->src, o->value->loc, "%s", why);
				ok = false;
			}
		}
		if (ok && nnrt_augment_end(spec, tr, why, sizeof why))
			nnc_error(s->src, at, "%s", why);
	}
}

/* precision: fp32  or  bf16
 * The arithmetic of products and convolutions; whether the target can do
 * bf16 is checked with the target (main.c). */
static const char *const precisions[] = {"fp32", "bf16", NULL};

static void precision_setting(sema *s, const nnc_arg *a, nnc_train_config *cfg)
{
	const nnc_ast *e = a->value;
	int which = -1;
	for (int k = 0; e->kind == AST_NAME && precisions[k]; k++)
		if (!strcmp(precisions[k], e->str))
			which = k;
	if (which < 0) {
		nnc_error(s->src, e->loc, "'precision' is fp32 or bf16");
		const char *best = e->kind == AST_NAME ? nnc_suggest(e->str, precisions) : NULL;
		if (best)
			nnc_hint("did you mean '%s'?", best);
		return;
	}
	cfg->precision = which == 1 ? NNC_PRECISION_BF16 : NNC_PRECISION_FP32;
	cfg->precision_loc = e->loc;
}

/* early_stop: val_loss(patience: 5, min_delta: 0)  or  val_acc(...)
 * Stops when the metric has not improved by more than min_delta for
 * `patience` epochs; needs validation: (checked at the end of the block). */
static const char *const es_metrics[] = {"val_loss", "val_acc", NULL};

static void early_stop_setting(sema *s, const nnc_arg *a, nnc_train_config *cfg)
{
	const nnc_ast *e = a->value;
	if (e->kind != AST_NAME && e->kind != AST_CALL) {
		nnc_error(s->src, e->loc, "'early_stop' must name a metric, e.g. early_stop: val_loss(patience: 5)");
		return;
	}
	nnc_loc at = e->kind == AST_CALL ? e->callee_loc : e->loc;
	int which = -1;
	for (int k = 0; es_metrics[k]; k++)
		if (!strcmp(es_metrics[k], e->str))
			which = k;
	if (which < 0) {
		nnc_error(s->src, at, "early stopping cannot watch '%s'", e->str);
		const char *best = nnc_suggest(e->str, es_metrics);
		if (best)
			nnc_hint("did you mean '%s'?", best);
		else
			nnc_hint("it watches %s", sema_join_choices(es_metrics));
		return;
	}
	static const char *const opts[] = {"patience", "min_delta", NULL};
	if (e->kind == AST_CALL && !sema_check_args(s, e, 0, opts))
		return;
	cfg->es_patience = 5; /* as the example; Keras' default 0 stops at once */
	const nnc_arg *p = e->kind == AST_CALL ? sema_find_named(e, "patience") : NULL;
	const nnc_arg *d = e->kind == AST_CALL ? sema_find_named(e, "min_delta") : NULL;
	if (p && !sema_arg_int_in(s, p, "'patience' (epochs)", 1, 1e9, &cfg->es_patience))
		return;
	if (d && sema_arg_num(s, d, "'min_delta'", &cfg->es_min_delta) && !(cfg->es_min_delta >= 0)) {
		nnc_error(s->src, d->value->loc, "'min_delta' must be >= 0, not %g", cfg->es_min_delta);
		return;
	}
	cfg->es_metric = which == 0 ? NNRT_ES_VAL_LOSS : NNRT_ES_VAL_ACC;
	cfg->es_loc = at;
}

/* Augmentation transforms images: the input must be [channels, rows,
 * columns], and the padding and the square must fit in an image. */
void sema_check_augment(sema *s)
{
	nnc_train_config *cfg = s->cfg;
	const ir_graph *g = s->g;
	if (cfg->es_metric == NNRT_ES_VAL_ACC && g->loss_kind == NNRT_LOSS_MSE && nnc_diag_error_count() == s->errors0)
		nnc_error(s->src, cfg->es_loc, "early stopping cannot watch val_acc: an mse loss has no accuracy");
	if (g->input < 0 || nnc_diag_error_count() != s->errors0)
		return;
	const ir_node *in = &g->nodes[g->input];
	char why[256];
	if (nnrt_augment_fit_shape(&cfg->aug.spec, in->rank, in->dims, why, sizeof why)) {
		nnc_error(s->src, cfg->aug.loc, "%s", why);
		if (in->rank != 3)
			nnc_note(s->src, in->loc, "the input is declared here");
	}
}

/* validation: F (a fraction of the training data, in (0, 1)) or
 * validation: SOURCE (a data set of its own, any source data: takes,
 * checked against the model like data: and test:). */
static void validation_setting(sema *s, const nnc_arg *a, nnc_train_config *cfg)
{
	const nnc_ast *e = a->value;
	bool source = e->kind == AST_CALL;
	for (int k = 0; e->kind == AST_NAME && sema_data_names[k]; k++)
		source |= !strcmp(e->str, sema_data_names[k]);
	if (e->kind == AST_STR) {
		nnc_error(s->src, e->loc, "'validation' must be a fraction such as 0.1 or a data source such as "
			  "idx(\"images\", \"labels\")");
		return;
	}
	if (source) {
		if (!data_source(s, a, &cfg->val))
			cfg->val.kind = NNRT_DATA_NONE;
		return;
	}
	if (sema_arg_num(s, a, "the validation fraction", &cfg->val_fraction) &&
	    !(cfg->val_fraction > 0 && cfg->val_fraction < 1)) {
		nnc_error(s->src, a->value->loc, "the validation fraction must be in (0, 1), not %g", cfg->val_fraction);
		nnc_hint("or give a data set of its own, e.g. validation: moons(count: 200, seed: 2)");
		cfg->val_fraction = 0;
	}
}

/* train { data: SOURCE  test: SOURCE  batch: 32  epochs: 1  seed: 1  schedule: SCHEDULE  warmup: 0
 *         accumulate: 1  augment: [TRANSFORM, ...] } */
void sema_stmt_train(sema *s, const nnc_stmt *st)
{
	nnc_train_config *cfg = s->cfg;
	if (s->train_stmt) {
		nnc_error(s->src, st->loc, "the train block is already defined");
		nnc_note(s->src, s->train_stmt->loc, "first defined here");
		return;
	}
	s->train_stmt = st;
	for (int i = 0; i < st->nsettings; i++) {
		const nnc_arg *a = &st->settings[i];
		bool known = false;
		for (int k = 0; train_keys[k]; k++)
			known |= !strcmp(train_keys[k], a->name);
		if (!known) {
			nnc_error(s->src, a->name_loc, "unknown train setting '%s'", a->name);
			const char *best = nnc_suggest(a->name, train_keys);
			if (best)
				nnc_hint("did you mean '%s'?", best);
			else
				nnc_hint("train settings are: %s", sema_join_choices(train_keys));
			continue;
		}
		bool dup = false;
		for (int j = 0; j < i; j++)
			if (!strcmp(st->settings[j].name, a->name)) {
				nnc_error(s->src, a->name_loc, "train setting '%s' is given twice", a->name);
				nnc_note(s->src, st->settings[j].name_loc, "first given here");
				dup = true;
				break;
			}
		if (dup)
			continue;
		if (!strcmp(a->name, "data"))
			data_source(s, a, &cfg->train);
		else if (!strcmp(a->name, "test"))
			data_source(s, a, &cfg->test);
		else if (!strcmp(a->name, "batch")) {
			if (sema_arg_int(s, a, "the batch size", 1, &cfg->batch) && cfg->batch > 65536)
				nnc_error(s->src, a->value->loc, "the batch size must be at most 65536");
		} else if (!strcmp(a->name, "epochs"))
			sema_arg_int(s, a, "the number of epochs", 1, &cfg->epochs);
		else if (!strcmp(a->name, "seed"))
			sema_arg_int(s, a, "the seed", 0, &cfg->seed);
		else if (!strcmp(a->name, "schedule"))
			schedule_setting(s, a, &cfg->sched);
		else if (!strcmp(a->name, "warmup"))
			sema_arg_int(s, a, "the warmup (steps)", 0, &cfg->sched.warmup);
		else if (!strcmp(a->name, "accumulate"))
			sema_arg_int_in(s, a, "'accumulate' (micro-batches per update)", 1, 65536, &cfg->accumulate);
		else if (!strcmp(a->name, "augment"))
			augment_setting(s, a, cfg);
		else if (!strcmp(a->name, "validation"))
			validation_setting(s, a, cfg);
		else if (!strcmp(a->name, "early_stop"))
			early_stop_setting(s, a, cfg);
		else if (!strcmp(a->name, "precision"))
			precision_setting(s, a, cfg);
	}
	for (int i = 0; i < st->nsettings; i++)
		if (!strcmp(st->settings[i].name, "early_stop") && cfg->es_metric && cfg->val_fraction == 0 &&
		    cfg->val.kind == NNRT_DATA_NONE && nnc_diag_error_count() == s->errors0) {
			nnc_error(s->src, st->settings[i].name_loc, "early stopping needs validation data");
			nnc_hint("hold out part of the training data, e.g. validation: 0.1, or give a validation set, "
				 "e.g. validation: idx(\"images\", \"labels\")");
		}
	bool has_data = false;
	for (int i = 0; i < st->nsettings; i++)
		has_data |= nnc_suggest(st->settings[i].name, (const char *const[]){"data", NULL}) != NULL;
	if (!has_data) {
		nnc_error(s->src, st->loc, "the train block needs a 'data' source");
		nnc_hint("for example: data: moons(count: 1000, noise: 0.1)");
	}
}
