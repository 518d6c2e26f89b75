/*
 * validation.c - the validation split of the training data (the train
 * block's validation:) and early stopping (early_stop:).
 *
 * A validation set of its own (validation: SOURCE) is loaded whole, checked
 * against the model like the test set, and evaluated in sample order.
 *
 * The split: round(fraction * n) samples (at least 1, and at least one left
 * to train on) are held out, picked by a Fisher-Yates shuffle from an RNG
 * seeded by a hash of the seed alone, so the same seed and data hold out the
 * same samples in every run, resumed or not.  Both lists are kept in sample
 * order; training shuffles its own list every epoch.
 *
 * Early stopping follows Keras' EarlyStopping(restore_best_weights=True):
 * after each epoch the watched metric improves if it beats the best so far
 * by more than min_delta (below it for val_loss, above it for val_acc); the
 * parameters and state of the best epoch are copied aside, in memory; after
 * `patience` epochs without improvement training stops.  At the end of the
 * run (stopped or not) the best epoch's parameters are put back.
 */
#include "nnrt_internal.h"

#include <math.h>
#include <string.h>

/* validation: SOURCE: the set, and every sample of it to evaluate. */
static int load_set(const nnrt_model *m, nnrt_validation *v)
{
	const nnrt_data_spec *spec = &m->val;
	int64_t limit = spec->kind <= NNRT_DATA_CSV ? spec->count : 0;
	if (nnrt_data_load(&v->set, m, spec, "validation", limit, 1))
		return -1;
	v->val_ids = nnrt_calloc(v->set.n, sizeof *v->val_ids, "the validation samples");
	if (!v->val_ids) {
		nnrt_val_free(v);
		return -1;
	}
	for (int64_t i = 0; i < v->set.n; i++)
		v->val_ids[i] = i;
	v->n_val = v->set.n;
	return 0;
}

int nnrt_val_split(const nnrt_model *m, uint64_t seed, int64_t n, nnrt_validation *v)
{
	memset(v, 0, sizeof *v);
	if (m->val.kind != NNRT_DATA_NONE)
		return load_set(m, v);
	if (m->val_fraction <= 0)
		return 0;
	int64_t nv = (int64_t)llround((double)m->val_fraction * (double)n);
	if (nv < 1)
		nv = 1;
	if (nv >= n) {
		nnrt_error("validation: %g of %lld training samples leaves none to train on", (double)m->val_fraction,
		           (long long)n);
		return -1;
	}
	int64_t *order = nnrt_calloc(n, sizeof *order, "the validation split");
	unsigned char *held = nnrt_calloc(n, 1, "the validation split");
	v->train_ids = nnrt_calloc(n - nv, sizeof *v->train_ids, "the training samples");
	v->val_ids = nnrt_calloc(nv, sizeof *v->val_ids, "the validation samples");
	if (!order || !held || !v->train_ids || !v->val_ids) {
		nnrt_free(order);
		nnrt_free(held);
		nnrt_val_free(v);
		return -1;
	}
	nnrt_rng r;
	nnrt_rng_seed(&r, seed ^ 0x76616c6964ull); /* "valid": apart from the init and shuffle stream */
	for (int64_t i = 0; i < n; i++)
		order[i] = i;
	nnrt_rng_shuffle(&r, order, n);
	for (int64_t i = 0; i < nv; i++)
		held[order[i]] = 1;
	for (int64_t i = 0; i < n; i++) {
		if (held[i])
			v->val_ids[v->n_val++] = i;
		else
			v->train_ids[v->n_train++] = i;
	}
	nnrt_free(order);
	nnrt_free(held);
	return 0;
}

int nnrt_es_init(const nnrt_model *m, nnrt_validation *v, nnrt_train_state *st)
{
	if (m->es_metric == NNRT_ES_NONE)
		return 0;
	nnrt_early_stop *es = &v->es;
	es->best = nnrt_alloc_floats(m->param_floats + m->state_floats + 1, "the best parameters");
	if (!es->best)
		return -1;
	es->best_epoch = 0;
	es->best_value = m->es_metric == NNRT_ES_VAL_LOSS ? INFINITY : -INFINITY;
	es->wait = 0;
	st->es = es;
	return 0;
}

int nnrt_es_update(const nnrt_model *m, nnrt_train_state *st, int64_t epoch, double loss, double acc,
                   const float *params, const float *state)
{
	double x = m->es_metric == NNRT_ES_VAL_LOSS ? loss : acc;
	int better = m->es_metric == NNRT_ES_VAL_LOSS ? x < st->es->best_value - m->es_min_delta
	                                              : x > st->es->best_value + m->es_min_delta;
	if (better) {
		st->es->best_value = x;
		st->es->best_epoch = epoch;
		st->es->wait = 0;
		memcpy(st->es->best, params, (size_t)m->param_floats * sizeof(float));
		if (m->state_floats)
			memcpy(st->es->best + m->param_floats, state, (size_t)m->state_floats * sizeof(float));
		return 0;
	}
	return ++st->es->wait >= m->es_patience;
}

void nnrt_es_restore(const nnrt_model *m, const nnrt_train_state *st, float *params, float *state)
{
	memcpy(params, st->es->best, (size_t)m->param_floats * sizeof(float));
	if (m->state_floats)
		memcpy(state, st->es->best + m->param_floats, (size_t)m->state_floats * sizeof(float));
}

void nnrt_val_free(nnrt_validation *v)
{
	nnrt_free(v->train_ids);
	nnrt_free(v->val_ids);
	nnrt_free(v->es.best);
	nnrt_data_free(&v->set);
	memset(v, 0, sizeof *v);
}
