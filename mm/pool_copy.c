/* pool_copy.c: copying 4 KiB frames through the direct map, with non-temporal stores where the CPU has them. */
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "mm/pool.h"

static void copy_plain(void *dst, const void *src)
{
	memcpy(dst, src, MM_PAGE_SIZE);
}

#if defined(__x86_64__)
static void copy_sse2(void *dst, const void *src)
{
	__m128i *d = dst;
	const __m128i *s = src;

	for (unsigned i = 0; i < MM_PAGE_SIZE / sizeof(__m128i); i += 4) {
		__m128i a = _mm_load_si128(s + i), b = _mm_load_si128(s + i + 1);
		__m128i c = _mm_load_si128(s + i + 2), e = _mm_load_si128(s + i + 3);

		_mm_stream_si128(d + i, a);
		_mm_stream_si128(d + i + 1, b);
		_mm_stream_si128(d + i + 2, c);
		_mm_stream_si128(d + i + 3, e);
	}
}

__attribute__((target("avx2"))) static void copy_avx2(void *dst, const void *src)
{
	__m256i *d = dst;
	const __m256i *s = src;

	for (unsigned i = 0; i < MM_PAGE_SIZE / sizeof(__m256i); i += 4) {
		__m256i a = _mm256_load_si256(s + i), b = _mm256_load_si256(s + i + 1);
		__m256i c = _mm256_load_si256(s + i + 2), e = _mm256_load_si256(s + i + 3);

		_mm256_stream_si256(d + i, a);
		_mm256_stream_si256(d + i + 1, b);
		_mm256_stream_si256(d + i + 2, c);
		_mm256_stream_si256(d + i + 3, e);
	}
}

__attribute__((target("avx512f"))) static void copy_avx512(void *dst, const void *src)
{
	__m512i *d = dst;
	const __m512i *s = src;

	for (unsigned i = 0; i < MM_PAGE_SIZE / sizeof(__m512i); i += 4) {
		__m512i a = _mm512_load_si512(s + i), b = _mm512_load_si512(s + i + 1);
		__m512i c = _mm512_load_si512(s + i + 2), e = _mm512_load_si512(s + i + 3);

		_mm512_stream_si512(d + i, a);
		_mm512_stream_si512(d + i + 1, b);
		_mm512_stream_si512(d + i + 2, c);
		_mm512_stream_si512(d + i + 3, e);
	}
}
#endif

void pool__select_copy(struct pool *p)
{
	/* VMC_POOL_COPY=avx512|avx2|sse2|memcpy forces one (benchmarks); unknown or unsupported: memcpy. */
	const char *force = getenv("VMC_POOL_COPY");
	bool any = !force || !*force;

	p->copy = copy_plain;
	p->copy_impl = "memcpy";
#if defined(__x86_64__)
	__builtin_cpu_init();
	if ((any || !strcmp(force, "avx512")) && __builtin_cpu_supports("avx512f")) {
		p->copy = copy_avx512;
		p->copy_impl = "avx512";
	} else if ((any || !strcmp(force, "avx2")) && __builtin_cpu_supports("avx2")) {
		p->copy = copy_avx2;
		p->copy_impl = "avx2";
	} else if (any || !strcmp(force, "sse2")) {
		p->copy = copy_sse2;
		p->copy_impl = "sse2";
	}
#endif
}

void pool__copy_fence(void)
{
#if defined(__x86_64__)
	_mm_sfence();
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

void pool__copy_frame_nofence(struct pool *p, frame_t dst, frame_t src)
{
	p->copy(pool__frame_ptr(p, dst), pool__frame_ptr(p, src));
}

void pool__copy_frame(struct pool *p, frame_t dst, frame_t src)
{
	p->copy(pool__frame_ptr(p, dst), pool__frame_ptr(p, src));
	pool__copy_fence();
}

void pool__copy_frames(struct pool *p, frame_t dst, frame_t src, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		p->copy(pool__frame_ptr(p, dst + i), pool__frame_ptr(p, src + i));
	pool__copy_fence();
}
