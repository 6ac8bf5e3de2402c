/* test_fragindex.c: fragmentation index, unusable index and compaction score against the kernel formulas. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "mm/buddy.h"
#include "tests/check.h"

/*
 * Reference versions, written from the kernel's documentation of the formulas
 * (mm/vmstat.c, mm/compaction.c) in floating point rather than copied from the
 * integer code: every kernel div_u64() is a floor of an exact quotient.
 *
 *   fragmentation index = 1 - (1 + free_pages / requested) / free_blocks_total
 *     (x1000, each division rounded down), 0 with no free blocks, -1000 when a
 *     block of the order is free;
 *   unusable index = (free_pages - pages in blocks of the order or more) / free_pages
 *     (x1000), 1000 when nothing is free;
 *   extfrag = the same x100, 0 when nothing is free; the proactive score is extfrag
 *     at the huge page order.
 */
struct ref_info {
	double free_pages, total, suitable_pages; /* suitable_pages: pages in blocks >= order */
};

static struct ref_info ref_info(const uint64_t nr_free[MM_MAX_ORDER], unsigned order)
{
	struct ref_info r = { 0, 0, 0 };

	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		double pages = ldexp((double)nr_free[o], (int)o);

		r.total += (double)nr_free[o];
		r.free_pages += pages;
		if (o >= order)
			r.suitable_pages += pages;
	}
	return r;
}

static int ref_fragindex(const uint64_t nr_free[MM_MAX_ORDER], unsigned order)
{
	struct ref_info r = ref_info(nr_free, order);
	double requested = ldexp(1.0, (int)order);

	if (r.total == 0)
		return 0;
	if (r.suitable_pages >= requested)
		return -1000;
	return (int)(1000 - floor((1000 + floor(r.free_pages * 1000 / requested)) / r.total));
}

static int ref_unusable(const uint64_t nr_free[MM_MAX_ORDER], unsigned order)
{
	struct ref_info r = ref_info(nr_free, order);

	if (r.free_pages == 0)
		return 1000;
	return (int)floor((r.free_pages - r.suitable_pages) * 1000 / r.free_pages);
}

static unsigned ref_extfrag(const uint64_t nr_free[MM_MAX_ORDER], unsigned order)
{
	struct ref_info r = ref_info(nr_free, order);

	if (r.free_pages == 0)
		return 0;
	return (unsigned)floor((r.free_pages - r.suitable_pages) * 100 / r.free_pages);
}

/* Count free blocks per order by walking the free lists, not trusting nr_free. */
static void walk_nr_free(const struct buddy *b, uint64_t nr_free[MM_MAX_ORDER])
{
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		nr_free[o] = 0;
		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			for (frame_t h = b->area[o].head[mt]; h != FRAME_NONE; h = b->next[h])
				nr_free[o]++;
	}
}

static void info_from(const uint64_t nr_free[MM_MAX_ORDER], unsigned order, struct contig_page_info *info)
{
	struct ref_info r = ref_info(nr_free, order);

	info->free_pages = (uint64_t)r.free_pages;
	info->free_blocks_total = (uint64_t)r.total;
	info->free_blocks_suitable = (uint64_t)ldexp(r.suitable_pages, -(int)order);
}

static uint64_t nr_compared;

/* Compare every statistic of state b, for every order, with the references. */
static void compare_state(const struct buddy *b)
{
	uint64_t nr_free[MM_MAX_ORDER];

	walk_nr_free(b, nr_free);
	for (unsigned order = 0; order < MM_MAX_ORDER; order++) {
		struct contig_page_info info, want;

		buddy__contig_page_info(b, order, &info);
		info_from(nr_free, order, &want);
		CHECK_EQ(info.free_pages, want.free_pages);
		CHECK_EQ(info.free_blocks_total, want.free_blocks_total);
		CHECK_EQ(info.free_blocks_suitable, want.free_blocks_suitable);
		CHECK_EQ(info.free_pages, b->nr_free_frames);
		CHECKF(fragmentation_index(&info, order) == ref_fragindex(nr_free, order), "order %u: %d vs %d",
		       order, fragmentation_index(&info, order), ref_fragindex(nr_free, order));
		CHECKF(unusable_free_index(&info, order) == ref_unusable(nr_free, order), "order %u: %d vs %d",
		       order, unusable_free_index(&info, order), ref_unusable(nr_free, order));
		CHECKF(extfrag_for_order(b, order) == ref_extfrag(nr_free, order), "order %u: %u vs %u", order,
		       extfrag_for_order(b, order), ref_extfrag(nr_free, order));
		nr_compared++;
	}
	CHECK_EQ(buddy__fragmentation_score(b), ref_extfrag(nr_free, MM_HPAGE_ORDER));
}

/* Random buddy states: a pool driven by random allocations, frees and takes. */
static void random_states(uint64_t seed, struct tu_rng *outer)
{
	struct tu_rng r;
	struct buddy b;
	uint32_t n = (uint32_t)(1 + tu_below(outer, tu_chance(outer, 1, 2) ? 2048 : 12000));
	uint32_t nr_ops = 50 + (uint32_t)tu_below(outer, 300);
	frame_t *heads = malloc(sizeof(frame_t) * n);
	uint8_t *orders = malloc(n);
	uint32_t nr = 0;
	/* Bias each case towards small or large orders, so all index ranges show up. */
	unsigned max_order = (unsigned)tu_below(outer, MM_MAX_ORDER);

	tu_seed = seed;
	tu_rng_seed(&r, seed);
	CHECK(heads && orders);
	CHECK_EQ(buddy__init(&b, n), 0);
	compare_state(&b);
	for (uint32_t i = 0; i < nr_ops; i++) {
		uint64_t x = tu_below(&r, 100);

		if (x < 55) {
			unsigned order = (unsigned)tu_below(&r, max_order + 1);
			frame_t f = buddy__alloc(&b, order, (enum migratetype)tu_below(&r, MIGRATE_TYPES));

			if (f != FRAME_NONE) {
				heads[nr] = f;
				orders[nr++] = (uint8_t)order;
			}
		} else if (x < 85 && nr) {
			uint32_t k = (uint32_t)tu_below(&r, nr);

			buddy__free(&b, heads[k], orders[k]);
			heads[k] = heads[--nr];
			orders[k] = orders[nr];
		} else {
			frame_t f = (frame_t)tu_below(&r, n);

			if (buddy__take(&b, f) == 0) {
				heads[nr] = f;
				orders[nr++] = 0;
			}
		}
		if (tu_chance(&r, 1, 4))
			compare_state(&b);
	}
	compare_state(&b);
	buddy__exit(&b);
	free(heads);
	free(orders);
}

/* The formulas alone, on arbitrary (also huge) free counts. */
static void random_infos(struct tu_rng *r)
{
	for (int i = 0; i < 200000; i++) {
		uint64_t nr_free[MM_MAX_ORDER];
		uint64_t scale = 1ULL << tu_below(r, 21);
		unsigned order = (unsigned)tu_below(r, MM_MAX_ORDER);
		struct contig_page_info info;

		for (unsigned o = 0; o < MM_MAX_ORDER; o++)
			nr_free[o] = tu_chance(r, 1, 3) ? 0 : tu_below(r, scale);
		info_from(nr_free, order, &info);
		CHECKF(fragmentation_index(&info, order) == ref_fragindex(nr_free, order), "case %d order %u", i,
		       order);
		CHECKF(unusable_free_index(&info, order) == ref_unusable(nr_free, order), "case %d order %u", i, order);
		nr_compared++;
	}
}

static void test_edges(void)
{
	struct buddy b;
	struct contig_page_info info;
	frame_t f;

	tu_case = "edges";
	tu_seed = 0;

	/* No free memory at all: index 0 (lack of memory), unusable 1000, score 0. */
	CHECK_EQ(buddy__init(&b, 1024), 0);
	CHECK_EQ(buddy__alloc(&b, 10, MIGRATE_MOVABLE), 0);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		buddy__contig_page_info(&b, o, &info);
		CHECK_EQ(info.free_pages, 0);
		CHECK_EQ(fragmentation_index(&info, o), 0);
		CHECK_EQ(unusable_free_index(&info, o), 1000);
		CHECK_EQ(extfrag_for_order(&b, o), 0);
	}
	CHECK_EQ(buddy__fragmentation_score(&b), 0);
	compare_state(&b);

	/* Exactly suitable: one free block of exactly the requested order. */
	buddy__free(&b, 0, 10);
	CHECK_EQ(buddy__take_block(&b, 0, 9), 0);
	buddy__contig_page_info(&b, 9, &info);
	CHECK_EQ(info.free_blocks_suitable, 1);
	CHECK_EQ(fragmentation_index(&info, 9), -1000);
	CHECK_EQ(unusable_free_index(&info, 9), 0);
	CHECK_EQ(buddy__fragmentation_score(&b), 0);
	/* One order more is one block short: the kernel formula gives 1000 - 1500 = -500. */
	buddy__contig_page_info(&b, 10, &info);
	CHECK_EQ(fragmentation_index(&info, 10), -500);
	CHECK_EQ(unusable_free_index(&info, 10), 1000);
	compare_state(&b);
	buddy__exit(&b);

	/* Everything free, a power of two: all -1000, unusable 0. */
	CHECK_EQ(buddy__init(&b, 4096), 0);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		buddy__contig_page_info(&b, o, &info);
		CHECK_EQ(fragmentation_index(&info, o), -1000);
		CHECK_EQ(unusable_free_index(&info, o), 0);
	}
	CHECK_EQ(buddy__fragmentation_score(&b), 0);
	buddy__exit(&b);

	/* Everything free, 3000 frames = 2x1024 + 512 + 256 + 128 + 32 + 16 + 8 (by hand). */
	CHECK_EQ(buddy__init(&b, 3000), 0);
	buddy__contig_page_info(&b, 10, &info);
	CHECK_EQ(info.free_blocks_total, 8);
	CHECK_EQ(info.free_blocks_suitable, 2);
	CHECK_EQ(unusable_free_index(&info, 10), 317);         /* 952000 / 3000 */
	CHECK_EQ(buddy__fragmentation_score(&b), 14);          /* (3000 - 5*512) * 100 / 3000 */
	compare_state(&b);
	buddy__exit(&b);

	/* Checkerboard: every other frame taken, 512 single free frames of 1024. */
	CHECK_EQ(buddy__init(&b, 1024), 0);
	for (f = 0; f < 1024; f += 2)
		CHECK_EQ(buddy__take(&b, f), 0);
	buddy__contig_page_info(&b, 9, &info);
	CHECK_EQ(info.free_pages, 512);
	CHECK_EQ(info.free_blocks_total, 512);
	CHECK_EQ(fragmentation_index(&info, 9), 997);          /* 1000 - (1000 + 1000) / 512 */
	CHECK_EQ(unusable_free_index(&info, 9), 1000);
	CHECK_EQ(buddy__fragmentation_score(&b), 100);
	buddy__contig_page_info(&b, 0, &info);
	CHECK_EQ(fragmentation_index(&info, 0), -1000);
	buddy__contig_page_info(&b, 1, &info);
	CHECK_EQ(fragmentation_index(&info, 1), 499); /* 1000 - (1000 + 256000) / 512 */
	compare_state(&b);
	buddy__exit(&b);
}

int main(int argc, char **argv)
{
	uint64_t base = tu_base_seed(argc, argv, 0xf4a91dceULL);
	struct tu_rng r;
	struct timespec t0, t1;
	int nr_states = 1500;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_edges();
	tu_case = "random-states";
	tu_rng_seed(&r, base);
	for (int i = 0; i < nr_states; i++)
		random_states(tu_next(&r), &r);
	tu_case = "random-infos";
	tu_seed = base;
	random_infos(&r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("test_fragindex: OK: %d random pools, %llu (state, order) comparisons, seed 0x%llx, %.1f s\n",
	       nr_states, (unsigned long long)nr_compared, (unsigned long long)base,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
