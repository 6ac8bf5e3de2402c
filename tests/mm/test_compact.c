/* test_compact.c: compaction by the defrag engine (Linux compact_zone and planned) on real aged pools, no KVM. */
#include "defrag_check.h"

/* Compaction moves each page at most once: counters and content tracking must agree. */
static void check_compaction_accounting(struct dc_env *env, const struct defrag_stats *st)
{
	uint64_t ballast_moved = dc_verify_content(env);

	dc_check_maps(env);
	CHECK_EQ(st->pages_copied, st->copies_guest + st->copies_ballast);
	CHECK_EQ(st->delta.pages_copied, st->pages_copied);
	CHECK_EQ(st->delta.pgmigrate_success, st->pages_copied);
	CHECK_EQ(st->pages_moved_4k, st->copies_guest);
	CHECK_EQ(st->copies_guest, dc_guest_moved(env));
	CHECK_EQ(st->guest_pages_moved, st->copies_guest);
	CHECK_EQ(st->copies_ballast, ballast_moved);
	CHECK_EQ(st->copies_temp + st->copies_bulk + st->remaps_2m, 0);
	CHECK_EQ(st->delta.thp_collapse_alloc + st->delta.thp_collapse_zero_copy, 0);
	/* Every isolated page was migrated, failed, or is still where it was (put back). */
	CHECK(st->delta.pgmigrate_success + st->delta.pgmigrate_fail <= st->migrate_isolated);
}

static void check_linux_counters(const struct defrag_stats *st)
{
	/* Linux counts free pages isolated by the free scanner in compact_isolated too. */
	CHECK_EQ(st->delta.compact_isolated, st->migrate_isolated + st->free_isolated);
	CHECK(st->delta.compact_migrate_scanned >= st->migrate_isolated);
	CHECK(st->delta.compact_free_scanned > 0 || st->free_isolated == 0);
	CHECK(st->free_isolated >= st->delta.pgmigrate_success);
}

/* compaction_suitable() follows __compaction_suitable() and the fragmentation index. */
static void test_suitable(uint64_t seed)
{
	struct dc_env env;
	struct mm *mm;

	tu_seed = seed;
	tu_case = "suitable";
	dc_create(&env, 64, 8, 0.9, seed);
	mm = &env.mm;
	for (int order = 0; order < MM_MAX_ORDER; order++) {
		struct contig_page_info info;
		int fi;
		enum compact_result r = compaction_suitable(mm, order, EXTFRAG_THRESHOLD_DEFAULT);

		buddy__contig_page_info(&mm->buddy, (unsigned)order, &info);
		fi = fragmentation_index(&info, (unsigned)order);
		if (fi == -1000)
			CHECKF(r == COMPACT_SUCCESS, "order %d: fragindex -1000 but %s", order, compact_result__name(r));
		else if (mm->buddy.nr_free_frames < (2ULL << order))
			CHECKF(r == COMPACT_SKIPPED, "order %d: too little free but %s", order, compact_result__name(r));
		else if (order > PAGE_ALLOC_COSTLY_ORDER && fi <= EXTFRAG_THRESHOLD_DEFAULT)
			CHECKF(r == COMPACT_SKIPPED, "order %d: fragindex %d but %s", order, fi, compact_result__name(r));
		else
			CHECKF(r == COMPACT_CONTINUE, "order %d: fragindex %d, %s", order, fi, compact_result__name(r));
		/* A threshold of 1000 calls every costly failure a lack of memory. */
		if (order > PAGE_ALLOC_COSTLY_ORDER && fi >= 0)
			CHECK_EQ(compaction_suitable(mm, order, 1000), COMPACT_SKIPPED);
	}
	/* The aged pool has no free 2 MiB block but enough free memory: compaction is worth it. */
	CHECK_EQ(compaction_suitable(mm, MM_HPAGE_ORDER, EXTFRAG_THRESHOLD_DEFAULT), COMPACT_CONTINUE);
	CHECK_EQ(compaction_suitable(mm, -1, EXTFRAG_THRESHOLD_DEFAULT), COMPACT_CONTINUE);
	dc_destroy(&env);
}

/* Order-targeted compaction: a free block of the order afterwards, never fewer than before. */
static void test_order(uint64_t seed, enum defrag_algo algo, int order, uint64_t *copies)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	uint64_t before, after;
	char what[64];
	int ret;

	struct aging_config ag = AGING_DEFAULTS;

	tu_seed = seed;
	tu_case = "order";
	/* No unmovable ballast: its pageblocks' free rest would satisfy the small orders already. */
	ag.age = 0.9;
	ag.seed = seed;
	ag.unmovable = 0;
	dc_create_aged(&env, 64, 16, &ag);
	dc_sign(&env);
	before = dc_free_blocks(&env.mm, (unsigned)order);
	defrag_request__init(&req);
	req.mode = DEFRAG_COMPACT;
	req.algo = algo;
	req.order = order;
	ret = mm__defrag(&env.mm, &req, NULL, &st);
	snprintf(what, sizeof(what), "%s order %d", defrag_algo__name(algo), order);
	dc_print(what, &st);
	CHECKF(ret == 0, "%s", st.error_msg);
	after = dc_free_blocks(&env.mm, (unsigned)order);
	check_compaction_accounting(&env, &st);
	if (algo == DEFRAG_ALGO_LINUX)
		check_linux_counters(&st);
	CHECKF(after >= before, "order %d: %llu free blocks before, %llu after", order,
	       (unsigned long long)before, (unsigned long long)after);
	if (st.compact_result == COMPACT_SUCCESS)
		CHECK(after > 0);
	if (before == 0) {
		/* Nothing of the order was free: compaction ran (a stall). With 8 MiB free the planned
		 * one always finds a block to evacuate; Linux's scanners may meet first for order 10,
		 * where every aligned pair of pageblocks holding a THP (a linear region) is hopeless. */
		CHECK_EQ(st.delta.compact_stall, 1);
		CHECK_EQ(st.delta.compact_success + st.delta.compact_fail, 1);
		CHECK_EQ(st.delta.compact_success, st.compact_result == COMPACT_SUCCESS);
		if (algo == DEFRAG_ALGO_PLANNED || order < 10)
			CHECKF(st.compact_result == COMPACT_SUCCESS, "%s", compact_result__name(st.compact_result));
		else
			CHECKF(st.compact_result == COMPACT_SUCCESS || st.compact_result == COMPACT_COMPLETE, "%s",
			       compact_result__name(st.compact_result));
		if (st.compact_result == COMPACT_SUCCESS)
			CHECK(after > before);
		CHECK(st.pages_copied > 0);
	} else {
		CHECK_EQ(st.compact_result, COMPACT_SUCCESS); /* compaction_suitable: enough already */
		CHECK_EQ(st.pages_copied, 0);
		CHECK_EQ(st.delta.compact_stall, 0);
	}
	*copies = st.pages_copied;
	dc_destroy(&env);
}

/* Full compaction (compact_memory): until the scanners meet; more free 2 MiB blocks. */
static void test_full(uint64_t seed, enum defrag_algo algo, uint64_t *copies, uint64_t *blocks)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	uint64_t before, after;
	unsigned score_before, score_after;

	tu_seed = seed;
	tu_case = "full";
	dc_create(&env, 64, 8, 0.9, seed);
	dc_sign(&env);
	before = dc_free_blocks(&env.mm, MM_HPAGE_ORDER);
	score_before = buddy__fragmentation_score(&env.mm.buddy);
	defrag_request__init(&req);
	req.mode = DEFRAG_COMPACT;
	req.algo = algo;
	req.order = -1;
	CHECK_EQ(mm__defrag(&env.mm, &req, NULL, &st), 0);
	dc_print(algo == DEFRAG_ALGO_LINUX ? "linux full" : "planned full", &st);
	after = dc_free_blocks(&env.mm, MM_HPAGE_ORDER);
	score_after = buddy__fragmentation_score(&env.mm.buddy);
	check_compaction_accounting(&env, &st);
	CHECK_EQ(st.compact_result, COMPACT_COMPLETE);
	CHECK_EQ(st.delta.compact_stall, 0); /* compact_memory is not a stall */
	if (algo == DEFRAG_ALGO_LINUX)
		check_linux_counters(&st);
	CHECK(after > before);
	CHECKF(score_after < score_before, "fragmentation score %u -> %u", score_before, score_after);
	*copies = st.pages_copied;
	*blocks = after - before;
	dc_destroy(&env);
}

/* Cancel compaction midway: -ECANCELED, isolated frames given back, everything consistent. */
static void test_cancel(uint64_t seed, enum defrag_algo algo)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	struct mm_step_ops ops;
	struct dc_ops o;
	int ret;

	tu_seed = seed;
	tu_case = "cancel";
	dc_create(&env, 64, 16, 0.9, seed);
	dc_sign(&env);
	defrag_request__init(&req);
	req.mode = DEFRAG_FULL;
	req.algo = algo;
	req.max_pause_ns = 100000;
	dc_ops_init(&o, &ops, &req, &env.mm);
	o.cancel_after_steps = 5;
	ret = mm__defrag(&env.mm, &req, &ops, &st);
	dc_print("cancelled", &st);
	CHECK_EQ(ret, -ECANCELED);
	CHECK_EQ(st.compact_result, algo == DEFRAG_ALGO_LINUX ? COMPACT_ABORTED : COMPACT_SKIPPED);
	CHECK_EQ(st.steps, 5);
	CHECK_EQ(o.pauses, 5);
	CHECK_EQ(o.resumes, 5);
	CHECK(st.pages_copied > 0);
	CHECK_EQ(st.pages_copied, st.copies_guest + st.copies_ballast);
	CHECK_EQ(st.delta.pages_copied, st.pages_copied);
	dc_verify_content(&env);
	dc_check_maps(&env); /* no FRAME_ISOLATED left behind */
	dc_destroy(&env);
}

/* max_bytes_per_sec: the engine sleeps between steps to keep the copy rate. */
static void test_rate(uint64_t seed)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	double min_s;

	tu_seed = seed;
	tu_case = "rate";
	dc_create(&env, 32, 8, 0.9, seed);
	dc_sign(&env);
	defrag_request__init(&req);
	req.mode = DEFRAG_COMPACT;
	req.algo = DEFRAG_ALGO_LINUX;
	req.order = -1;
	req.max_bytes_per_sec = 16ULL << 20;
	req.max_pause_ns = 200000;
	CHECK_EQ(mm__defrag(&env.mm, &req, NULL, &st), 0);
	dc_print("linux full at 16 MiB/s", &st);
	CHECK(st.pages_copied > 100);
	/* The last step is not followed by a sleep: allow for one step's worth of copies. */
	min_s = (double)((st.pages_copied - st.pages_copied / st.steps - 1) << MM_PAGE_SHIFT) /
		(double)req.max_bytes_per_sec;
	CHECKF(st.wall_ns / 1e9 >= min_s * 0.95, "%.3f s for %llu copies at 16 MiB/s (want >= %.3f s)",
	       st.wall_ns / 1e9, (unsigned long long)st.pages_copied, min_s);
	dc_verify_content(&env);
	dc_check_maps(&env);
	dc_destroy(&env);
}

/* Step hooks around compaction: paired, never under mm->lock, one per step. */
static void test_steps(uint64_t seed)
{
	struct dc_env env;
	struct defrag_request req;
	struct defrag_stats st;
	struct mm_step_ops ops;
	struct dc_ops o;

	tu_seed = seed;
	tu_case = "steps";
	dc_create(&env, 64, 8, 0.9, seed);
	dc_sign(&env);
	defrag_request__init(&req);
	req.mode = DEFRAG_COMPACT;
	req.algo = DEFRAG_ALGO_LINUX;
	req.order = -1;
	req.max_pause_ns = 200000;
	dc_ops_init(&o, &ops, &req, &env.mm);
	CHECK_EQ(mm__defrag(&env.mm, &req, &ops, &st), 0);
	dc_print("linux full, 200us steps", &st);
	CHECK_EQ(o.pauses, st.steps);
	CHECK_EQ(o.resumes, st.steps);
	CHECK_EQ(o.progress_calls, st.steps);
	CHECK(st.steps > 1);
	CHECK(o.last_total == env.mm.map.nr_regions);   /* progress counts guest regions (issue 13) */
	CHECK(o.last_done <= o.last_total);
	check_compaction_accounting(&env, &st);
	dc_destroy(&env);
}

int main(int argc, char **argv)
{
	uint64_t seed = tu_base_seed(argc, argv, 0xc0a1e5ceULL);
	uint64_t linux_copies, planned_copies, linux_blocks, planned_blocks;
	static const int orders[] = { 1, 3, 6, 9, 10 };
	double t0 = tu_now_s();

	test_suitable(seed);
	for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
		test_order(seed + i, DEFRAG_ALGO_LINUX, orders[i], &linux_copies);
		test_order(seed + i, DEFRAG_ALGO_PLANNED, orders[i], &planned_copies);
		/* Evacuating the cheapest block never costs more than scanning from the bottom. */
		CHECKF(planned_copies <= linux_copies, "order %d: planned %llu copies, linux %llu", orders[i],
		       (unsigned long long)planned_copies, (unsigned long long)linux_copies);
	}
	test_full(seed + 10, DEFRAG_ALGO_LINUX, &linux_copies, &linux_blocks);
	test_full(seed + 10, DEFRAG_ALGO_PLANNED, &planned_copies, &planned_blocks);
	printf("full: linux %llu copies for %llu free 2 MiB blocks, planned %llu copies for %llu\n",
	       (unsigned long long)linux_copies, (unsigned long long)linux_blocks,
	       (unsigned long long)planned_copies, (unsigned long long)planned_blocks);
	/* The planned full compaction frees at least as many blocks, each for fewer copies. */
	CHECK(planned_blocks >= linux_blocks);
	CHECK(planned_copies * linux_blocks <= linux_copies * planned_blocks);
	test_cancel(seed + 11, DEFRAG_ALGO_LINUX);
	test_cancel(seed + 11, DEFRAG_ALGO_PLANNED);
	test_rate(seed + 12);
	test_steps(seed + 13);
	printf("test_compact: all passed in %.1f s\n", tu_now_s() - t0);
	return 0;
}
