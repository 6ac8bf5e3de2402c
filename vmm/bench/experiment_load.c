/* experiment_load.c: host threads that run the guest workloads over an mm's window, parked by the defrag engine's step hooks. */
#include "vmm/bench/experiment_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const kind_names[HOSTLOAD_KINDS] = {
	[HOSTLOAD_CHASE] = "chase", [HOSTLOAD_GUPS] = "gups", [HOSTLOAD_STREAM] = "stream",
	[HOSTLOAD_VERIFY] = "verify",
};
static const char *const kind_units[HOSTLOAD_KINDS] = {
	[HOSTLOAD_CHASE] = "access", [HOSTLOAD_GUPS] = "update", [HOSTLOAD_STREAM] = "byte",
	[HOSTLOAD_VERIFY] = "word",
};

int hostload__parse(const char *name)
{
	for (int k = 0; k < HOSTLOAD_KINDS; k++)
		if (!strcmp(name, kind_names[k]))
			return k;
	return -1;
}

const char *hostload__name(enum hostload_kind k)
{
	return (unsigned)k < HOSTLOAD_KINDS ? kind_names[k] : "?";
}

const char *hostload__unit(enum hostload_kind k)
{
	return (unsigned)k < HOSTLOAD_KINDS ? kind_units[k] : "?";
}

static inline uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Park here while the engine runs a step; false once asked to stop. */
static bool checkpoint(struct hostload *hl)
{
	if (!__atomic_load_n(&hl->pause_req, __ATOMIC_ACQUIRE))
		return !__atomic_load_n(&hl->stop, __ATOMIC_RELAXED);
	pthread_mutex_lock(&hl->lock);
	hl->parked++;
	pthread_cond_broadcast(&hl->cond);
	while (hl->pause_req && !hl->stop)
		pthread_cond_wait(&hl->cond, &hl->lock);
	hl->parked--;
	pthread_mutex_unlock(&hl->lock);
	return !__atomic_load_n(&hl->stop, __ATOMIC_RELAXED);
}

/* --- chase: one random cycle, the same construction as the guest agent's --- */

static uint64_t chase_stride(const struct hostload *hl)
{
	return hl->chase_page ? 4096 : 64;
}

static uint64_t *chase_elem(const struct hostload *hl, uint64_t i)
{
	uint64_t off = i * chase_stride(hl);

	if (hl->chase_page)
		off += ((i * 0x9e3779b97f4a7c15ull) >> 58) * 64;
	return (uint64_t *)(hl->base + off);
}

/* Sattolo's algorithm on an index array in ordinary memory (one random cycle), then one
 * sequential pass writes the links into the window: random accesses to a scattered window
 * cost microseconds each on a nested host, the build must not pay them. */
static int chase_build(struct hostload *hl, char *err, size_t errlen)
{
	uint64_t n = hl->ws / chase_stride(hl), x = 0x2545f4914f6cdd1dull, steps = 0;
	uint32_t *order;
	uint64_t *p, *start;

	if (n < 2 || n > UINT32_MAX) {
		snprintf(err, errlen, "chase: working set of %llu bytes holds %llu elements (2..2^32 allowed)",
			 (unsigned long long)hl->ws, (unsigned long long)n);
		return -EINVAL;
	}
	order = malloc(n * sizeof(*order));
	if (!order) {
		snprintf(err, errlen, "chase: out of memory");
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	for (uint64_t i = n - 1; i > 0; i--) {  /* next[i] = order[i]: a single cycle */
		uint64_t j = (uint64_t)(((unsigned __int128)xorshift(&x) * i) >> 64);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (uint64_t i = 0; i < n; i++)
		*chase_elem(hl, i) = (uint64_t)(uintptr_t)chase_elem(hl, order[i]);
	free(order);
	start = p = chase_elem(hl, 0);
	do {
		p = (uint64_t *)(uintptr_t)*p;
		steps++;
	} while (p != start && steps <= n);
	if (steps != n) {
		snprintf(err, errlen, "chase: cycle of %llu steps, want %llu", (unsigned long long)steps,
			 (unsigned long long)n);
		return -EIO;
	}
	return 0;
}

static void run_chase(struct hostload_thread *t)
{
	struct hostload *hl = t->hl;
	uint64_t n = hl->ws / chase_stride(hl);
	volatile uint64_t *p = chase_elem(hl, n / hl->nr_threads * t->idx);

	while (checkpoint(hl)) {
		for (int i = 0; i < 64; i++)
			p = (volatile uint64_t *)(uintptr_t)*p;
		__atomic_store_n(&t->ops, t->ops + 64, __ATOMIC_RELAXED);
	}
}

static void run_gups(struct hostload_thread *t)
{
	struct hostload *hl = t->hl;
	volatile uint64_t *table = (volatile uint64_t *)hl->base;
	uint64_t n = hl->ws / 8, x = 0x9e3779b97f4a7c15ull * (t->idx + 1);

	while (checkpoint(hl)) {
		for (int i = 0; i < 256; i++) {
			uint64_t v = xorshift(&x);

			table[(uint64_t)(((unsigned __int128)v * n) >> 64)] ^= v;
		}
		__atomic_store_n(&t->ops, t->ops + 256, __ATOMIC_RELAXED);
	}
}

/* Triad a = b + 3c over the thread's slice cut in thirds; ops counts bytes read and written. */
static void run_stream(struct hostload_thread *t)
{
	struct hostload *hl = t->hl;
	uint64_t slice = hl->ws / hl->nr_threads, n = slice / 3 / 8;
	uint64_t *a = (uint64_t *)(hl->base + slice * t->idx), *b = a + n, *c = b + n;

	while (checkpoint(hl)) {
		for (uint64_t i0 = 0; i0 < n; i0 += 4096) {
			uint64_t end = i0 + 4096 < n ? i0 + 4096 : n;

			for (uint64_t i = i0; i < end; i++)
				a[i] = b[i] + 3 * c[i];
			__atomic_store_n(&t->ops, t->ops + (end - i0) * 24, __ATOMIC_RELAXED);
			if (!checkpoint(hl))
				return;
		}
	}
}

/* verify: one word per 64 B line holds its offset and the generation; each pass checks and bumps it. */
static uint64_t verify_word(uint64_t off, uint64_t gen)
{
	return off ^ (gen << 48) ^ 0x5a5a000000000000ull;
}

static void verify_fill(struct hostload *hl)
{
	for (uint64_t off = 0; off + 8 <= hl->ws; off += 64)
		*(uint64_t *)(hl->base + off) = verify_word(off, 0);
}

static void run_verify(struct hostload_thread *t)
{
	struct hostload *hl = t->hl;
	uint64_t slice = hl->ws / hl->nr_threads / 4096 * 4096, lo = slice * t->idx, gen = 0;

	while (checkpoint(hl)) {
		for (uint64_t page = lo; page < lo + slice; page += 4096) {
			for (uint64_t off = page; off < page + 4096; off += 64) {
				volatile uint64_t *w = (volatile uint64_t *)(hl->base + off);

				if (*w != verify_word(off, gen))
					__atomic_store_n(&t->errors, t->errors + 1, __ATOMIC_RELAXED);
				*w = verify_word(off, gen + 1);
			}
			__atomic_store_n(&t->ops, t->ops + 64, __ATOMIC_RELAXED);
			if (!checkpoint(hl))
				return;
		}
		gen++;
	}
}

static void *thread_main(void *opaque)
{
	struct hostload_thread *t = opaque;

	switch (t->hl->kind) {
	case HOSTLOAD_CHASE: run_chase(t); break;
	case HOSTLOAD_GUPS: run_gups(t); break;
	case HOSTLOAD_STREAM: run_stream(t); break;
	case HOSTLOAD_VERIFY: run_verify(t); break;
	default: break;
	}
	return NULL;
}

int hostload__start(struct hostload *hl, enum hostload_kind kind, uint8_t *base, uint64_t ws,
		    unsigned nr_threads, bool chase_page, char *err, size_t errlen)
{
	int ret;

	memset(hl, 0, sizeof(*hl));
	if (nr_threads < 1 || nr_threads > HOSTLOAD_MAX_THREADS || (unsigned)kind >= HOSTLOAD_KINDS ||
	    ws < 3 * 4096 * nr_threads) {
		snprintf(err, errlen, "workload %s: bad thread count %u or working set %llu",
			 hostload__name(kind), nr_threads, (unsigned long long)ws);
		return -EINVAL;
	}
	hl->kind = kind;
	hl->base = base;
	hl->ws = ws;
	hl->nr_threads = nr_threads;
	hl->chase_page = chase_page;
	pthread_mutex_init(&hl->lock, NULL);
	pthread_cond_init(&hl->cond, NULL);
	if (kind == HOSTLOAD_CHASE && (ret = chase_build(hl, err, errlen)))
		return ret;
	if (kind == HOSTLOAD_VERIFY)
		verify_fill(hl);
	for (unsigned i = 0; i < nr_threads; i++) {
		hl->t[i].hl = hl;
		hl->t[i].idx = i;
		ret = pthread_create(&hl->t[i].tid, NULL, thread_main, &hl->t[i]);
		if (ret) {
			snprintf(err, errlen, "workload thread: %s", strerror(ret));
			hostload__stop(hl);
			return -ret;
		}
		hl->t[i].started = true;
	}
	return 0;
}

void hostload__stop(struct hostload *hl)
{
	pthread_mutex_lock(&hl->lock);
	__atomic_store_n(&hl->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&hl->cond);
	pthread_mutex_unlock(&hl->lock);
	for (unsigned i = 0; i < hl->nr_threads; i++)
		if (hl->t[i].started) {
			pthread_join(hl->t[i].tid, NULL);
			hl->t[i].started = false;
		}
}

uint64_t hostload__ops(struct hostload *hl)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < hl->nr_threads; i++)
		sum += __atomic_load_n(&hl->t[i].ops, __ATOMIC_RELAXED);
	return sum;
}

uint64_t hostload__errors(struct hostload *hl)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < hl->nr_threads; i++)
		sum += __atomic_load_n(&hl->t[i].errors, __ATOMIC_RELAXED);
	return sum;
}

uint64_t hostload__cpu_ns(struct hostload *hl)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < hl->nr_threads; i++) {
		clockid_t cid;
		struct timespec ts;

		if (hl->t[i].started && !pthread_getcpuclockid(hl->t[i].tid, &cid) && !clock_gettime(cid, &ts))
			sum += (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	}
	return sum;
}

static int hostload_pause(void *ctx)
{
	struct hostload *hl = ctx;
	unsigned running = 0;

	for (unsigned i = 0; i < hl->nr_threads; i++)
		running += hl->t[i].started;
	pthread_mutex_lock(&hl->lock);
	__atomic_store_n(&hl->pause_req, 1, __ATOMIC_RELEASE);
	while (hl->parked < running && !hl->stop)
		pthread_cond_wait(&hl->cond, &hl->lock);
	pthread_mutex_unlock(&hl->lock);
	return 0;
}

static void hostload_resume(void *ctx)
{
	struct hostload *hl = ctx;

	pthread_mutex_lock(&hl->lock);
	__atomic_store_n(&hl->pause_req, 0, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&hl->cond);
	pthread_mutex_unlock(&hl->lock);
}

void hostload__step_ops(struct hostload *hl, struct mm_step_ops *ops)
{
	ops->pause = hostload_pause;
	ops->resume = hostload_resume;
	ops->ctx = hl;
}
