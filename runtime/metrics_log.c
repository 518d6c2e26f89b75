/*
 * metrics_log.c - the training binary's --log FILE: one row per epoch (and,
 * with --log-every N, one per N steps) that a plotting script, a spreadsheet
 * or pandas reads without parsing the human-readable epoch lines.
 *
 * The format follows the file name: FILE.jsonl, FILE.ndjson and FILE.json
 * get JSON lines (one object per row), FILE.csv gets CSV with a header
 * line.  Every row has every column, in this order:
 *
 *   epoch, step, batch, lr, train_loss, train_acc, test_loss, test_acc, val_loss, val_acc,
 *   seconds, samples_per_s
 *
 * `step` is the number of training steps taken since the start (the counter
 * checkpoints keep), `lr` the rate of the row's last step.  An epoch's row
 * has an empty `batch`; with --log-every N, a row after every N-th step
 * (of the whole run: step % N == 0) has the step's number within its epoch
 * in `batch`, the running means of the epoch so far (what the progress bar
 * shows) as train_loss and train_acc, the time since the epoch began, and
 * empty test and validation columns (they are measured once an epoch).  A
 * value the run does not have (accuracy of a regression, test metrics
 * without test data, validation metrics without a validation split) is an
 * empty CSV field or JSON null, so that the columns stay put.  Numbers
 * carry 9 significant digits (the rate, a float, 7): the epoch line's 4
 * decimals are these values rounded.
 *
 * The file is opened before any data is loaded (train.c), so that a path
 * that cannot be written is an error before training, not after it.  A
 * fresh run replaces the file; --resume appends to it, and writes the CSV
 * header only into an empty file.  Each row is flushed as it is written,
 * so the file can be read (or plotted) while the run goes on.
 *
 * A file being appended to must have this binary's columns: a log written
 * by an older binary (9 columns before the validation ones came) would get
 * rows that a reader splits into the wrong columns.  Its first line (the
 * CSV header, or the keys of the first JSON row) is compared with ours and
 * a difference refuses the run (NNRT_LOG_COLUMNS) instead of mixing them.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <errno.h>
#include <string.h>

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), k = strlen(tail);
	return n >= k && strcmp(s + n - k, tail) == 0;
}

int nnrt_log_format(const char *path)
{
	if (ends_with(path, ".csv"))
		return NNRT_LOG_CSV;
	if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json"))
		return NNRT_LOG_JSON;
	return -1;
}

static const char columns[] =
	"epoch,step,batch,lr,train_loss,train_acc,test_loss,test_acc,val_loss,val_acc,seconds,samples_per_s";

/* The column names of a log's first line, comma-separated, into out: the
 * CSV header as it is, or the keys of a JSON row in their order. */
static void first_line_columns(FILE *f, int format, char *out, size_t cap)
{
	char line[1024];
	out[0] = 0;
	rewind(f);
	if (!fgets(line, sizeof line, f))
		return;
	line[strcspn(line, "\r\n")] = 0;
	if (format == NNRT_LOG_CSV) {
		snprintf(out, cap, "%.500s", line);
		return;
	}
	size_t n = 0;
	for (const char *p = line; (p = strchr(p, '"')) != NULL;) {
		const char *end = strchr(p + 1, '"');
		if (!end)
			break;
		if (end[1] == ':') { /* a key, not a string value */
			int k = snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)(end - p - 1), p + 1);
			if (k < 0 || (size_t)k >= cap - n)
				break;
			n += (size_t)k;
		}
		p = end + 1;
	}
}

int nnrt_log_open(nnrt_log *l, const char *path, int append)
{
	memset(l, 0, sizeof *l);
	l->path = path;
	l->format = nnrt_log_format(path);
	l->f = fopen(path, append ? "a+" : "w");
	if (!l->f)
		return -1;
	if (append && fseek(l->f, 0, SEEK_END) == 0 && ftell(l->f) > 0) {
		first_line_columns(l->f, l->format, l->old_columns, sizeof l->old_columns);
		if (strcmp(l->old_columns, columns) != 0) {
			fclose(l->f);
			l->f = NULL;
			return NNRT_LOG_COLUMNS;
		}
	}
	if (l->format == NNRT_LOG_CSV && fseek(l->f, 0, SEEK_END) == 0 && ftell(l->f) == 0) {
		fprintf(l->f, "%s\n", columns);
		if (fflush(l->f) != 0) {
			int e = errno;
			fclose(l->f);
			l->f = NULL;
			errno = e;
			return -1;
		}
	}
	return 0;
}

/* One value: `digits` significant digits, or the format's "missing". */
static void put_value(const nnrt_log *l, const char *key, int have, double v, int digits)
{
	if (l->format == NNRT_LOG_JSON)
		fprintf(l->f, ",\"%s\":", key);
	else
		fputc(',', l->f);
	if (have)
		fprintf(l->f, "%.*g", digits, v);
	else if (l->format == NNRT_LOG_JSON)
		fputs("null", l->f);
}

int nnrt_log_row(nnrt_log *l, const nnrt_log_entry *r)
{
	if (!l->f)
		return 0;
	errno = 0;
	if (l->format == NNRT_LOG_JSON)
		fprintf(l->f, "{\"epoch\":%lld,\"step\":%lld", (long long)r->epoch, (long long)r->step);
	else
		fprintf(l->f, "%lld,%lld", (long long)r->epoch, (long long)r->step);
	put_value(l, "batch", r->batch > 0, (double)r->batch, 17);
	put_value(l, "lr", 1, r->lr, 7); /* a float: 0.02, not 0.0199999996 */
	put_value(l, "train_loss", 1, r->train_loss, 9);
	put_value(l, "train_acc", r->has_acc, r->train_acc, 9);
	put_value(l, "test_loss", r->has_test, r->test_loss, 9);
	put_value(l, "test_acc", r->has_test && r->has_acc, r->test_acc, 9);
	put_value(l, "val_loss", r->has_val, r->val_loss, 9);
	put_value(l, "val_acc", r->has_val && r->has_acc, r->val_acc, 9);
	put_value(l, "seconds", 1, r->seconds, 9);
	put_value(l, "samples_per_s", 1, r->samples_per_s, 9);
	fputs(l->format == NNRT_LOG_JSON ? "}\n" : "\n", l->f);
	if (fflush(l->f) != 0 || ferror(l->f)) {
		if (!errno)
			errno = EIO;
		return -1;
	}
	return 0;
}

int nnrt_log_close(nnrt_log *l)
{
	if (!l->f)
		return 0;
	int rc = fclose(l->f);
	l->f = NULL;
	return rc;
}
