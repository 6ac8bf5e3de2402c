/* test_window.c: the guest window over an aged pool: contents, 4K/2M remaps, VMA counts vs /proc/self/maps, the budget, mm. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "mm/mm.h"
#include "tests/check.h"

#define MiB (1ULL << 20)

struct fixture {
	struct pool pool;
	struct buddy b;
	struct gpamap m;
	struct window w;
	struct tu_rng r;
};

static uint64_t gsig(gpfn_t g)
{
	return 0xc0ffee0000000000ULL ^ ((uint64_t)g * 0x9e3779b97f4a7c15ULL);
}

static uint64_t *frame_words(struct fixture *fx, frame_t f)
{
	return pool__frame_ptr(&fx->pool, f);
}

static void check_gpfn(struct fixture *fx, gpfn_t g)
{
	const uint64_t *win = window__gpa_ptr(&fx->w, (uint64_t)g << MM_PAGE_SHIFT);
	const uint64_t *dm = frame_words(fx, gpamap__frame(&fx->m, g));

	CHECKF(win[0] == gsig(g) && win[511] == ~gsig(g), "gpfn %#x via window: %#llx, want %#llx", g,
	       (unsigned long long)win[0], (unsigned long long)gsig(g));
	CHECKF(dm[0] == gsig(g), "gpfn %#x via direct map of frame %u", g, gpamap__frame(&fx->m, g));
}

static void check_all(struct fixture *fx)
{
	for (gpfn_t g = 0; g < fx->m.nr_gpfns; g++)
		check_gpfn(fx, g);
}

static void check_vmas(struct fixture *fx, const char *when)
{
	int64_t host = window__count_host_vmas(&fx->w);

	CHECKF(host == (int64_t)fx->w.nr_vmas, "%s: window says %llu VMAs, /proc/self/maps %lld", when,
	       (unsigned long long)fx->w.nr_vmas, (long long)host);
	CHECK_EQ(fx->w.nr_vmas, window__vmas_needed(&fx->m));
	CHECK_EQ(fx->w.nr_vmas, window__vmas_needed(&fx->m)); /* fully backed: no holes */
}

/* kB PMD-mapped (shmem THP mapped with one 2 MiB entry) in [lo, hi), from /proc/self/smaps. */
static uint64_t smaps_pmd_kb(const void *lo, const void *hi)
{
	char line[512];
	bool inside = false;
	uint64_t kb = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, v;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = s >= (uintptr_t)lo && e <= (uintptr_t)hi;
			continue;
		}
		if (inside && (sscanf(line, "ShmemPmdMapped: %lu kB", &v) == 1 ||
			       sscanf(line, "FilePmdMapped: %lu kB", &v) == 1))
			kb += v;
	}
	fclose(f);
	return kb;
}

static void fixture_init(struct fixture *fx, uint64_t guest, uint64_t slack, double age, bool advice)
{
	struct pool_config pc = { .size = guest + slack, .prefault = true };
	struct aging_config ac = AGING_DEFAULTS;
	char err[512];

	memset(fx, 0, sizeof(*fx));
	tu_rng_seed(&fx->r, tu_seed);
	CHECKF(pool__create(&fx->pool, &pc, err, sizeof(err)) == 0, "%s", err);
	CHECK(buddy__init(&fx->b, fx->pool.nr_frames) == 0);
	CHECK(gpamap__init(&fx->m, (uint32_t)(guest >> 12), fx->pool.nr_frames) == 0);
	ac.age = age;
	ac.seed = tu_seed;
	ac.ballast = 0.25;
	ac.unmovable = 0.25;
	ac.unmovable_scatter = 0.01;
	CHECKF(aging__place(&fx->b, &fx->m, &ac, err, sizeof(err)) == 0, "%s", err);
	for (gpfn_t g = 0; g < fx->m.nr_gpfns; g++) {
		uint64_t *w = frame_words(fx, gpamap__frame(&fx->m, g));

		w[0] = gsig(g);
		w[511] = ~gsig(g);
	}
	CHECKF(window__create(&fx->w, guest, fx->pool.block_fd, err, sizeof(err)) == 0, "%s", err);
	CHECK(((uintptr_t)fx->w.base & (2 * MiB - 1)) == 0);
	fx->w.hugepage_advice = advice;
	CHECKF(window__map_all(&fx->w, &fx->m, err, sizeof(err)) == 0, "%s", err);
}

static void fixture_exit(struct fixture *fx)
{
	char why[256];

	CHECKF(buddy__check(&fx->b, why, sizeof(why)) == 0, "%s", why);
	CHECKF(gpamap__check(&fx->m, why, sizeof(why)) == 0, "%s", why);
	window__destroy(&fx->w);
	gpamap__exit(&fx->m);
	buddy__exit(&fx->b);
	pool__destroy(&fx->pool);
}

/* Move gpfn g to the (taken) frame nf: copy, rebind, free the old frame, remap. */
static void move_4k(struct fixture *fx, gpfn_t g, frame_t nf)
{
	frame_t old = gpamap__frame(&fx->m, g);

	pool__copy_frame(&fx->pool, nf, old);
	CHECK(gpamap__rebind(&fx->m, g, nf) == old);
	buddy__free(&fx->b, old, 0);
	CHECK(window__remap_4k(&fx->w, &fx->m, g) == 0);
}

static void random_moves(struct fixture *fx, int n)
{
	for (int i = 0; i < n; i++) {
		gpfn_t g = (gpfn_t)tu_below(&fx->r, fx->m.nr_gpfns);
		frame_t nf = buddy__alloc(&fx->b, 0, MIGRATE_MOVABLE);
		uint64_t *win;

		CHECK(nf != FRAME_NONE);
		move_4k(fx, g, nf);
		check_gpfn(fx, g);
		/* Writes through the window land in the new frame. */
		win = window__gpa_ptr(&fx->w, ((uint64_t)g << MM_PAGE_SHIFT) + 8);
		*win = 0x1234 + (uint64_t)i;
		CHECK(frame_words(fx, nf)[1] == 0x1234 + (uint64_t)i);
		if (i % 64 == 0)
			check_vmas(fx, "random 4K moves");
	}
	check_vmas(fx, "after random 4K moves");
	check_all(fx);
}

/* A pool block free of unmovable frames and of in-order regions; FRAME_NONE if none. */
static frame_t pick_block(struct fixture *fx)
{
	uint32_t nr_blocks = fx->m.nr_frames / 512;

	for (uint32_t tries = 0; tries < 4 * nr_blocks; tries++) {
		frame_t f0 = (frame_t)tu_below(&fx->r, nr_blocks) * 512;
		gpfn_t g0 = gpamap__gpfn(&fx->m, f0);
		bool ok = true;

		if (g0 != GPFN_NONE && g0 % 512 == 0 && gpamap__region_in_order(&fx->m, g0 / 512))
			continue;
		for (frame_t f = f0; f < f0 + 512 && ok; f++)
			ok = gpamap__owner(&fx->m, f) != FRAME_BALLAST_UNMOVABLE;
		if (ok)
			return f0;
	}
	return FRAME_NONE;
}

/* Empty block f0 with 4 KiB moves (guest pages remapped, movable ballast moved). */
static void evacuate(struct fixture *fx, frame_t f0)
{
	for (frame_t f = f0; f < f0 + 512; f++)
		if (buddy__frame_is_free(&fx->b, f))
			CHECK(buddy__take(&fx->b, f) == 0);
	for (frame_t f = f0; f < f0 + 512; f++) {
		enum frame_owner o = gpamap__owner(&fx->m, f);
		frame_t nf;

		if (o == FRAME_FREE)
			continue;
		nf = buddy__alloc(&fx->b, 0, MIGRATE_MOVABLE);
		CHECK(nf != FRAME_NONE && (nf < f0 || nf >= f0 + 512));
		if (o == FRAME_GUEST) {
			gpfn_t g = gpamap__gpfn(&fx->m, f);

			pool__copy_frame(&fx->pool, nf, f);
			gpamap__rebind(&fx->m, g, nf);
			CHECK(window__remap_4k(&fx->w, &fx->m, g) == 0);
		} else {
			CHECK_EQ(o, FRAME_BALLAST_MOVABLE);
			gpamap__set_owner(&fx->m, nf, FRAME_BALLAST_MOVABLE);
			gpamap__set_owner(&fx->m, f, FRAME_FREE);
		}
	}
	for (frame_t f = f0; f < f0 + 512; f++)
		buddy__free(&fx->b, f, 0);
	CHECK(buddy__take_block(&fx->b, f0, MM_PAGEBLOCK_ORDER) == 0);
}

/* Put region r in order into block f0 (taken), page by page; then one 2M remap or 512 4K remaps. */
static void collapse(struct fixture *fx, uint32_t r, frame_t f0, bool by_4k)
{
	gpfn_t g0 = r * 512;

	for (uint32_t i = 0; i < 512; i++) {
		frame_t old = gpamap__frame(&fx->m, g0 + i);

		pool__copy_frame(&fx->pool, f0 + i, old);
		gpamap__rebind(&fx->m, g0 + i, f0 + i);
		buddy__free(&fx->b, old, 0);
		if (by_4k) {
			CHECK(window__remap_4k(&fx->w, &fx->m, g0 + i) == 0);
			if (i % 128 == 0)
				check_vmas(fx, "collapse by 4K remaps");
		}
	}
	CHECK(gpamap__region_in_order(&fx->m, r));
	if (!by_4k)
		CHECK(window__remap_2m(&fx->w, &fx->m, r) == 0);
	check_vmas(fx, by_4k ? "region rebuilt by 4K remaps" : "after 2M remap");
	for (gpfn_t g = g0; g < g0 + 512; g++)
		check_gpfn(fx, g);
}

static void test_scenario(bool advice)
{
	struct fixture fx;
	uint32_t collapsed = 0, by_4k_region = 0;

	tu_case = advice ? "window+madvise" : "window-no-madvise";
	fixture_init(&fx, 32 * MiB, 16 * MiB, 0.5, advice);
	check_vmas(&fx, "after map_all");
	CHECK(fx.w.nr_vmas > 4000); /* 8 scattered regions: ~4096 runs */
	check_all(&fx);
	CHECK(window__remap_2m(&fx.w, &fx.m, 0xffff) == -EINVAL);

	random_moves(&fx, 300);

	for (uint32_t r = 0; r < fx.m.nr_regions && collapsed < 3; r++) {
		frame_t f0;

		if (gpamap__region_in_order(&fx.m, r))
			continue;
		f0 = pick_block(&fx);
		CHECK(f0 != FRAME_NONE);
		CHECK(window__remap_2m(&fx.w, &fx.m, r) == -EINVAL); /* not in order yet */
		evacuate(&fx, f0);
		check_vmas(&fx, "after evacuation");
		collapse(&fx, r, f0, collapsed == 1);
		if (collapsed == 1)
			by_4k_region = r;
		collapsed++;
	}
	CHECK_EQ(collapsed, 3);
	check_all(&fx);
	if (fx.pool.nr_huge_blocks == fx.pool.nr_blocks) {
		/* Every page was touched: regions in order are PMD-mapped, except the one rebuilt by
		 * 4K remaps (its pages were faulted one by one); one 2M remap fixes that. */
		uint8_t *lo = fx.w.base, *hi = fx.w.base + fx.w.size;
		uint64_t before = smaps_pmd_kb(lo, hi);

		CHECK(before >= 2048ULL * (gpamap__count_in_order(&fx.m) - 1));
		CHECK(window__remap_2m(&fx.w, &fx.m, by_4k_region) == 0);
		for (gpfn_t g = by_4k_region * 512; g < by_4k_region * 512 + 512; g++)
			check_gpfn(&fx, g);
		pool__refresh_huge(&fx.pool);
		if (pool__block_is_huge(&fx.pool, gpamap__frame(&fx.m, by_4k_region * 512)))
			CHECK_EQ(smaps_pmd_kb(lo, hi), before + 2048);
		else /* the host (reclaim, DAMON's pageout scheme) split that block meanwhile */
			printf("%s: block of region %u no longer a host huge page; PMD check skipped\n", tu_case,
			       by_4k_region);
		check_vmas(&fx, "after the 2M remap of the region rebuilt by 4K");
	}
	printf("%s: %llu VMAs at the end, matching /proc/self/maps\n", tu_case,
	       (unsigned long long)fx.w.nr_vmas);
	fixture_exit(&fx);
}

/* Linear neighbours: every pool block is its own file, so a linear window is one VMA per region;
 * a region split by a 4 KiB move and restored, or moved to another block, comes back to that. */
static void test_merge_neighbours(void)
{
	struct fixture fx;
	gpfn_t g;

	tu_case = "merge";
	fixture_init(&fx, 8 * MiB, 8 * MiB, 0.0, true);
	CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions); /* age 0: one VMA per region (per block file) */
	check_vmas(&fx, "linear");
	/* Split region 1 by moving one page away, then put it back: 2 more VMAs, then none. */
	g = 512 + 100;
	{
		frame_t home = gpamap__frame(&fx.m, g), nf = buddy__alloc(&fx.b, 0, MIGRATE_MOVABLE);

		move_4k(&fx, g, nf);
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions + 2);
		check_vmas(&fx, "split");
		CHECK(buddy__take(&fx.b, home) == 0);
		move_4k(&fx, g, home);
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions);
		check_vmas(&fx, "merged back");
	}
	/* The same with the first and last page of the window. */
	for (int i = 0; i < 2; i++) {
		gpfn_t e = i ? fx.m.nr_gpfns - 1 : 0;
		frame_t home = gpamap__frame(&fx.m, e);

		move_4k(&fx, e, buddy__alloc(&fx.b, 0, MIGRATE_MOVABLE));
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions + 1);
		check_vmas(&fx, "edge split");
		CHECK(buddy__take(&fx.b, home) == 0);
		move_4k(&fx, e, home);
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions);
	}
	/* Region 1 away to a slack block with one 2M remap, then home again: one VMA per region. */
	{
		frame_t f0 = pick_block(&fx);

		CHECK(f0 != FRAME_NONE && f0 >= 4 * 512);
		evacuate(&fx, f0);
		collapse(&fx, 1, f0, false);
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions);
		check_vmas(&fx, "region on another block");
		CHECK(buddy__take_block(&fx.b, 512, MM_PAGEBLOCK_ORDER) == 0);
		collapse(&fx, 1, 512, false);
		CHECK_EQ(fx.w.nr_vmas, fx.m.nr_regions);
	}
	check_all(&fx);
	fixture_exit(&fx);
}

static void test_budget(void)
{
	struct vma_budget vb = { .max_map_count = 65530, .in_use = 230 };
	const char *want =
		"guest window needs 236075 mappings but only 64300 are available (vm.max_map_count = 65530, "
		"230 in use). Raise it with: sysctl -w vm.max_map_count=327680 (or run scripts/setup.sh "
		"--raise-map-count=327680)";
	struct fixture fx;
	struct window w;
	char err[512];

	tu_case = "budget";
	CHECK_EQ(vma_budget__available(&vb, 1000), 64300);
	CHECK(vma_budget__check_with(&vb, 64300, 1000, err, sizeof(err)) == 0);
	CHECK(vma_budget__check_with(&vb, 236075, 1000, err, sizeof(err)) == -ENOMEM);
	CHECKF(!strcmp(err, want), "message:\n  %s\nwanted:\n  %s", err, want);
	vb.in_use = 70000; /* already over: nothing available */
	CHECK(vma_budget__check_with(&vb, 1, 1000, err, sizeof(err)) == -ENOMEM);
	CHECK(strstr(err, "needs 1 mappings but only 0 are available"));
	CHECK(vma_budget__read(&vb) == 0);
	CHECK(vb.max_map_count > 0 && vb.in_use > 5);

	/* map_all refuses before mapping anything when the budget is too small. */
	fixture_init(&fx, 8 * MiB, 4 * MiB, 1.0, true);
	CHECK(window__create(&w, 8 * MiB, fx.pool.block_fd, err, sizeof(err)) == 0);
	CHECK(vma_budget__read(&vb) == 0);
	w.fake_max_map_count = vb.in_use + 1000 + 100; /* 100 available, ~2000 needed */
	CHECK(window__map_all(&w, &fx.m, err, sizeof(err)) == -ENOMEM);
	CHECKF(strstr(err, "guest window needs") && strstr(err, "sysctl -w vm.max_map_count="), "%s", err);
	CHECK_EQ(window__count_host_vmas(&w), 1); /* still the bare reservation */
	CHECK(*(volatile uint8_t *)window__gpa_ptr(&fx.w, 0) == (uint8_t)gsig(0));
	printf("budget refusal: %s\n", err);
	window__destroy(&w);
	fixture_exit(&fx);
}

/* What mm__stat reports of a fresh 32 MiB guest aged 0.3 agrees with the pool, map and window. */
static void mm_check_stat(struct mm *mm, const struct mm_stat *st)
{
	uint64_t sum = 0;

	CHECK_EQ(st->nr_regions, 16);
	CHECK_EQ(st->regions_in_order, 16 - (uint32_t)llround(0.3 * 16));
	CHECK_EQ(st->pool_bytes, 36 * MiB);
	CHECK_EQ(st->vmas, (uint64_t)window__count_host_vmas(&mm->win));
	for (int o = 0; o < FRAME_OWNERS; o++)
		sum += st->frames_owned[o];
	CHECK_EQ(sum, 36 * MiB / 4096);
	for (uint32_t r = 0; r < st->nr_regions; r++)
		CHECK_EQ(mm->region_huge_mapped[r], gpamap__region_in_order(&mm->map, r));
	if (st->huge_blocks == mm->pool.nr_blocks) {
		CHECK_EQ(st->regions_backed_2m, st->regions_in_order);
		CHECK(st->regions_achievable == 16); /* 2 MiB of unmovable ballast at most: room enough */
		/* The point of it all: touching the window maps each in-order region with one PMD. */
		for (uint64_t off = 0; off < mm->win.size; off += 4096)
			(void)*(volatile uint8_t *)window__gpa_ptr(&mm->win, off);
		CHECK_EQ(smaps_pmd_kb(mm->win.base, mm->win.base + mm->win.size), st->regions_in_order * 2048);
	}
	CHECK(fabs(st->backing_2m - (double)st->regions_backed_2m / 16) < 1e-9);
	/* Metadata: about 18 bytes per pool frame plus fixed structs; at most 0.5 % of a 1 GiB
	 * guest with 1/8 slack (the small guest here pays for the fixed part). */
	CHECK((double)st->metadata_bytes <= 0.006 * (double)st->guest_bytes);
	CHECK((double)mm__metadata_bytes(262144, 262144 + 32768) <= 0.005 * 1024 * MiB);
	CHECK(st->frag_score <= 100);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		uint64_t s = 0;

		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			s += st->nr_free_mt[o][mt];
		CHECK_EQ(s, st->nr_free[o]);
		CHECK(st->fragindex[o] >= -1000 && st->fragindex[o] <= 1000);
	}
}

/* Achievable regions, by hand: pretend every block is huge and check the arithmetic. */
static void mm_check_achievable_arithmetic(struct mm *mm)
{
	uint32_t unclean = 0;
	uint64_t room = 0, movable = mm->map.nr_owned[FRAME_BALLAST_MOVABLE], over, clean;

	memset(mm->pool.block_huge, 1, mm->pool.nr_blocks);
	for (uint32_t blk = 0; blk < mm->pool.nr_blocks; blk++) {
		uint32_t u = 0;

		for (uint32_t p = 0; p < 512; p++)
			u += gpamap__owner(&mm->map, blk * 512 + p) == FRAME_BALLAST_UNMOVABLE;
		unclean += u > 0;
		room += u ? 512 - u : 0;
	}
	clean = mm->pool.nr_blocks - unclean;
	over = movable > room ? movable - room : 0;
	clean -= (over + 511) / 512;
	CHECK_EQ(mm__achievable_regions(mm), clean < 16 ? clean : 16);
}

/*
 * A hand-made case: 16 regions, 8 blocks of slack, all ballast, half of it unmovable
 * (4 whole blocks): 20 clean blocks, 2048 movable frames overflow into 4 of them: 16.
 * Each clean block that is not huge gives 512 frames of room instead: no loss until the
 * overflow is gone (4 blocks), then one region per block. cfg keeps the ballast settings.
 */
static void mm_check_achievable_hand_made(struct mm_config *cfg)
{
	static const uint32_t want[] = { 16, 16, 16, 16, 15, 14, 13 };
	struct mm mm;
	char err[512];
	uint32_t k = 0;

	cfg->guest_bytes = 32 * MiB;
	cfg->slack_bytes = 16 * MiB;
	cfg->aging.age = 1.0;
	cfg->aging.ballast = 1.0;
	cfg->aging.unmovable = 0.5;
	cfg->aging.unmovable_scatter = 0.0;
	CHECKF(mm__create(&mm, cfg, err, sizeof(err)) == 0, "%s", err);
	memset(mm.pool.block_huge, 1, mm.pool.nr_blocks);
	CHECK_EQ(mm.map.nr_owned[FRAME_BALLAST_UNMOVABLE], 2048);
	CHECK_EQ(mm__achievable_regions(&mm), 16);
	for (uint32_t blk = 0; blk < mm.pool.nr_blocks && k < 7; blk++) {
		if (buddy__pageblock_mt(&mm.buddy, blk * 512) == MIGRATE_UNMOVABLE)
			continue;
		mm.pool.block_huge[blk] = 0;
		CHECKF(mm__achievable_regions(&mm) == want[k], "%u non-huge blocks: %u achievable", k + 1,
		       mm__achievable_regions(&mm));
		k++;
	}
	CHECK_EQ(k, 7);
	mm__destroy(&mm);
}

static void test_mm(void)
{
	struct mm_config cfg = { .guest_bytes = 32 * MiB, .slack_bytes = 3 * MiB, .prefault = true,
				 .aging = AGING_DEFAULTS };
	struct mm mm;
	struct mm_stat st;
	char err[512];

	tu_case = "mm";
	cfg.aging.age = 0.3;
	cfg.aging.seed = tu_seed;
	CHECKF(mm__create(&mm, &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(mm.cfg.slack_bytes, 4 * MiB); /* rounded up to 2 MiB */
	mm__stat(&mm, &st);
	mm_check_stat(&mm, &st);
	for (gpfn_t g = 0; g < mm.map.nr_gpfns; g += 97) {
		*(volatile uint64_t *)window__gpa_ptr(&mm.win, (uint64_t)g << 12) = gsig(g);
		CHECK(*(uint64_t *)pool__frame_ptr(&mm.pool, gpamap__frame(&mm.map, g)) == gsig(g));
	}
	printf("mm: %u/%u regions in order, %u backed 2m, %u achievable, %llu VMAs, metadata %llu B "
	       "(%.3f %%), frag score %u, start-up %.1f ms (prefault %.1f ms)\n",
	       st.regions_in_order, st.nr_regions, st.regions_backed_2m, st.regions_achievable,
	       (unsigned long long)st.vmas, (unsigned long long)st.metadata_bytes,
	       100.0 * st.metadata_bytes / st.guest_bytes, st.frag_score, mm.startup.total_ns / 1e6,
	       mm.startup.prefault_ns / 1e6);
	mm_check_achievable_arithmetic(&mm);
	mm__destroy(&mm);

	mm_check_achievable_hand_made(&cfg);

	cfg.guest_bytes = 3 * MiB;
	CHECK(mm__create(&mm, &cfg, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "multiple of 2 MiB"));
}

/* 1 GiB at age 0.9 needs ~236k VMAs: with the default vm.max_map_count mm__create refuses
 * before making the pool; with a raised one it must succeed. */
static void test_mm_refusal(void)
{
	struct mm_config cfg = { .guest_bytes = 1024 * MiB, .slack_bytes = 128 * MiB, .prefault = false,
				 .aging = AGING_DEFAULTS };
	struct vma_budget vb;
	struct mm mm;
	char err[512];
	int ret;

	tu_case = "mm-refusal";
	cfg.aging.age = 0.9;
	cfg.aging.seed = 7;
	CHECK(vma_budget__read(&vb) == 0);
	ret = mm__create(&mm, &cfg, err, sizeof(err));
	if (vma_budget__available(&vb, VMA_BUDGET_HEADROOM) < 236000) {
		CHECKF(ret == -ENOMEM, "mm__create: %d %s", ret, err);
		/* the window's ~236,080 mappings plus one per 2 MiB pool block (576) */
		CHECKF(strstr(err, "guest window needs 2366"), "%s", err);
		printf("1 GiB age 0.9 refused: %s\n", err);
	} else {
		CHECKF(ret == 0, "%s", err);
		CHECK_EQ(mm.win.nr_vmas, window__vmas_needed(&mm.map));
		printf("1 GiB age 0.9 mapped: %llu VMAs\n", (unsigned long long)mm.win.nr_vmas);
		mm__destroy(&mm);
	}
}

int main(int argc, char **argv)
{
	tu_seed = tu_base_seed(argc, argv, 0x3d0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_budget();
	test_merge_neighbours();
	test_scenario(true);
	test_scenario(false);
	test_mm();
	test_mm_refusal();
	printf("test_window: ok\n");
	return 0;
}
