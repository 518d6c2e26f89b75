/*
 * rng.c - the runtime's one source of randomness: parameter initialisation,
 * epoch shuffles and synthetic data sets all draw from an nnrt_rng.
 *
 * xoshiro256** (Blackman & Vigna): 256 bits of state, fast, and good enough
 * for ML.  Seeds go through splitmix64 so that small, similar seeds (1, 2, 3)
 * still give unrelated, never all-zero states.  Integer arithmetic plus
 * log/cos/sqrt from libm: a seed gives the same stream on every run with the
 * same C library (libm may differ in the last bit between platforms).
 */
#include "nnrt_internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void nnrt_rng_seed(nnrt_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

uint64_t nnrt_rng_next(nnrt_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

float nnrt_rng_uniform(nnrt_rng *r)
{
	/* The top 24 bits: a float mantissa holds them exactly, so the result
	 * is < 1 (rounding a 32-bit value could give exactly 1.0f). */
	return (float)(nnrt_rng_next(r) >> 40) * 0x1.0p-24f;
}

double nnrt_rng_uniform_d(nnrt_rng *r)
{
	return (double)(nnrt_rng_next(r) >> 11) * 0x1.0p-53;
}

double nnrt_rng_normal(nnrt_rng *r)
{
	/* u1 in (0, 1] so that log(u1) is finite. */
	double u1 = (double)((nnrt_rng_next(r) >> 11) + 1) * 0x1.0p-53;
	double u2 = nnrt_rng_uniform_d(r);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t nnrt_rng_below(nnrt_rng *r, uint64_t n)
{
	/* Reject the lowest (2^64 mod n) values so that every residue is
	 * equally likely; at most half the draws are rejected, usually none. */
	uint64_t threshold = (0 - n) % n;
	for (;;) {
		uint64_t x = nnrt_rng_next(r);
		if (x >= threshold)
			return x % n;
	}
}

void nnrt_rng_shuffle(nnrt_rng *r, int64_t *idx, int64_t n)
{
	for (int64_t i = n - 1; i > 0; i--) {
		int64_t j = (int64_t)nnrt_rng_below(r, (uint64_t)i + 1);
		int64_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}
