/* bench.c: guest memory benchmarks: gups (random read-modify-write) and stream (sequential copy/triad). */
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
		if (forever)
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
