/*
 * model.c - what the runtime knows about a model object, in one place: the
 * check that an object is one this runtime can run, the initial values of
 * its parameters and state, and the hyper-parameters handed to each
 * generated step.
 *
 * Both ways of running a model go through these functions: the training
 * binary (nnrt_main, train.c) and the embedding API (api.c).  Before, each
 * had its own copy of the model check and of the per-step hyper-parameters,
 * and the copies had drifted (the API accepted an unknown loss or
 * initialiser that the binary refused).  With one copy, an instance trained
 * on the binary's batches ends with the binary's parameters by construction.
 *
 * Nothing here allocates or prints: the check writes its reason into the
 * caller's buffer, and each caller reports it its own way (nnrt_error for
 * the binary, a status code for the API).
 */
#include "nnrt_internal.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* ---- The model check ---- */

/* Writes the reason into why (n bytes, if why is not NULL); returns code. */
static int refuse(char *why, size_t n, int code, const char *fmt, ...) NNRT_PRINTF(4, 5);
static int refuse(char *why, size_t n, int code, const char *fmt, ...)
{
	if (why && n) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, n, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* The first field of m (beyond the ABI) that no object of nnc's has, or NULL. */
static const char *bad_field(const nnrt_model *m, int training)
{
	if (!m->name)
		return "no model name";
	if (m->input_size < 1)
		return "input_size < 1";
	if (m->batch < 1)
		return "batch < 1";
	if (m->label_kind != NNRT_LABEL_CLASS && m->label_kind != NNRT_LABEL_REAL)
		return "unknown label kind";
	if (m->label_size < 1)
		return "label_size < 1";
	if (m->output_size < 1)
		return "output_size < 1";
	if (m->loss < NNRT_LOSS_SOFTMAX_XENT || m->loss > NNRT_LOSS_SEQ_XENT)
		return "unknown loss";
	if (!nnrt_opt_name(m->optimizer))
		return "unknown optimizer";
	if (m->param_floats < 0 || m->opt_floats < 0 || m->ws_floats < 0 || m->state_floats < 0 || m->n_params < 0 ||
	    m->n_state < 0)
		return "negative array size";
	/* 2^58 floats each: an instance's size (NNRT_INSTANCE_MEMORY_SIZE,
	 * params twice) stays below 2^62 bytes and cannot wrap. */
	const int64_t max = (int64_t)1 << 58;
	if (m->param_floats > max || m->opt_floats > max || m->ws_floats > max || m->state_floats > max)
		return "array size too large";
	if (m->schedule.kind < NNRT_SCHED_CONSTANT || m->schedule.kind > NNRT_SCHED_ONECYCLE ||
	    m->schedule.n_milestones < 0 || m->schedule.n_milestones > NNRT_MAX_MILESTONES || m->schedule.warmup < 0 ||
	    !(m->schedule.mom_base >= 0 && m->schedule.mom_base < 1) || !(m->schedule.mom_max >= 0 && m->schedule.mom_max < 1))
		return "invalid learning-rate schedule";
	if (m->n_params > 0 && !m->params)
		return "no parameter table";
	if (m->n_state > 0 && !m->state)
		return "no state table";
	if ((training && !m->train_step) || !m->eval_step || !m->infer)
		return "missing entry point";
	return NULL;
}

/* Whether parameter (or state tensor) p has a name, an initialiser, a
 * place inside its array of `floats` and a shape that holds its size.  No
 * sum or product here can overflow, whatever the fields hold. */
static int param_ok(int64_t floats, const nnrt_param_info *p)
{
	if (!p->name || p->rank < 0 || p->rank > NNRT_MAX_RANK || p->init < NNRT_INIT_ZEROS ||
	    p->init > NNRT_INIT_CONSTANT)
		return 0;
	if (p->offset < 0 || p->size < 0 || p->offset > floats || p->size > floats - p->offset)
		return 0;
	int64_t prod = 1;
	for (int k = 0; k < p->rank; k++) {
		/* prod * shape[k] > size, said without the product */
		if (p->shape[k] < 0 || (p->shape[k] > 0 && prod > p->size / p->shape[k]))
			return 0;
		prod *= p->shape[k];
	}
	return prod == p->size;
}

int nnrt_model_check(const nnrt_model *m, int training, char *why, size_t n)
{
	if (why && n)
		why[0] = 0;
	if (!m)
		return refuse(why, n, NNRT_ERR_ARG, "no model object");
	/* First the layout: no other field can be trusted before it. */
	if (m->struct_size != (int64_t)sizeof(nnrt_model) || m->abi_version != NNRT_ABI_VERSION)
		return refuse(why, n, NNRT_ERR_MODEL,
		              "this program's model object has ABI version %lld and size %lld bytes, but the runtime "
		              "it is linked with expects ABI version %d and %zu bytes; rebuild it with a matching nnc "
		              "and runtime",
		              (long long)m->abi_version, (long long)m->struct_size, NNRT_ABI_VERSION, sizeof(nnrt_model));
	/* Then the CPU, before any generated code runs: it could die of SIGILL. */
	if (nnrt_cpu_check(m->cpu_features, why, n))
		return NNRT_ERR_CPU;
	const char *bad = bad_field(m, training);
	if (bad)
		return refuse(why, n, NNRT_ERR_MODEL, "invalid model object: %s (a bug in nnc)", bad);
	for (int i = 0; i < m->n_params; i++) {
		const nnrt_param_info *p = &m->params[i];
		if (!param_ok(m->param_floats, p))
			return refuse(why, n, NNRT_ERR_MODEL,
			              "invalid model object: parameter %d (%s) is inconsistent (a bug in nnc)", i,
			              p->name ? p->name : "unnamed");
	}
	for (int i = 0; i < m->n_state; i++) {
		const nnrt_param_info *p = &m->state[i];
		if (!param_ok(m->state_floats, p) || p->init != NNRT_INIT_CONSTANT)
			return refuse(why, n, NNRT_ERR_MODEL,
			              "invalid model object: state tensor %d (%s) is inconsistent (a bug in nnc)", i,
			              p->name ? p->name : "unnamed");
	}
	return NNRT_OK;
}

/* ---- Parameter initialisation ---- */

void nnrt_init_params(const nnrt_model *m, float *params, nnrt_rng *r)
{
	for (int i = 0; i < m->n_params; i++) {
		const nnrt_param_info *p = &m->params[i];
		float *w = params + p->offset;
		double fan_in = p->fan_in > 0 ? p->fan_in : 1.0;
		double fan_out = p->fan_out > 0 ? p->fan_out : 1.0;
		double a = 0;
		switch (p->init) {
		case NNRT_INIT_GLOROT_UNIFORM: a = sqrt(6.0 / (fan_in + fan_out)); break;
		case NNRT_INIT_HE_UNIFORM: a = sqrt(6.0 / fan_in); break;
		case NNRT_INIT_LECUN_UNIFORM: a = sqrt(3.0 / fan_in); break;
		case NNRT_INIT_UNIFORM: a = p->init_arg; break;
		}
		for (int64_t j = 0; j < p->size; j++) {
			switch (p->init) {
			case NNRT_INIT_NORMAL:
				w[j] = (float)(p->init_arg * nnrt_rng_normal(r));
				break;
			case NNRT_INIT_CONSTANT:
				w[j] = p->init_arg;
				break;
			case NNRT_INIT_ZEROS:
				w[j] = 0.0f;
				break;
			default: /* the uniform family: U(-a, a) */
				w[j] = (float)((2.0 * nnrt_rng_uniform_d(r) - 1.0) * a);
				break;
			}
		}
	}
}

void nnrt_init_state(const nnrt_model *m, float *state)
{
	if (m->state_floats > 0)
		memset(state, 0, (size_t)m->state_floats * sizeof(float));
	for (int i = 0; i < m->n_state; i++) {
		const nnrt_param_info *p = &m->state[i];
		for (int64_t j = 0; j < p->size; j++)
			state[p->offset + j] = p->init_arg;
	}
}

/* ---- The optimizer ---- */

const char *nnrt_opt_name(int32_t kind)
{
	switch (kind) {
	case NNRT_OPT_SGD: return "sgd";
	case NNRT_OPT_ADAM: return "adam";
	case NNRT_OPT_ADAMW: return "adamw";
	case NNRT_OPT_RMSPROP: return "rmsprop";
	}
	return NULL;
}

char *nnrt_fmt_optimizer(const nnrt_model *m, char *buf, size_t n)
{
	size_t k = 0;
#define PUT(...) (k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, __VA_ARGS__))
	const char *name = nnrt_opt_name(m->optimizer);
	PUT("%s(lr: %g", name ? name : "?", m->lr);
	switch (m->optimizer) {
	case NNRT_OPT_ADAM:
	case NNRT_OPT_ADAMW:
		PUT(", beta1: %g, beta2: %g, eps: %g", m->beta1, m->beta2, m->eps);
		if (m->opt_flags & NNRT_OPTF_AMSGRAD)
			PUT(", amsgrad: true");
		break;
	case NNRT_OPT_RMSPROP:
		PUT(", alpha: %g, eps: %g, momentum: %g", m->alpha, m->eps, m->momentum);
		if (m->opt_flags & NNRT_OPTF_CENTERED)
			PUT(", centered: true");
		break;
	default:
		PUT(", momentum: %g", m->momentum);
		if (m->dampening != 0)
			PUT(", dampening: %g", m->dampening);
		if (m->opt_flags & NNRT_OPTF_NESTEROV)
			PUT(", nesterov: true");
	}
	if (m->weight_decay != 0 || m->optimizer == NNRT_OPT_ADAMW) {
		PUT(", weight_decay: %g", m->weight_decay);
		if (m->opt_flags & NNRT_OPTF_DECAY_BIASES)
			PUT(", decay_biases: true");
	}
	if (m->clip_norm > 0)
		PUT(", clip_norm: %g", m->clip_norm);
	if (m->clip_value > 0)
		PUT(", clip_value: %g", m->clip_value);
	PUT(")");
#undef PUT
	return buf;
}

char *nnrt_fmt_schedule(const nnrt_schedule *s, char *buf, size_t n)
{
	size_t k = 0;
#define PUT(...) (k += (size_t)snprintf(buf + (k < n ? k : n), k < n ? n - k : 0, __VA_ARGS__))
	switch (s->kind) {
	case NNRT_SCHED_STEP: PUT("step(every: %g, gamma: %g)", s->a, s->b); break;
	case NNRT_SCHED_MULTISTEP:
		PUT("multistep(at: [");
		for (int i = 0; i < s->n_milestones && i < NNRT_MAX_MILESTONES; i++)
			PUT("%s%g", i ? ", " : "", s->milestones[i]);
		PUT("], gamma: %g)", s->b);
		break;
	case NNRT_SCHED_EXPONENTIAL: PUT("exponential(gamma: %g)", s->b); break;
	case NNRT_SCHED_COSINE:
		if (s->d > 0)
			PUT("cosine(period: %g, mult: %g, min: %g)", s->d, s->b, s->c);
		else if (s->a > 0)
			PUT("cosine(epochs: %g, min: %g)", s->a, s->c);
		else
			PUT("cosine(min: %g)", s->c);
		break;
	case NNRT_SCHED_POLYNOMIAL:
		PUT("polynomial(");
		if (s->a > 0)
			PUT("epochs: %g, ", s->a);
		PUT("power: %g, min: %g)", s->b, s->c);
		break;
	case NNRT_SCHED_ONECYCLE:
		PUT("onecycle(");
		if (s->a > 0)
			PUT("epochs: %g, ", s->a);
		PUT("pct: %g, div: %g, final_div: %g", s->b, s->c, s->d);
		if (s->mom_base > 0 && s->mom_max > 0)
			PUT(", base_momentum: %g, max_momentum: %g)", s->mom_base, s->mom_max);
		else
			PUT(", cycle_momentum: false)");
		break;
	default: PUT("constant"); break;
	}
	if (s->warmup > 0)
		PUT(", warmup %lld step%s", (long long)s->warmup, s->warmup == 1 ? "" : "s");
#undef PUT
	return buf;
}

/* ---- Hyper-parameters of a step ---- */

_Static_assert(NNRT_HP_COUNT <= sizeof ((nnrt_step_args *)0)->hp / sizeof(float), "nnrt_step_args.hp is too small");

/* Exactly the slots the generated optimizer update reads; the reserved
 * rest stays zero.  And the step's random stream (nnrt_random_bits): the
 * run's seed, and the global index of the step's first sample, counted
 * from the step number (which checkpoints carry) so that a resumed run
 * draws what the uninterrupted one would have; a partial last batch just
 * leaves indices unused. */
void nnrt_step_hp(nnrt_step_args *a, const nnrt_model *m, const nnrt_hyper *h, int64_t step, uint64_t seed)
{
	a->seed = seed;
	a->sample0 = step >= 1 ? (step - 1) * m->batch : 0;
	memset(a->hp, 0, sizeof a->hp);
	a->hp[NNRT_HP_LR] = h->lr;
	a->hp[NNRT_HP_WD] = h->wd;
	a->hp[NNRT_HP_CLIP_NORM] = h->clip_norm;
	a->hp[NNRT_HP_CLIP_VALUE] = h->clip_value;
	a->hp[NNRT_HP_ACC_WEIGHT] = h->acc_weight;
	a->hp[NNRT_HP_ACC_APPLY] = h->acc_apply;
	a->hp[NNRT_HP_FP32] = h->fp32 ? 1.0f : 0.0f;
	if (h->t > 0) /* the optimizer's step: the update's number (accumulate) */
		step = h->t;
	/* a cycled momentum (onecycle), where the update has one to cycle */
	double beta1 = m->beta1;
	if (h->mom > 0 && nnrt_has_momentum(m)) {
		a->hp[NNRT_HP_MOMENTUM] = (float)h->mom;
		a->hp[NNRT_HP_MOMENTUM_1M] = (float)(1.0 - h->mom);
		beta1 = h->mom; /* torch's Adam corrects with the group's current beta1 */
	}
	/* torch's SGD starts the velocity at the first gradient, undamped */
	a->hp[NNRT_HP_DAMP] = step <= 1 ? 1.0f : (float)(1.0 - (double)m->dampening);
	/* Adam's bias corrections, in double: beta^t of a float beta. */
	if (step >= 1 && (m->optimizer == NNRT_OPT_ADAM || m->optimizer == NNRT_OPT_ADAMW)) {
		a->hp[NNRT_HP_ADAM_C1] = (float)(1.0 / (1.0 - pow(beta1, (double)step)));
		a->hp[NNRT_HP_ADAM_C2] = (float)(1.0 / (1.0 - pow(m->beta2, (double)step)));
	}
}

/* ---- The learning-rate schedule (nnrt.h; docs/language.md) ---- */

#define SCHED_PI 3.14159265358979323846

/* torch's _annealing_cos: from start at p = 0 to end at p = 1 along half
 * a cosine. */
static double anneal_cos(double start, double end, double p)
{
	return end + (start - end) / 2 * (cos(SCHED_PI * p) + 1);
}

/* The schedule's factor at position e (epochs since the warmup, measured
 * in steps of 1 / S), u the step index from 0 after the warmup and L the
 * length of the rest of the training (epochs). */
static double schedule_at(const nnrt_schedule *s, double lr, double e, double u, double S, double L)
{
	switch (s->kind) {
	case NNRT_SCHED_STEP:
		/* in steps, so that a boundary is exact: floor(u / (every S)) */
		return lr * pow(s->b, floor(u / (s->a * S)));
	case NNRT_SCHED_MULTISTEP: {
		int k = 0;
		while (k < s->n_milestones && k < NNRT_MAX_MILESTONES && s->milestones[k] * S <= u)
			k++;
		return lr * pow(s->b, k);
	}
	case NNRT_SCHED_EXPONENTIAL:
		return lr * pow(s->b, e);
	case NNRT_SCHED_COSINE: {
		double lo = s->c, T = s->a > 0 ? s->a : L, x;
		if (s->d > 0) { /* SGDR: periods d, d b, d b^2, ... (torch's CosineAnnealingWarmRestarts) */
			double T0 = s->d, mult = s->b >= 1 ? s->b : 1;
			if (mult == 1) {
				double i = floor(e / T0);
				x = e - i * T0, T = T0;
			} else {
				double i = floor(log(e / T0 * (mult - 1) + 1) / log(mult));
				x = e - T0 * (pow(mult, i) - 1) / (mult - 1), T = T0 * pow(mult, i);
			}
		} else {
			x = e < T ? e : T;
		}
		return T > 0 ? lo + (lr - lo) * (1 + cos(SCHED_PI * x / T)) / 2 : lo;
	}
	case NNRT_SCHED_POLYNOMIAL: {
		double T = s->a > 0 ? s->a : L, x = e < T ? e : T;
		return T > 0 ? s->c + (lr - s->c) * pow(1 - x / T, s->b) : s->c;
	}
	case NNRT_SCHED_ONECYCLE: {
		/* torch's OneCycleLR (cosine annealing), its step index u over
		 * N = T S steps; after the last one, the final rate */
		double N = (s->a > 0 ? s->a : L) * S;
		double init = lr / s->c, fin = init / s->d;
		double up = s->b * N - 1, end = N - 1;
		if (u <= up)
			return anneal_cos(init, lr, up > 0 ? u / up : 1);
		if (u >= end)
			return fin;
		return anneal_cos(lr, fin, (u - up) / (end - up));
	}
	default:
		return lr;
	}
}

/* The momentum of the same position: onecycle's, from mom_max down to
 * mom_base over the rise and back over the fall (torch's cycle_momentum),
 * mom_max after the last step; 0 for every other schedule. */
static double momentum_at(const nnrt_schedule *s, double u, double S, double L)
{
	if (s->kind != NNRT_SCHED_ONECYCLE || !(s->mom_base > 0) || !(s->mom_max > 0))
		return 0;
	double N = (s->a > 0 ? s->a : L) * S;
	double up = s->b * N - 1, end = N - 1;
	if (u <= up)
		return anneal_cos(s->mom_max, s->mom_base, up > 0 ? u / up : 1);
	if (u >= end)
		return s->mom_max;
	return anneal_cos(s->mom_base, s->mom_max, (u - up) / (end - up));
}

double nnrt_schedule_momentum(const nnrt_schedule *s, int64_t step, int64_t epoch_steps, int64_t total)
{
	double S = epoch_steps > 0 ? (double)epoch_steps : 1;
	int64_t w = s->warmup > 0 ? s->warmup : 0;
	/* the warmup keeps the schedule's first momentum, as it ramps to its first rate */
	double u = step <= w ? 0 : (double)(step - 1 - w);
	return momentum_at(s, u, S, (double)(total - w) / S);
}

int nnrt_has_momentum(const nnrt_model *m)
{
	return m->optimizer == NNRT_OPT_ADAM || m->optimizer == NNRT_OPT_ADAMW || m->momentum != 0;
}

double nnrt_schedule_lr(const nnrt_schedule *s, double lr, int64_t step, int64_t epoch_steps, int64_t total)
{
	double S = epoch_steps > 0 ? (double)epoch_steps : 1;
	int64_t w = s->warmup > 0 ? s->warmup : 0;
	double L = (double)(total - w) / S;
	if (step < 1)
		step = 1;
	if (step <= w) /* linear, from lr / w at step 1 to the schedule's start at step w */
		return schedule_at(s, lr, 0, 0, S, L) * (double)step / (double)w;
	double u = (double)(step - 1 - w);
	return schedule_at(s, lr, u / S, u, S, L);
}

/* ---- The random stream of the steps (nnrt.h) ---- */

uint64_t nnrt_mix64(uint64_t z)
{
	z += 0x9E3779B97F4A7C15ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

uint32_t nnrt_random_bits(uint64_t seed, int64_t sample, int64_t elem)
{
	return (uint32_t)(nnrt_mix64(nnrt_mix64(seed ^ nnrt_mix64((uint64_t)sample)) + (uint64_t)elem) >> 32);
}

float nnrt_random_uniform(uint64_t seed, int64_t sample, int64_t elem)
{
	return (float)(nnrt_random_bits(seed, sample, elem) >> 8) * 0x1p-24f;
}
