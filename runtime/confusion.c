/*
 * confusion.c - what --eval adds for a classifier: per-class precision,
 * recall and F1, and the confusion matrix (rows: the true class, columns:
 * the predicted one), printed after the test loss line and, with --plot, as
 * DIR/confusion.svg (plot.c draws it).
 *
 *   class            precision  recall      f1  support
 *   T-shirt/top         0.8061  0.8250  0.8154     1000
 *   ...
 *   macro avg           0.8811  0.8826  0.8812    10000
 *
 * Classes are named by the data set where it is known: Fashion-MNIST's ten
 * names when the test data is that IDX set (its label file is named
 * *fashion*), else by number.  A class never predicted has precision 0 (no
 * division by zero), as scikit-learn reports it.  The matrix is printed
 * for up to 20 classes; beyond that only the per-class table.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* Whether s contains `word`, ignoring case. */
static int has_word(const char *s, const char *word)
{
	size_t n = strlen(word);
	for (; s && *s; s++) {
		size_t i = 0;
		while (i < n && s[i] && tolower((unsigned char)s[i]) == word[i])
			i++;
		if (i == n)
			return 1;
	}
	return 0;
}

const char *const *nnrt_class_names(const nnrt_data_spec *s, int64_t classes)
{
	if (classes == 10 && s->kind == NNRT_DATA_IDX && (has_word(s->path_y, "fashion") || has_word(s->path_x, "fashion")))
		return fashion_names;
	return NULL;
}

int nnrt_confusion_init(nnrt_confusion *c, int64_t classes)
{
	c->k = classes;
	c->m = nnrt_calloc(classes * classes, sizeof(int64_t), "the confusion matrix");
	return c->m ? 0 : -1;
}

void nnrt_confusion_free(nnrt_confusion *c)
{
	nnrt_free(c->m);
	c->m = NULL;
}

void nnrt_confusion_scores(const nnrt_confusion *c, int64_t k, double *precision, double *recall, double *f1,
                           int64_t *support)
{
	int64_t tp = c->m[k * c->k + k], row = 0, col = 0;
	for (int64_t j = 0; j < c->k; j++) {
		row += c->m[k * c->k + j];
		col += c->m[j * c->k + k];
	}
	*precision = col ? (double)tp / (double)col : 0;
	*recall = row ? (double)tp / (double)row : 0;
	*f1 = *precision + *recall > 0 ? 2 * *precision * *recall / (*precision + *recall) : 0;
	*support = row;
}

static void class_label(const char *const *names, int64_t k, char *buf, size_t cap)
{
	if (names)
		snprintf(buf, cap, "%s", names[k]);
	else
		snprintf(buf, cap, "%lld", (long long)k);
}

void nnrt_confusion_print(const nnrt_confusion *c, const char *const *names)
{
	char lab[32];
	double sp = 0, sr = 0, sf = 0;
	int64_t total = 0;
	printf("%-16s %9s %7s %7s %8s\n", "class", "precision", "recall", "f1", "support");
	for (int64_t k = 0; k < c->k; k++) {
		double p, r, f;
		int64_t n;
		nnrt_confusion_scores(c, k, &p, &r, &f, &n);
		class_label(names, k, lab, sizeof lab);
		printf("%-16s %9.4f %7.4f %7.4f %8lld\n", lab, p, r, f, (long long)n);
		sp += p;
		sr += r;
		sf += f;
		total += n;
	}
	printf("%-16s %9.4f %7.4f %7.4f %8lld\n", "macro avg", sp / (double)c->k, sr / (double)c->k, sf / (double)c->k,
	       (long long)total);
	if (c->k > 20)
		return;
	printf("confusion matrix (rows: true class, columns: predicted class):\n");
	printf("%-16s", "");
	for (int64_t j = 0; j < c->k; j++)
		printf(" %6lld", (long long)j);
	printf("\n");
	for (int64_t i = 0; i < c->k; i++) {
		class_label(names, i, lab, sizeof lab);
		char head[64];
		if (names)
			snprintf(head, sizeof head, "%lld %s", (long long)i, lab);
		else
			snprintf(head, sizeof head, "%lld", (long long)i);
		printf("%-16.16s", head);
		for (int64_t j = 0; j < c->k; j++)
			printf(" %6lld", (long long)c->m[i * c->k + j]);
		printf("\n");
	}
}
