/* bench.c: guest memory benchmarks: gups (random read-modify-write), stream (sequential), chase (dependent loads). */
#include "agent.h"

#define CHUNK 4096  /* updates between time/stop checks: no hypercalls in the hot loop */

static inline uint64_t mulhi(uint64_t a, uint64_t b)
{
	return (uint64_t)(((unsigned __int128)a * b) >> 64);
}

static uint64_t bench__ws(const struct vmc_boot_info *bi)
{
	uint64_t slice = bi->mem_end - bi->mem_start;
	uint64_t ws = bi->args.ws_bytes;

	if (!ws || ws > slice)
		ws = slice;
	return ws & ~(VMC_PAGE_SIZE - 1);
}

uint32_t wl__gups(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	const struct vmc_workload_args *a = &bi->args;
	uint64_t *t = (uint64_t *)(uintptr_t)bi->mem_start;
	uint64_t ws = bench__ws(bi), n = ws / 8;
	uint64_t x = a->seed ^ ((uint64_t)bi->vcpu_id + 1) * 0x9e3779b97f4a7c15ull;
	uint64_t target, deadline = UINT64_MAX, t0;
	int forever = a->flags & VMC_WL_FOREVER;
	struct reporter rp;

	if (!x)
		x = 1;
	/* Touch the table first so host-side faults are not timed. */
	for (uint64_t i = 0; i < n; i++)
		t[i] = i;
	r->pages = ws / VMC_PAGE_SIZE;
	r->ws_bytes = ws;
	if (forever)
		target = UINT64_MAX;
	else if (a->updates)
		target = a->updates;
	else
		target = a->duration_ms ? UINT64_MAX : 4 * n;

	t0 = tsc__read();
	if (a->duration_ms && !forever)
		deadline = t0 + tsc__from_ms(bi, a->duration_ms);
	reporter__init(&rp, bi);
	while (r->updates < target) {
		uint64_t todo = target - r->updates < CHUNK ? target - r->updates : CHUNK;
		uint64_t now;

		for (uint64_t j = 0; j < todo; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			t[mulhi(x, n)] ^= x;
		}
		r->updates += todo;
		now = tsc__read();
		r->tsc_cycles = now - t0;
		if (now >= deadline || agent__stop_requested(bi))
			break;
		if (forever || agent_ops->progress_always)
			reporter__maybe(&rp, r);
	}
	r->passes = 1;
	return VMC_GUEST_OK;
}

uint32_t wl__stream(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	const struct vmc_workload_args *a = &bi->args;
	uint64_t ws = bench__ws(bi), n = ws / 3 / 8;
	uint64_t *A = (uint64_t *)(uintptr_t)bi->mem_start, *B = A + n, *C = B + n;
	uint64_t max_passes, deadline = UINT64_MAX, t0;
	int forever = a->flags & VMC_WL_FOREVER;
	struct reporter rp;

	for (uint64_t i = 0; i < n; i++) {
		A[i] = 0;
		B[i] = i;
		C[i] = 2 * i;
	}
	r->pages = ws / VMC_PAGE_SIZE;
	r->ws_bytes = n * 3 * 8;
	if (forever)
		max_passes = UINT64_MAX;
	else if (a->passes)
		max_passes = a->passes;
	else
		max_passes = a->duration_ms ? UINT64_MAX : 4;

	t0 = tsc__read();
	if (a->duration_ms && !forever)
		deadline = t0 + tsc__from_ms(bi, a->duration_ms);
	reporter__init(&rp, bi);
	while (r->passes < max_passes) {
		for (uint64_t i = 0; i < n; i++)       /* copy: 16 bytes per element */
			A[i] = B[i];
		__asm__ volatile("" : : : "memory");   /* keep the copy: A is rewritten below */
		for (uint64_t i = 0; i < n; i++)       /* triad: 24 bytes per element */
			A[i] = B[i] + 3 * C[i];
		__asm__ volatile("" : : : "memory");
		r->bytes += n * (16 + 24);
		r->passes++;
		r->tsc_cycles = tsc__read() - t0;
		if (tsc__read() >= deadline || agent__stop_requested(bi))
			break;
		reporter__maybe(&rp, r);
	}
	/* Triad result check keeps the compiler honest and catches gross corruption. */
	for (uint64_t i = 0; i < n; i += 4096 / 8)
		if (A[i] != B[i] + 3 * C[i]) {
			console__printf("STREAM MISMATCH vcpu %u at index %lu\n", bi->vcpu_id, i);
			r->errors++;
		}
	return r->errors ? VMC_GUEST_INTEGRITY : VMC_GUEST_OK;
}

/*
 * chase: element i of the working set lives at chase__addr(i), one per 64 B line (default)
 * or one per 4 KiB page (VMC_WL_CHASE_PAGE; at a pseudo-random line of the page so that the
 * elements do not all fall into one cache set). Each element holds the address of the next
 * one; the order is one random cycle over all elements, so every load depends on the one
 * before and pays its full cache and TLB miss (GUPS overlaps its misses).
 */
struct chase {
	uint64_t base, n, stride;
	int page;
};

static inline uint64_t chase__addr(const struct chase *c, uint64_t i)
{
	uint64_t a = c->base + i * c->stride;

	if (c->page)
		a += ((i * 0x9e3779b97f4a7c15ull) >> 58) * 64;
	return a;
}

static inline uint64_t chase__load(uint64_t a)
{
	return *(volatile uint64_t *)(uintptr_t)a;
}

/* Sattolo's algorithm, in place: a uniformly random permutation that is a single cycle. */
static void chase__build(const struct chase *c, uint64_t x)
{
	for (uint64_t i = 0; i < c->n; i++)
		*(volatile uint64_t *)(uintptr_t)chase__addr(c, i) = chase__addr(c, i);
	for (uint64_t i = c->n - 1; i > 0; i--) {
		volatile uint64_t *pi, *pj;
		uint64_t t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pi = (volatile uint64_t *)(uintptr_t)chase__addr(c, i);
		pj = (volatile uint64_t *)(uintptr_t)chase__addr(c, mulhi(x, i));  /* j in [0, i) */
		t = *pi;
		*pi = *pj;
		*pj = t;
	}
}

/* One full walk (also the warm-up): the cycle must come back to its start after exactly n steps. */
static uint64_t chase__cycle_length(const struct chase *c)
{
	uint64_t start = chase__addr(c, 0), p = start, steps = 0;

	do {
		p = chase__load(p);
		steps++;
	} while (p != start && steps <= c->n);
	return steps;
}

uint32_t wl__chase(const struct vmc_boot_info *bi, struct vmc_hc_report *r)
{
	const struct vmc_workload_args *a = &bi->args;
	struct chase c = { .base = bi->mem_start, .page = !!(a->flags & VMC_WL_CHASE_PAGE) };
	uint64_t ws = bench__ws(bi), x = a->seed ^ ((uint64_t)bi->vcpu_id + 1) * 0x9e3779b97f4a7c15ull;
	uint64_t target, deadline = UINT64_MAX, t0, p, len;
	int forever = a->flags & VMC_WL_FOREVER;
	struct reporter rp;

	c.stride = c.page ? VMC_PAGE_SIZE : 64;
	c.n = ws / c.stride;
	r->pages = ws / VMC_PAGE_SIZE;
	r->ws_bytes = c.n * c.stride;
	if (c.n < 2) {
		console__printf("chase: working set of %lu bytes holds fewer than 2 elements\n", ws);
		return VMC_GUEST_BADARGS;
	}
	chase__build(&c, x ? x : 1);
	len = chase__cycle_length(&c);
	if (len != c.n) {
		console__printf("CHASE BROKEN vcpu %u: cycle of %lu steps, want %lu\n", bi->vcpu_id, len, c.n);
		r->errors = 1;
		return VMC_GUEST_INTEGRITY;
	}
	if (forever)
		target = UINT64_MAX;
	else if (a->updates)
		target = a->updates;
	else
		target = a->duration_ms ? UINT64_MAX : (4 * c.n > (1ull << 20) ? 4 * c.n : 1ull << 20);

	p = chase__addr(&c, 0);
	t0 = tsc__read();
	if (a->duration_ms && !forever)
		deadline = t0 + tsc__from_ms(bi, a->duration_ms);
	reporter__init(&rp, bi);
	while (r->accesses < target) {
		uint64_t todo = target - r->accesses < CHUNK ? target - r->accesses : CHUNK;
		uint64_t now;

		for (uint64_t j = 0; j < todo; j++)
			p = chase__load(p);
		r->accesses += todo;
		now = tsc__read();
		r->tsc_cycles = now - t0;
		if (now >= deadline || agent__stop_requested(bi))
			break;
		if (forever || agent_ops->progress_always)
			reporter__maybe(&rp, r);
	}
	__asm__ volatile("" : : "r"(p));
	r->passes = 1;
	return VMC_GUEST_OK;
}
