/* check.h: every test's CHECK vocabulary (fatal, naming the case and seed), a clock, and a seeded splitmix64 RNG. */
#ifndef VMC_TESTS_CHECK_H
#define VMC_TESTS_CHECK_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The seed and name of the case being run; printed with every failure so it can be replayed. */
extern uint64_t tu_seed;
extern const char *tu_case;
/* Where failures are written (a test that captures fd 2 points this at the real stderr). */
extern int tu_fail_fd;

void tu_fail(const char *file, int line, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));
/* CLOCK_MONOTONIC in seconds. */
double tu_now_s(void);

#define CHECK(cond)                                                   \
	do {                                                          \
		if (!(cond))                                          \
			tu_fail(__FILE__, __LINE__, #cond, NULL);     \
	} while (0)

/* Unconditional failure with a message. */
#define FAIL(...) tu_fail(__FILE__, __LINE__, "FAIL", __VA_ARGS__)

#define CHECKF(cond, ...)                                             \
	do {                                                          \
		if (!(cond))                                          \
			tu_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

#define CHECK_EQ(a, b)                                                                           \
	do {                                                                                     \
		long long tu_a_ = (long long)(a), tu_b_ = (long long)(b);                        \
		if (tu_a_ != tu_b_)                                                              \
			tu_fail(__FILE__, __LINE__, #a " == " #b, "%lld != %lld", tu_a_, tu_b_); \
	} while (0)

/* splitmix64 (Steele, Lea, Flood 2014): small, fast, good enough for test case generation. */
struct tu_rng {
	uint64_t x;
};

static inline uint64_t tu_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void tu_rng_seed(struct tu_rng *r, uint64_t seed)
{
	r->x = seed;
}

static inline uint64_t tu_next(struct tu_rng *r)
{
	return tu_splitmix64(&r->x);
}

/* Uniform in [0, n), n > 0 (rejection sampling, no modulo bias). */
static inline uint64_t tu_below(struct tu_rng *r, uint64_t n)
{
	uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;

	do
		v = tu_next(r);
	while (v >= limit);
	return v % n;
}

/* True with probability num/den. */
static inline int tu_chance(struct tu_rng *r, uint64_t num, uint64_t den)
{
	return tu_below(r, den) < num;
}

/* Base seed: argv[1] if given (decimal or 0x hex), else $VMC_TEST_SEED, else def. */
static inline uint64_t tu_base_seed(int argc, char **argv, uint64_t def)
{
	const char *s = argc > 1 ? argv[1] : getenv("VMC_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : def;
}

#endif
