/*
 * classify.c - classifies Fashion-MNIST images with a network trained by the
 * training binary nnc builds from examples/mlp.nn, embedded through the
 * header `nnc mlp.nn -c` writes (mlp.h).
 *
 *   nnc ../mlp.nn -o mlp && ./mlp --save mlp.ckpt     # train, keep the parameters
 *   ./classify mlp.ckpt shoe.pgm rows.csv             # classify
 *
 * Inputs:
 *   *.pgm  a binary PGM image (P5), 28 x 28, 8-bit grey, white on black like
 *          the data set; pixels are scaled as the training data was
 *          (MLP_DATA_SCALE), so the image means what an IDX image means;
 *   else   a CSV file, one sample per line: the 784 input features as the
 *          network takes them (as `./mlp --predict rows.csv` reads them).
 * Output, one line per image or row:  SOURCE CLASS PROBABILITY NAME
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

static const char *const class_names[MLP_CLASSES] = {
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

/* The samples to classify: features and where each came from. */
typedef struct samples {
	float *x; /* [n][MLP_INPUT_SIZE] */
	char **source;
	int64_t n, cap;
} samples;

static float *add_sample(samples *s, const char *source)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->x = realloc(s->x, (size_t)s->cap * MLP_INPUT_SIZE * sizeof(float));
		s->source = realloc(s->source, (size_t)s->cap * sizeof(char *));
		if (!s->x || !s->source) {
			fprintf(stderr, "classify: out of memory\n");
			exit(1);
		}
	}
	s->source[s->n] = strdup(source);
	return s->x + s->n++ * MLP_INPUT_SIZE;
}

/* Next PGM header number, skipping white space and # comments. */
static long pgm_number(FILE *f)
{
	int c;
	while ((c = getc(f)) != EOF) {
		if (c == '#')
			while ((c = getc(f)) != EOF && c != '\n')
				;
		else if (c < '0' || c > '9')
			continue;
		else
			break;
	}
	long v = -1;
	for (v = 0; c >= '0' && c <= '9'; c = getc(f))
		v = v * 10 + (c - '0');
	return c == EOF ? -1 : v; /* the one white-space byte after maxval is consumed */
}

static int read_pgm(samples *s, const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "classify: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	char magic[2] = {0};
	int ok = fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && magic[1] == '5';
	long w = ok ? pgm_number(f) : -1, h = ok ? pgm_number(f) : -1, maxval = ok ? pgm_number(f) : -1;
	if (!ok || w != 28 || h != 28 || maxval < 1 || maxval > 255) {
		fprintf(stderr, "classify: %s is not a 28 x 28 8-bit binary PGM (P5) image\n", path);
		fclose(f);
		return -1;
	}
	unsigned char px[28 * 28];
	if (fread(px, 1, sizeof px, f) != sizeof px) {
		fprintf(stderr, "classify: %s is truncated\n", path);
		fclose(f);
		return -1;
	}
	fclose(f);
	float *x = add_sample(s, path);
	for (int i = 0; i < MLP_INPUT_SIZE; i++) {
		float raw = maxval == 255 ? px[i] : (float)px[i] * 255.0f / (float)maxval;
		x[i] = raw * MLP_DATA_SCALE + MLP_DATA_SHIFT;
	}
	return 0;
}

static int read_csv(samples *s, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "classify: cannot open %s: %s\n", path, strerror(errno));
		return -1;
	}
	static char line[1 << 16];
	int rc = 0;
	for (long lineno = 1; fgets(line, sizeof line, f); lineno++) {
		if (strspn(line, " \t\r\n") == strlen(line))
			continue;
		char source[4096];
		snprintf(source, sizeof source, "%s:%ld", path, lineno);
		float *x = add_sample(s, source);
		char *p = line;
		int k = 0;
		for (; k < MLP_INPUT_SIZE; k++) {
			char *end;
			x[k] = strtof(p, &end);
			if (end == p)
				break;
			p = end + strspn(end, " \t");
			if (*p == ',')
				p++;
		}
		if (k != MLP_INPUT_SIZE || p[strspn(p, " \t\r\n")]) {
			fprintf(stderr, "classify: %s: expected %d numbers separated by commas\n", source,
			        MLP_INPUT_SIZE);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: classify CHECKPOINT IMAGE.pgm|ROWS.csv...\n"
		                "  CHECKPOINT: written by `./mlp --save FILE` (a binary nnc builds from mlp.nn)\n");
		return 2;
	}
	samples s = {0};
	for (int i = 2; i < argc; i++) {
		size_t len = strlen(argv[i]);
		int pgm = len > 4 && !strcmp(argv[i] + len - 4, ".pgm");
		if ((pgm ? read_pgm : read_csv)(&s, argv[i]))
			return 1;
	}
	if (s.n == 0) {
		fprintf(stderr, "classify: no samples in the files given\n");
		return 1;
	}

	int err;
	mlp_instance *net = mlp_new(&err);
	if (!net) {
		fprintf(stderr, "classify: %s\n", nnrt_strerror(err));
		return 1;
	}
	if ((err = mlp_load(net, argv[1]))) {
		fprintf(stderr, "classify: %s (%s)\n", nnrt_strerror(err), mlp_error(net));
		mlp_free(net);
		return 1;
	}
	/* All samples in one call: the runtime takes them a batch at a time. */
	float *probs = malloc((size_t)s.n * MLP_OUTPUT_SIZE * sizeof(float));
	if (!probs || (err = mlp_infer(net, s.x, s.n, probs))) {
		fprintf(stderr, "classify: %s\n", probs ? nnrt_strerror(err) : "out of memory");
		mlp_free(net);
		return 1;
	}
	for (int64_t i = 0; i < s.n; i++) {
		const float *p = probs + i * MLP_OUTPUT_SIZE;
		int best = 0;
		for (int k = 1; k < MLP_OUTPUT_SIZE; k++)
			if (p[k] > p[best])
				best = k;
		printf("%s %d %.6f %s\n", s.source[i], best, p[best], class_names[best]);
		free(s.source[i]);
	}
	mlp_free(net);
	free(probs);
	free(s.x);
	free(s.source);
	return 0;
}
