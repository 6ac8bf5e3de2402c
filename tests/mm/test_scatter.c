/* test_scatter.c: re-aging (mm__scatter) alternating with defrag on real pools: content, maps, accounting, no KVM. */
#include "defrag_check.h"

/* Checks that hold after any scatter of nr moves that completed. */
static void check_scatter(struct dc_env *env, const struct defrag_stats *st, uint64_t nr,
			  const uint8_t *was_huge_mapped)
{
	struct mm *mm = &env->mm;
	uint64_t moved = dc_guest_moved(env);
	uint32_t touched_regions = 0;

	CHECK_EQ(st->error, 0);
	CHECK_EQ(st->pages_copied, nr);
	CHECK_EQ(st->pages_moved_4k, nr);
	CHECK_EQ(st->copies_guest, nr);
	CHECK_EQ(st->copies_ballast, 0);
	CHECK_EQ(st->copies_bulk, 0);
	CHECK_EQ(st->remaps_2m, 0);
	CHECK_EQ(st->delta.pgmigrate_success, nr);
	CHECK_EQ(st->delta.pages_copied, nr);
	CHECK_EQ(st->delta.pgmigrate_fail, 0);
	/* A page may be picked twice or come back to its old frame, never the other way round. */
	CHECK(st->guest_pages_moved <= nr);
	CHECK(st->guest_pages_moved >= moved);
	CHECK(moved * 10 >= nr * 8); /* 4000 picks of 16384 pages: about 89 % distinct */
	CHECK_EQ(dc_verify_content(env), 0); /* ballast is never touched */
	dc_check_maps(env);
	CHECK_EQ(mm->win.nr_vmas, window__vmas_needed(&mm->map));
	CHECK_EQ(st->regions_backed_2m, dc_backed_2m(mm));
	for (uint32_t r = 0; r < mm->map.nr_regions; r++) {
		bool touched = false;

		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
			gpfn_t g = (r << MM_PAGEBLOCK_ORDER) + i;
			frame_t f = gpamap__frame(&mm->map, g);

			if (f == env->frame0[g])
				continue;
			touched = true;
			/* The page went where the page allocator puts a movable page. */
			CHECKF(buddy__pageblock_mt(&mm->buddy, f) == MIGRATE_MOVABLE,
			       "gpfn %#x moved into a %s pageblock", g,
			       migratetype_names[buddy__pageblock_mt(&mm->buddy, f)]);
		}
		touched_regions += touched;
		/* A 2 MiB-mapped region that lost a page is split (maps checked above against
		 * /proc/self/maps); one that lost none keeps its single mapping. */
		CHECKF(mm->region_huge_mapped[r] == (was_huge_mapped[r] && !touched),
		       "region %u: huge mapped %d, was %d, touched %d", r, mm->region_huge_mapped[r],
		       was_huge_mapped[r], touched);
	}
	CHECK(touched_regions > 0);
}

static void check_defrag(struct dc_env *env, const struct defrag_stats *st)
{
	struct mm *mm = &env->mm;

	CHECK_EQ(st->error, 0);
	dc_verify_content(env);
	dc_check_maps(env);
	CHECK_EQ(mm->win.nr_vmas, window__vmas_needed(&mm->map));
	CHECK_EQ(st->delta.pages_copied, st->pages_copied);
	CHECK_EQ(st->regions_backed_2m, dc_backed_2m(mm));
	CHECK_EQ(st->regions_huge_mapped, st->regions_backed_2m);
	CHECKF(st->regions_backed_2m == st->regions_achievable, "%s: %u backed of %u achievable",
	       "defrag", st->regions_backed_2m, st->regions_achievable);
}

/* Rounds of scatter + defrag (planned and Linux alternating) under step hooks. */
static void test_rounds(uint64_t seed)
{
	const uint64_t per_round = 4000;
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	struct mm_step_ops ops;
	struct dc_ops o;
	uint8_t *was_huge;
	uint32_t achievable, in_order_before;
	uint64_t total_moves = 0;
	int ret;

	tu_seed = seed;
	tu_case = "rounds";
	printf("%s: seed %#llx\n", tu_case, (unsigned long long)seed);
	/* 16 MiB slack: Linux compaction needs compact_gap(9) = 4 MiB free to run at all. */
	dc_create(&env, 64, 16, 0.9, seed);
	dc_sign(&env);
	achievable = mm__achievable_regions(&env.mm);
	was_huge = calloc(env.mm.map.nr_regions, 1);
	CHECK(was_huge);

	defrag_request__init(&req);
	dc_ops_init(&o, &ops, &req, &env.mm);
	ret = mm__defrag(&env.mm, &req, &ops, &st);
	dc_print("initial defrag", &st);
	CHECKF(ret == 0, "mm__defrag: %d %s", ret, st.error_msg);
	check_defrag(&env, &st);
	CHECK_EQ(st.regions_achievable, achievable);
	total_moves += st.pages_copied;

	for (int round = 1; round <= 4; round++) {
		dc_snapshot(&env);
		memcpy(was_huge, env.mm.region_huge_mapped, env.mm.map.nr_regions);
		in_order_before = gpamap__count_in_order(&env.mm.map);

		defrag_request__init(&req);
		req.max_pause_ns = 200000;
		dc_ops_init(&o, &ops, &req, &env.mm);
		ret = mm__scatter(&env.mm, per_round, seed * 31 + (uint64_t)round, &ops, &req, &st);
		dc_print("scatter", &st);
		CHECKF(ret == 0, "mm__scatter: %d %s", ret, st.error_msg);
		check_scatter(&env, &st, per_round, was_huge);
		CHECK_EQ(o.pauses, st.steps);
		CHECK_EQ(o.resumes, st.steps);
		CHECK(!o.paused);
		CHECK(st.steps >= 2);
		CHECK_EQ(o.last_done, per_round);
		CHECK_EQ(o.last_total, per_round);
		CHECK(gpamap__count_in_order(&env.mm.map) < in_order_before);
		CHECK(dc_backed_2m(&env.mm) < achievable);
		total_moves += st.pages_copied;

		dc_snapshot(&env);
		defrag_request__init(&req);
		req.algo = round & 1 ? DEFRAG_ALGO_LINUX : DEFRAG_ALGO_PLANNED;
		dc_ops_init(&o, &ops, &req, &env.mm);
		ret = mm__defrag(&env.mm, &req, &ops, &st);
		dc_print(req.algo == DEFRAG_ALGO_LINUX ? "linux defrag" : "planned defrag", &st);
		CHECKF(ret == 0, "mm__defrag: %d %s", ret, st.error_msg);
		check_defrag(&env, &st);
		CHECK_EQ(o.pauses, st.steps);
		total_moves += st.pages_copied;
	}
	printf("  %llu page moves in total, every page intact\n", (unsigned long long)total_moves);
	free(was_huge);
	dc_destroy(&env);
}

/* Cancelled midway: the moves made are whole and accounted for, the maps consistent. */
static void test_cancel(uint64_t seed)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	struct mm_step_ops ops;
	struct dc_ops o;
	int ret;

	tu_seed = seed;
	tu_case = "cancel";
	dc_create(&env, 32, 4, 0.5, seed);
	dc_sign(&env);
	defrag_request__init(&req);
	req.max_pause_ns = 50000;
	dc_ops_init(&o, &ops, &req, &env.mm);
	o.cancel_after_steps = 5;
	ret = mm__scatter(&env.mm, 1000000, seed, &ops, &req, &st);
	dc_print("scatter cancelled", &st);
	CHECK_EQ(ret, -ECANCELED);
	CHECK_EQ(st.error, -ECANCELED);
	CHECK_EQ(st.steps, 5);
	CHECK_EQ(o.pauses, o.resumes);
	CHECK(st.pages_copied > 0 && st.pages_copied < 1000000);
	CHECK_EQ(st.delta.pgmigrate_success, st.pages_copied);
	CHECK_EQ(st.pages_moved_4k, st.pages_copied);
	CHECK_EQ(o.last_done, st.pages_copied);
	CHECK_EQ(dc_verify_content(&env), 0);
	dc_check_maps(&env);
	dc_destroy(&env);
}

/* The same seed on the same layout scatters the same way; another seed does not. */
static void test_seeded(uint64_t seed)
{
	struct dc_env a, b;
	struct defrag_stats st;
	uint32_t n;
	int ret;

	tu_seed = seed;
	tu_case = "seeded";
	dc_create(&a, 32, 4, 0.3, seed);
	dc_create(&b, 32, 4, 0.3, seed);
	n = a.mm.map.nr_gpfns;
	CHECK(!memcmp(a.mm.map.gpfn_frame, b.mm.map.gpfn_frame, n * sizeof(frame_t)));
	ret = mm__scatter(&a.mm, 2000, seed ^ 0xabc, NULL, NULL, &st);
	CHECK_EQ(ret, 0);
	CHECK_EQ(st.pages_copied, 2000);
	CHECK(st.steps >= 1);
	ret = mm__scatter(&b.mm, 2000, seed ^ 0xabc, NULL, NULL, &st);
	CHECK_EQ(ret, 0);
	CHECK(!memcmp(a.mm.map.gpfn_frame, b.mm.map.gpfn_frame, n * sizeof(frame_t)));
	ret = mm__scatter(&b.mm, 10, seed ^ 0xdef, NULL, NULL, &st);
	CHECK_EQ(ret, 0);
	ret = mm__scatter(&a.mm, 10, seed ^ 0x123, NULL, NULL, &st);
	CHECK_EQ(ret, 0);
	CHECK(memcmp(a.mm.map.gpfn_frame, b.mm.map.gpfn_frame, n * sizeof(frame_t)));
	dc_check_maps(&a);
	dc_check_maps(&b);
	dc_destroy(&a);
	dc_destroy(&b);
}

int main(int argc, char **argv)
{
	uint64_t seed = tu_base_seed(argc, argv, 0x5ca77e7ULL);
	double t0 = tu_now_s();

	test_rounds(seed);
	test_cancel(seed + 1);
	test_seeded(seed + 2);
	printf("test_scatter: all passed in %.1f s\n", tu_now_s() - t0);
	return 0;
}
