/* bench_mm.c: mm start-up figures: aging time, VMA budget, metadata, prefault, THP detection, copies, remaps. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mm.h"

#define MiB (1ULL << 20)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void bench_layout(uint64_t guest, uint64_t slack, const struct aging_config *ac)
{
	uint32_t g = (uint32_t)(guest >> 12), f = (uint32_t)((guest + slack) >> 12);
	double t[7];
	struct buddy b;
	struct gpamap m;
	char err[512];
	uint64_t needed = 0;

	for (int i = 0; i < 7; i++) {
		double t0 = now_ms();

		if (buddy__init(&b, f) || gpamap__init(&m, g, f) || aging__place(&b, &m, ac, err, sizeof(err))) {
			printf("layout failed: %s\n", err);
			exit(1);
		}
		t[i] = now_ms() - t0;
		needed = window__vmas_needed(&m);
		buddy__exit(&b);
		gpamap__exit(&m);
	}
	qsort(t, 7, sizeof(t[0]), cmp_double);
	printf("layout (buddy+gpamap init + aging__place), %llu MiB guest + %llu MiB slack, age %.2f, seed %llu:\n"
	       "  median %.1f ms, min %.1f ms, max %.1f ms (7 runs)\n",
	       (unsigned long long)(guest >> 20), (unsigned long long)(slack >> 20), ac->age,
	       (unsigned long long)ac->seed, t[3], t[0], t[6]);
	printf("VMAs the window needs: %llu\n", (unsigned long long)needed);
	if (vma_budget__check(needed, err, sizeof(err)))
		printf("VMA budget: REFUSED: %s\n", err);
	else
		printf("VMA budget: fits\n");
	printf("metadata: %llu bytes = %.3f %% of guest RAM (buddy %zu, gpamap %zu)\n",
	       (unsigned long long)mm__metadata_bytes(g, f), 100.0 * mm__metadata_bytes(g, f) / guest,
	       buddy__metadata_bytes(f), gpamap__metadata_bytes(g, f));
}

static void bench_mm_create(uint64_t guest, uint64_t slack, const struct aging_config *ac, int moves)
{
	struct mm_config cfg = { .guest_bytes = guest, .slack_bytes = slack, .prefault = true, .aging = *ac };
	struct mm mm;
	struct mm_stat st;
	char err[512];
	double t0 = now_ms(), t;
	int ret = mm__create(&mm, &cfg, err, sizeof(err));

	t = now_ms() - t0;
	if (ret) {
		printf("mm__create %llu MiB age %.2f: refused after %.1f ms: %s\n", (unsigned long long)(guest >> 20),
		       ac->age, t, err);
		return;
	}
	mm__stat(&mm, &st);
	printf("mm__create %llu MiB + %llu MiB slack, age %.2f: %.1f ms = layout %.1f + pool %.1f (prefault %.1f) "
	       "+ window %.1f ms\n  %llu VMAs (host: %lld), %u/%u regions in order, %llu/%u blocks huge (%s), "
	       "achievable %u, metadata %.3f %%, backing %s\n",
	       (unsigned long long)(guest >> 20), (unsigned long long)(mm.cfg.slack_bytes >> 20), ac->age, t,
	       mm.startup.layout_ns / 1e6, mm.startup.pool_ns / 1e6, mm.startup.prefault_ns / 1e6,
	       mm.startup.map_ns / 1e6, (unsigned long long)st.vmas, (long long)window__count_host_vmas(&mm.win),
	       st.regions_in_order, st.nr_regions, (unsigned long long)st.huge_blocks, mm.pool.nr_blocks,
	       st.huge_exact ? "exact" : "guessed", st.regions_achievable, 100.0 * st.metadata_bytes / guest,
	       pool_backing__name(st.backing));

	if (moves) {
		struct rng r;
		double tm;
		int done = 0;

		rng__seed(&r, 1);
		t0 = now_ms();
		for (int i = 0; i < moves; i++) {
			gpfn_t g = (gpfn_t)rng__below(&r, mm.map.nr_gpfns);
			frame_t nf = buddy__alloc(&mm.buddy, 0, MIGRATE_MOVABLE), old;

			if (nf == FRAME_NONE)
				break;
			old = gpamap__frame(&mm.map, g);
			pool__copy_frame(&mm.pool, nf, old);
			gpamap__rebind(&mm.map, g, nf);
			buddy__free(&mm.buddy, old, 0);
			if (window__remap_4k(&mm.win, &mm.map, g))
				break;
			done++;
		}
		tm = now_ms() - t0;
		printf("  %d random 4K moves (copy + rebind + remap_4k): %.2f us each, %llu VMAs after\n", done,
		       tm * 1e3 / (done ? done : 1), (unsigned long long)mm.win.nr_vmas);
	}
	mm__destroy(&mm);
}

static void bench_pool(uint64_t size)
{
	struct pool_config pc = { .size = size, .prefault = true };
	struct pool p;
	char err[512];

	for (int round = 0; round < 2; round++) {
		double t0 = now_ms(), t;

		if (pool__create(&p, &pc, err, sizeof(err))) {
			printf("pool__create: %s\n", err);
			return;
		}
		t = now_ms() - t0;
		printf("pool %llu MiB (%s): create %.1f ms, prefault %.1f ms (%u threads, %.1f us per 2 MiB), huge blocks %u/%u "
		       "(%s, refresh %.2f ms)\n", (unsigned long long)(size >> 20), round ? "again" : "first", t,
		       p.prefault_ns / 1e6, p.prefault_threads, p.prefault_ns / 1e3 / p.nr_blocks, p.nr_huge_blocks, p.nr_blocks,
		       p.huge_exact ? "pagemap+kpageflags" : "smaps guess", p.refresh_ns / 1e6);
		if (round == 1) {
			struct rng r;
			const int n = 100000;
			double tn, tc;

			rng__seed(&r, 3);
			t0 = now_ms();
			for (int i = 0; i < n; i++)
				pool__copy_frame(&p, (frame_t)rng__below(&r, p.nr_frames),
						 (frame_t)rng__below(&r, p.nr_frames));
			tn = now_ms() - t0;
			rng__seed(&r, 3);
			t0 = now_ms();
			for (int i = 0; i < n; i++)
				memcpy(pool__frame_ptr(&p, (frame_t)rng__below(&r, p.nr_frames)),
				       pool__frame_ptr(&p, (frame_t)rng__below(&r, p.nr_frames)), 4096);
			tc = now_ms() - t0;
			printf("copy 4 KiB between random frames: %s %.2f GB/s, memcpy %.2f GB/s\n", p.copy_impl,
			       n * 4096.0 / tn / 1e6, n * 4096.0 / tc / 1e6);
			t0 = now_ms();
			for (uint32_t b = 1; b < p.nr_blocks; b += 2)
				pool__copy_frames(&p, b * 512, (b - 1) * 512, 512);
			tn = now_ms() - t0;
			printf("copy 2 MiB blocks: %s %.2f GB/s\n", p.copy_impl, (p.nr_blocks / 2) * 2.0 * MiB / tn / 1e6);
		}
		pool__destroy(&p);
	}
}

int main(int argc, char **argv)
{
	uint64_t guest = (argc > 1 ? strtoull(argv[1], NULL, 0) : 1024) * MiB;
	uint64_t slack = (argc > 2 ? strtoull(argv[2], NULL, 0) : 128) * MiB;
	struct aging_config ac = AGING_DEFAULTS;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ac.age = argc > 3 ? strtod(argv[3], NULL) : 0.9;
	ac.seed = argc > 4 ? strtoull(argv[4], NULL, 0) : 7;

	bench_layout(guest, slack, &ac);
	bench_mm_create(guest, slack, &ac, 0);
	bench_pool(guest + slack);
	/* A guest that fits the default budget, for the window figures. */
	bench_mm_create(256 * MiB, 32 * MiB, &ac, 20000);
	ac.age = 0.0;
	bench_mm_create(guest, slack, &ac, 0);
	return 0;
}
