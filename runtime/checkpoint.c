/*
 * checkpoint.c - saves and restores training state (format: docs/checkpoint.md).
 *
 * A checkpoint is one little-endian file: a fixed header (magic, version,
 * total size, model fingerprint, counters, RNG state), the model name and
 * parameter table (so a mismatch can be explained, not just refused), the
 * state table (version 2), the early-stopping counters (version 3), the
 * parameters, the optimizer state, the state tensors, the best epoch's
 * parameters and state (version 3, with early stopping), and a CRC32 of
 * everything before it.  Version 1 and 2 files still load.
 *
 * Saving is atomic: the bytes go to a temporary file next to the target,
 * which is flushed, fsync'ed and renamed over it, and then the directory is
 * fsync'ed so the rename itself survives a crash.  A failed save (disk full,
 * file size limit) leaves the previous checkpoint as it was.  A process
 * killed while saving leaves its temporary file behind; the next process
 * that saves to the same checkpoint removes it.
 *
 * Loading reads the whole file, checks magic, version, size and checksum
 * before trusting any field, then the fingerprint and the parameter table,
 * and only then copies into the caller's arrays.
 */
#define _POSIX_C_SOURCE 200809L

#include "nnrt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Bytes of the fixed header, before the model name. */
#define CKPT_FIXED 104

static int host_is_little_endian(void)
{
	const uint16_t one = 1;
	unsigned char b;
	memcpy(&b, &one, 1);
	return b == 1;
}

/* ---- Writing ---- */

/* A sink that checksums what it writes and remembers the first error. */
typedef struct ckpt_writer {
	FILE *f;
	uLong crc;
	int64_t bytes;
	int err; /* errno of the first failed write, or 0 */
} ckpt_writer;

static void w_bytes(ckpt_writer *w, const void *p, size_t n)
{
	if (w->err || n == 0)
		return;
	w->crc = crc32(w->crc, p, (uInt)n);
	if (fwrite(p, 1, n, w->f) != n)
		w->err = errno ? errno : EIO;
	w->bytes += (int64_t)n;
}

static void w_u32(ckpt_writer *w, uint32_t v)
{
	unsigned char b[4];
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	w_bytes(w, b, 4);
}

static void w_u64(ckpt_writer *w, uint64_t v)
{
	unsigned char b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	w_bytes(w, b, 8);
}

static void w_floats(ckpt_writer *w, const float *x, int64_t n)
{
	if (host_is_little_endian()) {
		/* In chunks: crc32 and fwrite take 32-bit counts. */
		for (int64_t i = 0; i < n; i += 1 << 20) {
			int64_t k = n - i < (1 << 20) ? n - i : (1 << 20);
			w_bytes(w, x + i, (size_t)k * sizeof(float));
		}
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &x[i], 4);
		w_u32(w, u);
	}
}

static void w_str(ckpt_writer *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	w_u32(w, (uint32_t)n);
	w_bytes(w, s, n);
}

static int64_t table_size(const nnrt_param_info *rows, int n)
{
	int64_t size = 0;
	for (int i = 0; i < n; i++)
		size += 4 + (int64_t)(rows[i].name ? strlen(rows[i].name) : 0) + 4 + 8 * (int64_t)rows[i].rank + 16;
	return size;
}

/* Bytes of the early-stopping counters (version 3). */
#define CKPT_ES 28

/* Bytes of m's checkpoint in the current version, with the best epoch's
 * arrays of early stopping if `es`. */
static int64_t ckpt_size(const nnrt_model *m, int es)
{
	int64_t size = CKPT_FIXED + 4 + (int64_t)(m->name ? strlen(m->name) : 0);
	size += table_size(m->params, m->n_params) + 12 + table_size(m->state, m->n_state) + CKPT_ES;
	if (es)
		size += 4 * (m->param_floats + m->state_floats);
	return size + 4 * (m->param_floats + m->opt_floats + m->state_floats) + 4;
}

static void w_table(ckpt_writer *w, const nnrt_param_info *rows, int n)
{
	for (int i = 0; i < n; i++) {
		const nnrt_param_info *p = &rows[i];
		w_str(w, p->name);
		w_u32(w, (uint32_t)p->rank);
		for (int k = 0; k < p->rank; k++)
			w_u64(w, (uint64_t)p->shape[k]);
		w_u64(w, (uint64_t)p->offset);
		w_u64(w, (uint64_t)p->size);
	}
}

static void write_all(ckpt_writer *w, const nnrt_model *m, const float *params, const float *opt,
                      const float *state, const nnrt_train_state *st)
{
	w_bytes(w, NNRT_CKPT_MAGIC, 8);
	w_u32(w, NNRT_CKPT_VERSION);
	w_u32(w, (uint32_t)st->batch); /* steps into the next epoch (docs/checkpoint.md) */
	w_u64(w, (uint64_t)ckpt_size(m, st->es != NULL));
	w_u64(w, m->fingerprint);
	w_u32(w, (uint32_t)m->optimizer);
	w_u32(w, (uint32_t)m->n_params);
	w_u64(w, (uint64_t)m->param_floats);
	w_u64(w, (uint64_t)m->opt_floats);
	w_u64(w, (uint64_t)st->epoch);
	w_u64(w, (uint64_t)st->step);
	for (int i = 0; i < 4; i++)
		w_u64(w, st->rng.s[i]);
	w_str(w, m->name);
	w_table(w, m->params, m->n_params);
	w_u32(w, (uint32_t)m->n_state);
	w_u64(w, (uint64_t)m->state_floats);
	w_table(w, m->state, m->n_state);
	w_u32(w, st->es != NULL);
	w_u64(w, st->es ? (uint64_t)st->es->best_epoch : 0);
	w_u64(w, st->es ? (uint64_t)st->es->wait : 0);
	uint64_t bits = 0;
	if (st->es)
		memcpy(&bits, &st->es->best_value, 8);
	w_u64(w, bits);
	w_floats(w, params, m->param_floats);
	w_floats(w, opt, m->opt_floats);
	w_floats(w, state, m->state_floats);
	if (st->es)
		w_floats(w, st->es->best, m->param_floats + m->state_floats);
	/* The checksum covers every byte before it; it is not checksummed. */
	uLong crc = w->crc;
	w_u32(w, (uint32_t)crc);
}

/* fsyncs the directory holding path, so that a rename into it is durable.
 * Some file systems cannot sync directories (EINVAL): nothing to do then. */
static int sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return 0;
		memcpy(dir, path, n);
		dir[n] = 0;
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		nnrt_sys_error("cannot open directory %s to sync checkpoint %s: %s", dir, path, strerror(errno));
		return -1;
	}
	int rc = 0;
	if (fsync(fd) != 0 && errno != EINVAL) {
		nnrt_sys_error("cannot sync directory %s after writing checkpoint %s: %s", dir, path, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* Removes PATH.tmp.PID files left by savers that were killed (PID no
 * longer running).  Best effort, once per process: a file that cannot be
 * removed is only clutter, never read. */
static void remove_stale_tmp(const char *path)
{
	static int done;
	if (done)
		return;
	done = 1;
	char dir[4096];
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((size_t)(slash - path) < sizeof dir)
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
	else
		return;
	size_t blen = strlen(base);
	DIR *d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		const char *n = e->d_name;
		if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp.", 5) != 0)
			continue;
		const char *digits = n + blen + 5;
		char *end;
		long pid = strtol(digits, &end, 10);
		if (end == digits || *end || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* still running, or not ours to judge */
		char full[8192];
		snprintf(full, sizeof full, "%s/%s", dir, n);
		unlink(full);
	}
	closedir(d);
}

int nnrt_ckpt_save(const char *path, const nnrt_model *m, const float *params, const float *opt,
                   const float *state, const nnrt_train_state *st)
{
	remove_stale_tmp(path);
	/* Same directory as the target: rename() is atomic only within one
	 * file system.  The pid keeps two concurrent savers apart. */
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 32);
	if (!tmp) {
		nnrt_sys_error("cannot save checkpoint %s: out of memory", path);
		return -1;
	}
	snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		nnrt_error("cannot save checkpoint %s: cannot create %s: %s", path, tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	FILE *f = fdopen(fd, "wb");
	if (!f) {
		nnrt_sys_error("cannot save checkpoint %s: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	ckpt_writer w = {.f = f, .crc = crc32(0L, Z_NULL, 0)};
	errno = 0;
	write_all(&w, m, params, opt, state, st);
	if (!w.err && fflush(f) != 0)
		w.err = errno ? errno : EIO;
	if (!w.err && fsync(fd) != 0)
		w.err = errno;
	if (fclose(f) != 0 && !w.err)
		w.err = errno ? errno : EIO;
	if (!w.err && w.bytes != ckpt_size(m, st->es != NULL))
		w.err = EIO; /* the size field would lie: a bug, but never write it */
	if (w.err) {
		nnrt_sys_error("cannot save checkpoint %s: writing %s failed: %s (the previous checkpoint, if any, is "
		           "unchanged)",
		           path, tmp, strerror(w.err));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		nnrt_sys_error("cannot save checkpoint %s: cannot rename %s to it: %s", path, tmp, strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return sync_dir(path);
}

/* ---- Reading ---- */

/* A bounds-checked cursor over the file's bytes. */
typedef struct ckpt_reader {
	const unsigned char *p, *end;
	int bad; /* a read ran past the end */
} ckpt_reader;

static const unsigned char *r_take(ckpt_reader *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = 1;
		return NULL;
	}
	const unsigned char *q = r->p;
	r->p += n;
	return q;
}

static uint32_t r_u32(ckpt_reader *r)
{
	const unsigned char *b = r_take(r, 4);
	if (!b)
		return 0;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t r_u64(ckpt_reader *r)
{
	uint64_t lo = r_u32(r);
	return lo | (uint64_t)r_u32(r) << 32;
}

static void r_floats(const unsigned char *b, float *x, int64_t n)
{
	if (host_is_little_endian()) {
		memcpy(x, b, (size_t)n * sizeof(float));
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		const unsigned char *q = b + 4 * i;
		uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
		memcpy(&x[i], &u, 4);
	}
}

/* Reads a whole file, or stops soon after `limit` bytes (a device or a
 * huge file: *len > limit then); the caller frees *data.  0, or
 * NNRT_CKPT_IO / NNRT_CKPT_NOMEM after reporting: a file that cannot be read
 * is an I/O failure, not a bad checkpoint, and the embedding API tells them
 * apart. */
static int read_file(const char *path, unsigned char **data, int64_t *len, int64_t limit)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		nnrt_error("cannot open checkpoint %s: %s", path, strerror(errno));
		return NNRT_CKPT_IO;
	}
	struct stat sb;
	if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		/* fopen() opens a directory; reading it fails with EISDIR */
		nnrt_error("cannot read checkpoint %s: it is a directory", path);
		fclose(f);
		return NNRT_CKPT_IO;
	}
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap || n > (size_t)limit)
			break;
		cap *= 2;
		unsigned char *nb = realloc(buf, cap);
		if (!nb)
			free(buf);
		buf = nb;
	}
	int err = ferror(f);
	fclose(f);
	if (!buf) {
		nnrt_sys_error("cannot read checkpoint %s: out of memory", path);
		return NNRT_CKPT_NOMEM;
	}
	if (err) {
		nnrt_sys_error("cannot read checkpoint %s: %s", path, strerror(errno));
		free(buf);
		return NNRT_CKPT_IO;
	}
	*data = buf;
	*len = (int64_t)n;
	return 0;
}

static void fmt_shape(const int64_t *shape, int rank, char *buf, size_t cap)
{
	size_t len = (size_t)snprintf(buf, cap, "[");
	for (int k = 0; k < rank && len < cap; k++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%lld", k ? "," : "", (long long)shape[k]);
	if (len < cap)
		snprintf(buf + len, cap - len, "]");
}

static const char *opt_name(uint32_t kind)
{
	const char *s = kind <= INT32_MAX ? nnrt_opt_name((int32_t)kind) : NULL;
	return s ? s : "an unknown optimizer";
}

/* Compares the file's parameter table with the model's and writes the first
 * difference into why ("parameter 'fc2.bias' has shape [3] but this model's
 * is [2]").  0: the same; 1: different; -1: the table is malformed.
 * *damage is set when only offsets or sizes differ: the shapes (which the
 * fingerprint covers) agree, so the table contradicts itself. */
static int table_diff(const nnrt_param_info *rows, int nrows, const char *what, ckpt_reader *r, uint32_t n_params,
                      char *why, size_t cap, int *damage)
{
	*damage = 0;
	if (n_params != (uint32_t)nrows) {
		snprintf(why, cap, "the file holds %u %s tensors but this model has %d", n_params, what, nrows);
		return 1;
	}
	for (int i = 0; i < nrows; i++) {
		const nnrt_param_info *p = &rows[i];
		uint32_t nlen = r_u32(r);
		const unsigned char *name = r_take(r, nlen);
		uint32_t rank = r_u32(r);
		int64_t shape[NNRT_MAX_RANK] = {0};
		if (r->bad || rank > NNRT_MAX_RANK)
			return -1;
		for (uint32_t k = 0; k < rank; k++)
			shape[k] = (int64_t)r_u64(r);
		int64_t offset = (int64_t)r_u64(r), size = (int64_t)r_u64(r);
		if (r->bad)
			return -1;
		const char *want = p->name ? p->name : "";
		if (nlen != strlen(want) || memcmp(name, want, nlen) != 0) {
			snprintf(why, cap, "%s %d is '%.*s' but this model's is '%s'", what, i, (int)(nlen < 200 ? nlen : 200),
			         (const char *)name, want);
			return 1;
		}
		int same = rank == (uint32_t)p->rank;
		for (uint32_t k = 0; same && k < rank; k++)
			same = shape[k] == p->shape[k];
		char a[160], b[160];
		fmt_shape(shape, (int)rank, a, sizeof a);
		fmt_shape(p->shape, p->rank, b, sizeof b);
		if (!same) {
			snprintf(why, cap, "%s '%s' has shape %s but this model's is %s", what, want, a, b);
			return 1;
		}
		if (offset != p->offset || size != p->size) {
			*damage = 1;
			snprintf(why, cap, "its table gives %s '%s' (shape %s) offset %lld and %lld values, but this "
			         "model's is at offset %lld with %lld values", what, want, a, (long long)offset, (long long)size,
			         (long long)p->offset, (long long)p->size);
			return 1;
		}
	}
	return 0;
}

int nnrt_ckpt_load(const char *path, const nnrt_model *m, float *params, float *opt, float *state,
                   nnrt_train_state *st)
{
	unsigned char *data;
	int64_t len;
	/* A checkpoint of this model has this size, or, for --load, which
	 * ignores the optimizer state, at most three state floats per
	 * parameter float (RMSprop centered with momentum, Adam with
	 * amsgrad): reading stops after it, so /dev/urandom or a huge file
	 * costs no more. */
	int64_t want = ckpt_size(m, 1); /* with early stopping's copy: any model's run may have saved one */
	if (!opt && m->opt_floats < 3 * m->param_floats)
		want += 4 * (3 * m->param_floats - m->opt_floats);
	int rc = read_file(path, &data, &len, want);
	if (rc)
		return rc;
	int oversize = len > want; /* it cannot be ours; header and table say why */
	rc = NNRT_CKPT_INVALID;
	ckpt_reader r = {data, data + len, 0};
	if (len >= 8 && memcmp(data, NNRT_CKPT_MAGIC, 8) != 0) {
		nnrt_error("%s is not an nnc checkpoint (bad magic number)", path);
		goto out;
	}
	if (len < 24) {
		nnrt_error("checkpoint %s is truncated (%lld bytes)", path, (long long)len);
		goto out;
	}
	r_take(&r, 8);
	uint32_t version = r_u32(&r);
	uint32_t batch = r_u32(&r); /* steps into the next epoch: checked below */
	int64_t size = (int64_t)r_u64(&r);
	if (version < 1 || version > NNRT_CKPT_VERSION) {
		nnrt_error("checkpoint %s has format version %u; this runtime reads versions 1 to %u", path, version,
		           NNRT_CKPT_VERSION);
		goto out;
	}
	if (!oversize && len < size) {
		nnrt_error("checkpoint %s is truncated: %lld of %lld bytes", path, (long long)len, (long long)size);
		goto out;
	}
	if (!oversize && (len > size || size < CKPT_FIXED + 8)) {
		nnrt_error("checkpoint %s is corrupt: %lld bytes, but its header says %lld", path, (long long)len,
		           (long long)size);
		goto out;
	}
	uint32_t stored = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 | (uint32_t)data[len - 2] << 16 |
	                  (uint32_t)data[len - 1] << 24;
	uLong crc = crc32(0L, Z_NULL, 0);
	for (int64_t i = 0; i < len - 4; i += 1 << 30) {
		int64_t k = len - 4 - i < (1 << 30) ? len - 4 - i : (1 << 30);
		crc = crc32(crc, data + i, (uInt)k);
	}
	if (!oversize && (uint32_t)crc != stored) {
		nnrt_error("checkpoint %s is corrupt: checksum mismatch (stored 0x%08x, computed 0x%08x)", path, stored,
		           (uint32_t)crc);
		goto out;
	}
	r.end = oversize ? data + len : data + len - 4;

	uint64_t fingerprint = r_u64(&r);
	uint32_t optimizer = r_u32(&r); /* implied by the fingerprint; explains a mismatch */
	uint32_t n_params = r_u32(&r);
	int64_t param_floats = (int64_t)r_u64(&r);
	int64_t opt_floats = (int64_t)r_u64(&r);
	nnrt_train_state s;
	s.epoch = (int64_t)r_u64(&r);
	s.step = (int64_t)r_u64(&r);
	s.batch = batch;
	for (int i = 0; i < 4; i++)
		s.rng.s[i] = r_u64(&r);
	uint32_t nlen = r_u32(&r);
	const unsigned char *name = r_take(&r, nlen);
	if (r.bad) {
		nnrt_error("checkpoint %s is malformed (bad header)", path);
		goto out;
	}
	/* A model changed since the file was written changes its fingerprint;
	 * the parameter table then usually says what changed, so it is read
	 * first.  With the fingerprint equal, a different table is damage. */
	char why[600];
	int damage;
	int diff = table_diff(m->params, m->n_params, "parameter", &r, n_params, why, sizeof why, &damage);
	if (diff < 0) {
		nnrt_error("checkpoint %s is malformed (bad parameter table)", path);
		goto out;
	}
	/* Version 2 adds the state tensors after the parameter table; a
	 * version 1 file has none. */
	uint32_t n_state = 0;
	int64_t state_floats = 0;
	if (!diff && version >= 2) {
		n_state = r_u32(&r);
		state_floats = (int64_t)r_u64(&r);
		if (r.bad) {
			nnrt_error("checkpoint %s is malformed (bad state table)", path);
			goto out;
		}
	}
	if (!diff) {
		diff = table_diff(m->state, m->n_state, "state", &r, n_state, why, sizeof why, &damage);
		if (diff < 0) {
			nnrt_error("checkpoint %s is malformed (bad state table)", path);
			goto out;
		}
	}
	/* Version 3 adds early stopping's counters, and with es_present the
	 * best epoch's parameters and state after the state array. */
	uint32_t es_present = 0;
	int64_t es_best_epoch = 0, es_wait = 0;
	double es_best_value = 0;
	if (!diff && version >= 3) {
		es_present = r_u32(&r);
		es_best_epoch = (int64_t)r_u64(&r);
		es_wait = (int64_t)r_u64(&r);
		uint64_t bits = r_u64(&r);
		memcpy(&es_best_value, &bits, 8);
		if (r.bad) {
			nnrt_error("checkpoint %s is malformed (bad early-stopping counters)", path);
			goto out;
		}
	}
	int64_t es_floats = es_present ? m->param_floats + m->state_floats : 0;
	int same_name = nlen == strlen(m->name ? m->name : "") && !memcmp(name, m->name ? m->name : "", nlen);
	if (fingerprint != m->fingerprint && !same_name) {
		nnrt_error("checkpoint %s was written by model '%.*s' (fingerprint 0x%016llx), not by this model '%s' "
		           "(fingerprint 0x%016llx)",
		           path, (int)nlen, (const char *)name, (unsigned long long)fingerprint,
		           m->name ? m->name : "", (unsigned long long)m->fingerprint);
		goto out;
	}
	if (diff && damage) {
		nnrt_error("checkpoint %s is damaged: %s", path, why);
		goto out;
	}
	if (diff) {
		nnrt_error("checkpoint %s: %s", path, why);
		goto out;
	}
	if (fingerprint != m->fingerprint) {
		if (optimizer != (uint32_t)m->optimizer)
			nnrt_error("checkpoint %s was written with the %s optimizer but this model '%s' uses %s", path,
			           opt_name(optimizer), m->name ? m->name : "", opt_name((uint32_t)m->optimizer));
		else
			nnrt_error("checkpoint %s was written by another version of model '%s' (fingerprint 0x%016llx, this "
			           "model's 0x%016llx): the parameter tensors are the same, the layers without parameters "
			           "differ",
			           path, m->name ? m->name : "", (unsigned long long)fingerprint,
			           (unsigned long long)m->fingerprint);
		goto out;
	}
	if (param_floats != m->param_floats) {
		nnrt_error("checkpoint %s holds %lld parameters but this model has %lld", path, (long long)param_floats,
		           (long long)m->param_floats);
		goto out;
	}
	if (state_floats != m->state_floats) {
		nnrt_error("checkpoint %s holds %lld state values but this model has %lld", path, (long long)state_floats,
		           (long long)m->state_floats);
		goto out;
	}
	if (opt && opt_floats != m->opt_floats) {
		nnrt_error("checkpoint %s holds %lld optimizer values but this model needs %lld", path,
		           (long long)opt_floats, (long long)m->opt_floats);
		goto out;
	}
	if (oversize) {
		nnrt_error("checkpoint %s is corrupt: it is larger than any checkpoint of this model (%lld bytes)", path,
		           (long long)want);
		goto out;
	}
	/* Compared in floats: 4 * (param_floats + opt_floats) overflows for
	 * counts a file can claim (--load and inference-only instances do not
	 * check opt_floats against the model). */
	int64_t floats_left = (r.end - r.p) / 4;
	if (param_floats < 0 || opt_floats < 0 || (r.end - r.p) % 4 != 0 || param_floats > floats_left ||
	    opt_floats > floats_left - param_floats ||
	    opt_floats != floats_left - param_floats - state_floats - es_floats) {
		nnrt_error("checkpoint %s is malformed (array sizes do not match the file)", path);
		goto out;
	}
	/* The counters drive loops and the optimizer: a file whose checksum
	 * is right but whose fields are not (another tool's, or crafted) must
	 * not make --resume run forever or step Adam backwards. */
	char bad[160] = "";
	if (s.epoch < 0 || s.epoch > NNRT_CKPT_MAX_COUNT)
		snprintf(bad, sizeof bad, "its epoch counter is %lld, outside 0..2^53", (long long)s.epoch);
	else if (s.step < 0 || s.step > NNRT_CKPT_MAX_COUNT)
		snprintf(bad, sizeof bad, "its step counter is %lld, outside 0..2^53", (long long)s.step);
	else if (s.batch > s.step)
		snprintf(bad, sizeof bad, "its epoch_step %lld exceeds its step counter %lld", (long long)s.batch,
		         (long long)s.step);
	else if (optimizer != (uint32_t)m->optimizer)
		snprintf(bad, sizeof bad, "its optimizer field is %u but this model's optimizer is %d", optimizer,
		         m->optimizer);
	else if (!(s.rng.s[0] | s.rng.s[1] | s.rng.s[2] | s.rng.s[3]))
		snprintf(bad, sizeof bad, "its RNG state is all zero, which no run writes");
	else if (es_present > 1 || es_best_epoch < 0 || es_best_epoch > s.epoch || es_wait < 0 ||
	         es_wait > NNRT_CKPT_MAX_COUNT)
		snprintf(bad, sizeof bad, "its early-stopping counters (%u, best epoch %lld, wait %lld) are out of range",
		         es_present, (long long)es_best_epoch, (long long)es_wait);
	if (*bad) {
		nnrt_error("checkpoint %s is corrupt: %s", path, bad);
		goto out;
	}
	r_floats(r.p, params, param_floats);
	if (opt)
		r_floats(r.p + 4 * param_floats, opt, opt_floats);
	if (state_floats)
		r_floats(r.p + 4 * (param_floats + opt_floats), state, state_floats);
	if (st) {
		/* the caller's early stopping goes on from the file's, if both have one */
		s.es = st->es;
		if (es_present && s.es) {
			r_floats(r.p + 4 * (param_floats + opt_floats + state_floats), s.es->best, es_floats);
			s.es->best_epoch = es_best_epoch;
			s.es->wait = es_wait;
			s.es->best_value = es_best_value;
		}
		*st = s;
	}
	rc = 0;
out:
	free(data);
	return rc;
}
