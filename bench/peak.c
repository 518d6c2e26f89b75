/*
 * peak.c - the machine's single-precision limits, for judging nnc's kernels.
 *
 *   fma   the arithmetic peak: 12 independent chains of 16-wide FMAs per
 *         thread, operands in registers, nothing else (an upper bound no
 *         real kernel reaches)
 *   sgemm an achievable peak: C[M][N] += A[M][K] B[K][N] with operands in
 *         cache, an 8 x 3-vector register tile (AVX2: 6 x 2), the way a tuned
 *         BLAS kernel works
 *
 * Both run on 1 thread and on every core (OpenMP), and print GFLOP/s.
 * Build: cc -O3 -march=native -fopenmp bench/peak.c -o peak   (bench.py does this)
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define VW 16
#define vset1 _mm512_set1_ps
#define vfma _mm512_fmadd_ps
#define vload _mm512_loadu_ps
#define vstore _mm512_storeu_ps
#define vzero _mm512_setzero_ps
#define ISA "avx512"
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
#define VW 8
#define vset1 _mm256_set1_ps
#define vfma _mm256_fmadd_ps
#define vload _mm256_loadu_ps
#define vstore _mm256_storeu_ps
#define vzero _mm256_setzero_ps
#define ISA "avx2"
#else
#error "peak.c needs AVX2+FMA or AVX-512"
#endif

/* Independent chains: more than FMA latency x FMA pipes on current cores,
 * and few enough to stay in registers (AVX2 has 16 of them: 24 chains there
 * measured the stack, not the FMA units). */
#if defined(__AVX512F__)
#define CHAINS 24
#else
#define CHAINS 12
#endif
static float fma_loop(long iters, float seed)
{
	vec a[CHAINS];
	for (int i = 0; i < CHAINS; i++)
		a[i] = vset1(seed + (float)i);
	vec m = vset1(0.999999f), c = vset1(1e-7f);
	for (long it = 0; it < iters; it++)
		for (int i = 0; i < CHAINS; i++)
			a[i] = vfma(a[i], m, c);
	float out[VW], s = 0;
	for (int i = 0; i < CHAINS; i++) {
		vstore(out, a[i]);
		s += out[0];
	}
	return s;
}

static double fma_gflops(int threads)
{
	const long iters = 20000000;
	volatile float sink = 0;
	double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads)
	{
		float s = fma_loop(iters, (float)omp_get_thread_num());
#pragma omp atomic
		sink += s;
	}
	double t = omp_get_wtime() - t0;
	return 2.0 * VW * CHAINS * (double)iters * threads / t / 1e9;
}

/* The register tile: 8 x 3 vectors (24 accumulators) with AVX-512's 32
 * registers, 6 x 2 (12) with AVX2's 16, as tuned BLAS kernels use. */
#if defined(__AVX512F__)
#define MR 8
#define NV 3
#else
#define MR 6
#define NV 2
#endif
#define NR (NV * VW)

/* C[0..MR)[0..NR) += A[0..MR)[0..K) B[0..K)[0..NR): MR x NV accumulators */
static void tile(int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
	vec c[MR][NV];
	for (int r = 0; r < MR; r++)
		for (int v = 0; v < NV; v++)
			c[r][v] = vload(C + r * ldc + v * VW);
	for (int k = 0; k < K; k++) {
		vec b[NV];
		for (int v = 0; v < NV; v++)
			b[v] = vload(B + k * ldb + v * VW);
		for (int r = 0; r < MR; r++) {
			vec a = vset1(A[r * lda + k]);
			for (int v = 0; v < NV; v++)
				c[r][v] = vfma(a, b[v], c[r][v]);
		}
	}
	for (int r = 0; r < MR; r++)
		for (int v = 0; v < NV; v++)
			vstore(C + r * ldc + v * VW, c[r][v]);
}

/* Each thread multiplies its own 192 x 256 x 256 problem (fits in L2). */
static double sgemm_gflops(int threads)
{
	enum { M = 192, N = 288, K = 256, REPS = 400 };
	double t = 0;
#pragma omp parallel num_threads(threads) reduction(max : t)
	{
		float *A = aligned_alloc(64, sizeof(float) * M * K);
		float *B = aligned_alloc(64, sizeof(float) * K * N);
		float *C = aligned_alloc(64, sizeof(float) * M * N);
		for (int i = 0; i < M * K; i++)
			A[i] = (float)(i % 7) * 0.01f;
		for (int i = 0; i < K * N; i++)
			B[i] = (float)(i % 5) * 0.01f;
		memset(C, 0, sizeof(float) * M * N);
#pragma omp barrier
		double t0 = omp_get_wtime();
		for (int rep = 0; rep < REPS; rep++)
			for (int i = 0; i < M; i += MR)
				for (int j = 0; j < N; j += NR)
					tile(K, A + i * K, K, B + j, N, C + i * N + j, N);
		t = omp_get_wtime() - t0;
		if (C[7] == 12345.0f) /* keep the result alive */
			printf("!");
		free(A), free(B), free(C);
	}
	return 2.0 * M * N * K * (double)REPS * threads / t / 1e9;
}

int main(int argc, char **argv)
{
	int maxth = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
	printf("{\"isa\": \"%s\", \"threads\": %d", ISA, maxth);
	printf(", \"fma_1t\": %.1f, \"fma_nt\": %.1f", fma_gflops(1), fma_gflops(maxth));
	printf(", \"sgemm_1t\": %.1f, \"sgemm_nt\": %.1f}\n", sgemm_gflops(1), sgemm_gflops(maxth));
	return 0;
}
