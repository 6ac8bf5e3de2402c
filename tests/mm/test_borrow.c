/* test_borrow.c: the elastic pool under defrag: borrowed blocks, whole-region copies, blocks given back, maps intact. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/defrag.h"
#include "tests/check.h"
#include "defrag_check.h"

#define MiB (1ULL << 20)

/* An aged pool whose frame space has room to borrow `borrow_mb` (dc_create_aged with capacity). */
static void create_elastic(struct dc_env *env, uint64_t guest_mb, uint64_t slack_mb, uint64_t borrow_mb,
			   double age, uint64_t seed, bool prefault)
{
	struct mm_config cfg = { .guest_bytes = guest_mb * MiB, .slack_bytes = slack_mb * MiB, .prefault = prefault,
				 .borrow_capacity_bytes = borrow_mb * MiB, .aging = AGING_DEFAULTS };

	cfg.aging.age = age;
	cfg.aging.seed = seed;
	dc_create_cfg(env, &cfg);
	CHECK_EQ(env->mm.pool.nr_blocks, (guest_mb + slack_mb + borrow_mb) / 2);
	CHECK_EQ(env->mm.map.nr_owned[FRAME_ABSENT], borrow_mb / 2 * MM_PAGEBLOCK_FRAMES);
	dc_sign(env);
	dc_snapshot(env);
}

/* Present blocks and ABSENT frames agree; absent blocks are in no allocator and hold nothing. */
static void check_elastic(struct dc_env *env)
{
	struct mm *mm = &env->mm;
	uint32_t present = 0;

	for (uint32_t b = 0; b < mm->pool.nr_blocks; b++) {
		frame_t f0 = b << MM_PAGEBLOCK_ORDER;
		uint32_t absent = 0;

		present += pool__block_present(&mm->pool, b);
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
			absent += gpamap__owner(&mm->map, f0 + i) == FRAME_ABSENT;
		CHECKF(absent == (pool__block_present(&mm->pool, b) ? 0 : MM_PAGEBLOCK_FRAMES), "block %u: %u absent", b,
		       absent);
		if (!pool__block_present(&mm->pool, b))
			CHECK(!buddy__frame_is_free(&mm->buddy, f0) && mm->pool.block_fd[b] < 0 && !mm->pool.block_huge[b]);
	}
	CHECK_EQ(present, mm->pool.nr_present);
	CHECK_EQ(mm->map.nr_owned[FRAME_ABSENT], (uint64_t)(mm->pool.nr_blocks - present) * MM_PAGEBLOCK_FRAMES);
	CHECK_EQ((int64_t)mm->win.nr_vmas, window__count_host_vmas(&mm->win));
}

static void run(struct dc_env *env, uint64_t borrow, struct defrag_stats *st)
{
	struct defrag_request req;
	struct mm_step_ops ops;
	struct dc_ops o;

	defrag_request__init(&req);
	dc_ops_init(&o, &ops, &req, &env->mm);
	req.borrow_bytes = borrow;
	CHECK_EQ(mm__defrag(&env->mm, &req, &ops, st), 0);
	CHECKF(st->error == 0, "%s", st->error_msg);
	dc_verify_content(env);
	dc_check_maps(env);
	check_elastic(env);
}

/* Borrowing on: every scattered region copied whole into a borrowed block (no 4 KiB remap),
 * all regions backed 2 MiB, and the pool back to guest + slack + a small reserve. */
static void test_auto(void)
{
	struct dc_env env;
	struct defrag_stats st;
	uint64_t start;

	tu_case = "auto";
	create_elastic(&env, 64, 4, 64, 0.9, tu_seed, true);
	start = pool__present_bytes(&env.mm.pool);
	run(&env, DEFRAG_BORROW_AUTO, &st);
	dc_print("borrow auto", &st);
	printf("  borrowed peak %llu MiB, given back %llu MiB, pool after %llu MiB (start %llu)%s%s\n",
	       (unsigned long long)(st.borrowed_peak_bytes >> 20), (unsigned long long)(st.given_back_bytes >> 20),
	       (unsigned long long)(st.pool_rss_after_bytes >> 20), (unsigned long long)(start >> 20),
	       st.borrow_note[0] ? ": " : "", st.borrow_note);
	CHECK_EQ(st.regions_backed_2m, env.mm.map.nr_regions);
	CHECK_EQ(st.pages_moved_4k, 0);
	CHECK_EQ(st.copies_bulk, st.copies_guest);
	CHECK(st.borrowed_peak_bytes >= 16 * MiB);
	CHECK(st.given_back_bytes > 0);
	CHECK_EQ(st.pool_rss_after_bytes, pool__present_bytes(&env.mm.pool));
	CHECKF(st.pool_rss_after_bytes <= start + start / 50 + 2 * MiB, "pool %llu MiB after, %llu at start",
	       (unsigned long long)(st.pool_rss_after_bytes >> 20), (unsigned long long)(start >> 20));
	CHECK(!strcmp(st.promote_path, "remap"));
	/* Again: nothing left to do, nothing borrowed. */
	run(&env, DEFRAG_BORROW_AUTO, &st);
	CHECK_EQ(st.pages_copied, 0);
	CHECK_EQ(st.borrowed_peak_bytes, 0);
	dc_destroy(&env);
}

/* Borrowing off or bounded: the pool never grows (or not past the bound); still all backed. */
static void test_off_and_bounded(void)
{
	struct dc_env env;
	struct defrag_stats st;

	tu_case = "off";
	create_elastic(&env, 64, 4, 64, 0.9, tu_seed, true);
	run(&env, DEFRAG_BORROW_OFF, &st);
	CHECK_EQ(st.borrowed_peak_bytes, 0);
	CHECK_EQ(st.regions_backed_2m, env.mm.map.nr_regions);
	CHECK(st.pages_moved_4k > 0);
	dc_destroy(&env);

	tu_case = "bounded";
	create_elastic(&env, 64, 4, 64, 0.9, tu_seed + 1, true);
	run(&env, 6 * MiB, &st);
	dc_print("borrow 6M", &st);
	CHECK(st.borrowed_peak_bytes > 0 && st.borrowed_peak_bytes <= 6 * MiB);
	CHECK_EQ(st.borrow_limit_bytes, 6 * MiB);
	CHECK_EQ(st.regions_backed_2m, env.mm.map.nr_regions);
	dc_destroy(&env);
}

/* Issue 13 (5): a pool larger than MemAvailable is refused up front, with the override named. */
static void test_host_memory(void)
{
	struct mm_config cfg = { .guest_bytes = 64 * MiB, .slack_bytes = 4 * MiB, .prefault = false,
				 .fake_mem_available = 32 * MiB, .aging = AGING_DEFAULTS };
	struct mm mm;
	char err[512];

	tu_case = "host-memory";
	CHECK_EQ(mm__create(&mm, &cfg, err, sizeof(err)), -ENOMEM);
	CHECKF(strstr(err, "needs 68 MiB") && strstr(err, "32 MiB available") && strstr(err, "--force-mem"), "%s", err);
	printf("refused: %s\n", err);
	cfg.force_mem = true;
	CHECKF(mm__create(&mm, &cfg, err, sizeof(err)) == 0, "%s", err);
	mm__destroy(&mm);
}

/* Issue 13 (2): without a prefault the pool's huge blocks are unknown at start; defrag must
 * not silently do nothing: it faults the free blocks in as huge pages and promotes. */
static void test_no_prefault(void)
{
	struct dc_env env;
	struct defrag_stats st;
	uint32_t free_not_huge = 0;

	tu_case = "no-prefault";
	create_elastic(&env, 64, 4, 64, 0.9, tu_seed + 2, false);
	run(&env, DEFRAG_BORROW_OFF, &st);
	dc_print("no prefault, borrow off", &st);
	printf("  %u blocks made huge pages first (faulted in or collapsed)\n", st.blocks_faulted_lazily);
	CHECK(st.blocks_faulted_lazily > 0);
	CHECK(st.regions_achievable > 0);
	CHECK_EQ(st.regions_backed_2m, st.regions_achievable);
	run(&env, DEFRAG_BORROW_AUTO, &st);
	CHECK_EQ(st.regions_backed_2m, env.mm.map.nr_regions);
	for (uint32_t b = 0; b < env.mm.pool.nr_blocks; b++) {
		frame_t head;
		unsigned order;

		free_not_huge += pool__block_present(&env.mm.pool, b) && !env.mm.pool.block_huge[b] &&
				 buddy__free_block_of(&env.mm.buddy, b << MM_PAGEBLOCK_ORDER, &head, &order) &&
				 order >= MM_PAGEBLOCK_ORDER;
	}
	CHECK_EQ(free_not_huge, 0);
	dc_destroy(&env);
}

int main(int argc, char **argv)
{
	tu_seed = tu_base_seed(argc, argv, 0xb0440);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_auto();
	test_off_and_bounded();
	test_host_memory();
	test_no_prefault();
	printf("test_borrow: ok\n");
	return 0;
}
