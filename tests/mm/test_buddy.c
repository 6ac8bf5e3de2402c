/* test_buddy.c: property-based tests of the buddy allocator against a per-frame reference model. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "mm/buddy.h"
#include "tests/check.h"

/* The reference model: which frames are allocated, and the blocks handed out. */
struct model {
	uint32_t n;
	uint8_t *used;     /* 1 if the frame is allocated */
	uint32_t *prefix;  /* prefix[i] = allocated frames in [0, i) (rebuilt on demand) */
	frame_t *blk_head; /* allocated blocks, unordered */
	uint8_t *blk_order;
	uint32_t nr_blocks;
	uint64_t nr_used;
};

static struct model *model__new(uint32_t n)
{
	struct model *m = calloc(1, sizeof(*m));

	CHECK(m);
	m->n = n;
	m->used = calloc(n, 1);
	m->prefix = calloc((size_t)n + 1, sizeof(uint32_t));
	m->blk_head = calloc(n, sizeof(frame_t));
	m->blk_order = calloc(n, 1);
	CHECK(m->used && m->prefix && m->blk_head && m->blk_order);
	return m;
}

static void model__free(struct model *m)
{
	free(m->used);
	free(m->prefix);
	free(m->blk_head);
	free(m->blk_order);
	free(m);
}

static void model__rebuild_prefix(struct model *m)
{
	m->prefix[0] = 0;
	for (uint32_t i = 0; i < m->n; i++)
		m->prefix[i + 1] = m->prefix[i] + m->used[i];
}

/* [f, f + len) lies in the pool and is entirely free (prefix must be fresh). */
static int model__range_free(const struct model *m, uint64_t f, uint64_t len)
{
	return f + len <= m->n && m->prefix[f + len] == m->prefix[f];
}

static void model__mark(struct model *m, frame_t f, unsigned order)
{
	for (uint32_t i = 0; i < (1U << order); i++) {
		CHECKF(!m->used[f + i], "frame %u handed out twice (block %u order %u)", f + i, f, order);
		m->used[f + i] = 1;
	}
	m->blk_head[m->nr_blocks] = f;
	m->blk_order[m->nr_blocks] = (uint8_t)order;
	m->nr_blocks++;
	m->nr_used += 1U << order;
}

static void model__unmark(struct model *m, uint32_t idx)
{
	frame_t f = m->blk_head[idx];
	unsigned order = m->blk_order[idx];

	for (uint32_t i = 0; i < (1U << order); i++) {
		CHECK(m->used[f + i]);
		m->used[f + i] = 0;
	}
	m->nr_blocks--;
	m->blk_head[idx] = m->blk_head[m->nr_blocks];
	m->blk_order[idx] = m->blk_order[m->nr_blocks];
	m->nr_used -= 1U << order;
}

/*
 * The free blocks a fully merged buddy allocator must hold for the model's free
 * frames: scanning left to right, the largest aligned, in-range, entirely free block
 * starting at each free frame. Fills per-order counts, per (order, type) counts using
 * the allocator's pageblock types, and head_order[f] (order + 1 for heads, 0 else).
 */
static void model__canonical(struct model *m, const struct buddy *b, uint64_t nr_free[MM_MAX_ORDER],
			     uint64_t nr_free_mt[MM_MAX_ORDER][MIGRATE_TYPES], uint8_t *head_order)
{
	memset(nr_free, 0, sizeof(uint64_t) * MM_MAX_ORDER);
	memset(nr_free_mt, 0, sizeof(uint64_t) * MM_MAX_ORDER * MIGRATE_TYPES);
	memset(head_order, 0, m->n);
	model__rebuild_prefix(m);
	for (uint64_t f = 0; f < m->n;) {
		int o;

		if (m->used[f]) {
			f++;
			continue;
		}
		for (o = MM_MAX_ORDER - 1; o > 0; o--)
			if (f % (1ULL << o) == 0 && model__range_free(m, f, 1ULL << o))
				break;
		nr_free[o]++;
		nr_free_mt[o][b->pageblock_mt[f / MM_PAGEBLOCK_FRAMES]]++;
		head_order[f] = (uint8_t)(o + 1);
		f += 1ULL << o;
	}
}

struct stats {
	uint64_t ops, allocs, alloc_fail, frees, takes, take_fail, take_blocks, fallbacks, steals, checks;
};

static void full_check(struct buddy *b, struct model *m, uint8_t *head_order, struct stats *st)
{
	uint64_t nr_free[MM_MAX_ORDER], nr_free_mt[MM_MAX_ORDER][MIGRATE_TYPES];
	char why[256];
	int ret = buddy__check(b, why, sizeof(why));

	CHECKF(ret == 0, "buddy__check: %s", why);
	model__canonical(m, b, nr_free, nr_free_mt, head_order);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		CHECKF(b->area[o].nr_free == nr_free[o], "order %u: nr_free %llu, model says %llu", o,
		       (unsigned long long)b->area[o].nr_free, (unsigned long long)nr_free[o]);
		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			CHECKF(b->area[o].nr_free_mt[mt] == nr_free_mt[o][mt], "order %u %s: %llu vs model %llu", o,
			       migratetype_names[mt], (unsigned long long)b->area[o].nr_free_mt[mt],
			       (unsigned long long)nr_free_mt[o][mt]);
	}
	/* free_block_of agrees with the canonical decomposition on every frame. */
	for (frame_t f = 0; f < m->n; f++) {
		frame_t h;
		unsigned o;
		bool is_free = buddy__free_block_of(b, f, &h, &o);

		CHECKF(is_free == !m->used[f], "frame %u: allocator says %s, model %s", f, is_free ? "free" : "used",
		       m->used[f] ? "used" : "free");
		CHECK(buddy__frame_is_free(b, f) == is_free);
		if (is_free) {
			CHECKF(head_order[h] == o + 1, "frame %u: block %u order %u, model head_order %u", f, h, o,
			       head_order[h]);
			CHECK(h <= f && f < h + (1U << o));
		}
	}
	st->checks++;
}

static unsigned random_order(struct tu_rng *r)
{
	/* Mostly small orders, sometimes pageblock-sized and larger. */
	uint64_t x = tu_below(r, 100);

	if (x < 45)
		return 0;
	if (x < 75)
		return 1 + (unsigned)tu_below(r, 3);
	if (x < 92)
		return 4 + (unsigned)tu_below(r, 5);
	return 9 + (unsigned)tu_below(r, 2);
}

static const enum migratetype fallback_order[MIGRATE_TYPES][2] = {
	[MIGRATE_UNMOVABLE] = { MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE },
	[MIGRATE_MOVABLE] = { MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE },
	[MIGRATE_RECLAIMABLE] = { MIGRATE_UNMOVABLE, MIGRATE_MOVABLE },
};

/* One allocation, with its outcome checked against the model and the lists before it. */
static void do_alloc(struct buddy *b, struct model *m, struct tu_rng *r, struct stats *st)
{
	unsigned order = random_order(r);
	enum migratetype mt = (enum migratetype)tu_below(r, MIGRATE_TYPES);
	struct free_area before[MM_MAX_ORDER];
	uint8_t pb_before[64];
	int own = -1, fb_order = -1;
	enum migratetype fb_mt = MIGRATE_TYPES;
	bool any_fit = false;
	frame_t f;

	memcpy(before, b->area, sizeof(before));
	if (b->nr_pageblocks <= sizeof(pb_before))
		memcpy(pb_before, b->pageblock_mt, b->nr_pageblocks);
	for (unsigned o = order; o < MM_MAX_ORDER; o++) {
		if (before[o].nr_free)
			any_fit = true;
		if (own < 0 && before[o].nr_free_mt[mt])
			own = (int)o;
	}
	for (int o = MM_MAX_ORDER - 1; own < 0 && fb_order < 0 && o >= (int)order; o--)
		for (int i = 0; i < 2 && fb_order < 0; i++)
			if (before[o].nr_free_mt[fallback_order[mt][i]]) {
				fb_order = o;
				fb_mt = fallback_order[mt][i];
			}

	f = buddy__alloc(b, order, mt);
	st->allocs++;
	if (f == FRAME_NONE) {
		CHECKF(!any_fit, "alloc order %u %s failed with free blocks of that order or more", order,
		       migratetype_names[mt]);
		st->alloc_fail++;
		return;
	}
	CHECKF(any_fit, "alloc order %u succeeded with no free block big enough", order);
	CHECKF(f < m->n && f % (1U << order) == 0 && (uint64_t)f + (1U << order) <= m->n,
	       "alloc order %u returned frame %u of %u", order, f, m->n);
	model__mark(m, f, order);

	if (own >= 0) {
		/* __rmqueue_smallest: the smallest block of the requested type was split. */
		CHECKF(buddy__pageblock_mt(b, f) == mt, "own-type alloc landed in a %s pageblock",
		       migratetype_names[buddy__pageblock_mt(b, f)]);
		CHECKF(b->area[own].nr_free_mt[mt] == before[own].nr_free_mt[mt] - 1,
		       "order %d %s list should have lost one block", own, migratetype_names[mt]);
		for (unsigned o = order; o < (unsigned)own && own < MM_PAGEBLOCK_ORDER; o++)
			CHECKF(b->area[o].nr_free_mt[mt] == before[o].nr_free_mt[mt] + 1,
			       "split of order %d left no order %u half on the %s list", own, o,
			       migratetype_names[mt]);
		if (b->nr_pageblocks <= sizeof(pb_before))
			CHECK(memcmp(pb_before, b->pageblock_mt, b->nr_pageblocks) == 0);
		return;
	}
	/* __rmqueue_fallback: the largest block of the first fallback type that has one. */
	st->fallbacks++;
	CHECK(fb_order >= 0);
	if (b->nr_pageblocks <= sizeof(pb_before))
		CHECKF(pb_before[f / MM_PAGEBLOCK_FRAMES] == fb_mt,
		       "fallback for %s order %u took from a %s pageblock, expected %s order %d",
		       migratetype_names[mt], order, migratetype_names[pb_before[f / MM_PAGEBLOCK_FRAMES]],
		       migratetype_names[fb_mt], fb_order);
	CHECKF(b->area[fb_order].nr_free_mt[fb_mt] < before[fb_order].nr_free_mt[fb_mt],
	       "fallback did not take an order %d %s block", fb_order, migratetype_names[fb_mt]);
	if (fb_order >= MM_PAGEBLOCK_ORDER / 2) {
		CHECKF(buddy__pageblock_mt(b, f) == mt, "order %d fallback should steal the pageblock", fb_order);
		st->steals++;
	} else {
		CHECKF(buddy__pageblock_mt(b, f) == fb_mt, "order %d fallback must not steal the pageblock", fb_order);
	}
}

static void do_free(struct buddy *b, struct model *m, struct tu_rng *r, struct stats *st)
{
	uint32_t idx;

	if (!m->nr_blocks)
		return;
	idx = (uint32_t)tu_below(r, m->nr_blocks);
	buddy__free(b, m->blk_head[idx], m->blk_order[idx]);
	model__unmark(m, idx);
	st->frees++;
}

static void do_take(struct buddy *b, struct model *m, struct tu_rng *r, struct stats *st)
{
	frame_t f = (frame_t)tu_below(r, m->n);
	bool was_free = !m->used[f];
	int ret = buddy__take(b, f);

	st->takes++;
	CHECKF(ret == (was_free ? 0 : -ENOENT), "take(%u) of a %s frame returned %d", f,
	       was_free ? "free" : "used", ret);
	if (ret == 0)
		model__mark(m, f, 0);
	else
		st->take_fail++;
}

static void do_take_block(struct buddy *b, struct model *m, struct tu_rng *r, struct stats *st)
{
	unsigned order = (unsigned)tu_below(r, MM_MAX_ORDER);
	frame_t f = (frame_t)(tu_below(r, m->n) & ~((1ULL << order) - 1));
	int expect, ret;

	model__rebuild_prefix(m);
	expect = model__range_free(m, f, 1ULL << order) ? 0 : -ENOENT;
	ret = buddy__take_block(b, f, order);
	st->take_blocks++;
	CHECKF(ret == expect, "take_block(%u, %u) returned %d, expected %d", f, order, ret, expect);
	if (ret == 0)
		model__mark(m, f, order);
	if (order > 0 && f + 1 < m->n)
		CHECK(buddy__take_block(b, f + 1, order) == -EINVAL);
}

/* Everything allocated goes back: the pool must be the initial maximal blocks again. */
static void drain_and_compare(struct buddy *b, struct model *m, const struct free_area *initial)
{
	char why[256];

	while (m->nr_blocks) {
		buddy__free(b, m->blk_head[m->nr_blocks - 1], m->blk_order[m->nr_blocks - 1]);
		model__unmark(m, m->nr_blocks - 1);
	}
	CHECKF(buddy__check(b, why, sizeof(why)) == 0, "after drain: %s", why);
	CHECK_EQ(b->nr_free_frames, m->n);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		CHECKF(b->area[o].nr_free == initial[o].nr_free, "after drain order %u: %llu blocks, initially %llu",
		       o, (unsigned long long)b->area[o].nr_free, (unsigned long long)initial[o].nr_free);
}

static void run_case(uint64_t seed, uint32_t n, uint32_t nr_ops, struct stats *st)
{
	struct tu_rng r;
	struct buddy b;
	struct model *m = model__new(n);
	uint8_t *head_order = malloc(n);
	struct free_area initial[MM_MAX_ORDER];
	uint32_t every = n <= 512 ? 1 : n / 512 + 1;
	uint64_t expect_init_blocks = 0;

	tu_seed = seed;
	tu_rng_seed(&r, seed);
	CHECK(head_order);
	CHECK_EQ(buddy__init(&b, n), 0);
	memcpy(initial, b.area, sizeof(initial));
	/* Initial state: one block per set bit of n above order 10, and the 1024-blocks. */
	for (unsigned o = 0; o < MM_MAX_ORDER - 1; o++)
		expect_init_blocks += (n >> o) & 1;
	expect_init_blocks += n >> (MM_MAX_ORDER - 1);
	{
		uint64_t total = 0;

		for (unsigned o = 0; o < MM_MAX_ORDER; o++)
			total += initial[o].nr_free;
		CHECK_EQ(total, expect_init_blocks);
	}
	full_check(&b, m, head_order, st);

	for (uint32_t i = 0; i < nr_ops; i++) {
		uint64_t x = tu_below(&r, 100);

		if (x < 45)
			do_alloc(&b, m, &r, st);
		else if (x < 85)
			do_free(&b, m, &r, st);
		else if (x < 93)
			do_take(&b, m, &r, st);
		else if (x < 98)
			do_take_block(&b, m, &r, st);
		else
			buddy__set_pageblock_mt(&b, (frame_t)tu_below(&r, n), (enum migratetype)tu_below(&r, MIGRATE_TYPES));
		st->ops++;
		/* No leak: free + allocated == total after every operation. */
		CHECKF(b.nr_free_frames + m->nr_used == n, "op %u: %llu free + %llu used != %u", i,
		       (unsigned long long)b.nr_free_frames, (unsigned long long)m->nr_used, n);
		if (i % every == 0 || i + 1 == nr_ops)
			full_check(&b, m, head_order, st);
	}
	drain_and_compare(&b, m, initial);
	buddy__exit(&b);
	free(head_order);
	model__free(m);
}

/* 3000 frames = 2*1024 + 512 + 256 + 128 + 32 + 16 + 8 */
static void fixed_init_3000(struct buddy *b)
{
	uint64_t counts[MIGRATE_TYPES];

	CHECK_EQ(buddy__init(b, 3000), 0);
	CHECK_EQ(b->area[10].nr_free, 2);
	CHECK_EQ(b->area[9].nr_free, 1);
	CHECK_EQ(b->area[8].nr_free, 1);
	CHECK_EQ(b->area[7].nr_free, 1);
	CHECK_EQ(b->area[6].nr_free, 0);
	CHECK_EQ(b->area[5].nr_free, 1);
	CHECK_EQ(b->area[4].nr_free, 1);
	CHECK_EQ(b->area[3].nr_free, 1);
	CHECK_EQ(b->nr_pageblocks, 6);
	buddy__pageblock_counts(b, counts);
	CHECK_EQ(counts[MIGRATE_MOVABLE], 6);
}

static void fixed_alloc_and_steal(struct buddy *b)
{
	frame_t f, g, h;
	unsigned o;

	/* Smallest first: order 3 comes from the order-3 block at 2992. */
	f = buddy__alloc(b, 3, MIGRATE_MOVABLE);
	CHECK_EQ(f, 2992);
	/* Next order 3 splits the order-4 block at 2976. */
	f = buddy__alloc(b, 3, MIGRATE_MOVABLE);
	CHECK_EQ(f, 2976);
	CHECK_EQ(b->area[3].nr_free, 1);
	CHECK(buddy__free_block_of(b, 2984, &h, &o) && h == 2984 && o == 3);
	buddy__free(b, 2976, 3);
	CHECK(buddy__free_block_of(b, 2980, &h, &o) && h == 2976 && o == 4);

	/* Unmovable falls back on the largest movable block (order 10 at 0), steals both pageblocks. */
	f = buddy__alloc(b, 0, MIGRATE_UNMOVABLE);
	CHECK_EQ(f, 0);
	CHECK_EQ(buddy__pageblock_mt(b, 0), MIGRATE_UNMOVABLE);
	CHECK_EQ(buddy__pageblock_mt(b, 512), MIGRATE_UNMOVABLE);
	CHECK_EQ(buddy__pageblock_mt(b, 1024), MIGRATE_MOVABLE);
	/* The rest of that block is on the unmovable lists now. */
	CHECK_EQ(b->area[9].nr_free_mt[MIGRATE_UNMOVABLE], 1);
	g = buddy__alloc(b, 0, MIGRATE_UNMOVABLE);
	CHECK_EQ(g, 1);
	buddy__free(b, f, 0);
	buddy__free(b, g, 0);
	CHECK_EQ(b->area[10].nr_free_mt[MIGRATE_UNMOVABLE], 1);
}

static void fixed_take(struct buddy *b)
{
	frame_t h;
	unsigned o;

	/* take: split the order-10 block at 1024 around frame 1500. */
	CHECK_EQ(buddy__take(b, 1500), 0);
	CHECK(!buddy__frame_is_free(b, 1500));
	CHECK_EQ(buddy__take(b, 1500), -ENOENT);
	CHECK(buddy__free_block_of(b, 1501, &h, &o) && h == 1501 && o == 0);
	CHECK(buddy__free_block_of(b, 1024, &h, &o) && h == 1024 && o == 8);
	CHECK(buddy__free_block_of(b, 1536, &h, &o) && h == 1536 && o == 9);
	buddy__free(b, 1500, 0);
	CHECK(buddy__free_block_of(b, 1500, &h, &o) && h == 1024 && o == 10);

	/* Moving a pageblock's type moves its free blocks between lists. */
	buddy__set_pageblock_mt(b, 2048, MIGRATE_RECLAIMABLE);
	CHECK_EQ(b->area[9].nr_free_mt[MIGRATE_RECLAIMABLE], 1);
}

/* Small fallback (order 3 < 4) from reclaimable does not steal. */
static void fixed_small_fallback(void)
{
	struct buddy c;
	char why[128];
	frame_t f;

	CHECK_EQ(buddy__init(&c, 8), 0);
	CHECK_EQ(c.area[3].nr_free_mt[MIGRATE_MOVABLE], 1);
	f = buddy__alloc(&c, 0, MIGRATE_UNMOVABLE);
	CHECK_EQ(f, 0);
	CHECK_EQ(buddy__pageblock_mt(&c, 0), MIGRATE_MOVABLE);
	CHECK_EQ(c.area[2].nr_free_mt[MIGRATE_MOVABLE], 1);
	CHECK(buddy__check(&c, why, sizeof(why)) == 0);
	CHECK_EQ(buddy__alloc(&c, 3, MIGRATE_MOVABLE), FRAME_NONE);
	CHECK_EQ(buddy__take_block(&c, 4, 2), 0);
	CHECK_EQ(buddy__take_block(&c, 4, 2), -ENOENT);
	CHECK_EQ(buddy__take_block(&c, 8, 0), -ENOENT);
	CHECK_EQ(buddy__alloc(&c, 0, MIGRATE_MOVABLE), 1);
	CHECK_EQ(buddy__alloc(&c, 1, MIGRATE_MOVABLE), 2);
	CHECK_EQ(buddy__alloc(&c, 0, MIGRATE_MOVABLE), FRAME_NONE);
	CHECK_EQ(c.nr_free_frames, 0);
	buddy__exit(&c);
}

/* buddy__check catches a corrupted state; bad sizes and the metadata estimate. */
static void fixed_check_and_limits(void)
{
	struct buddy b;
	char why[128];

	CHECK_EQ(buddy__init(&b, 1024), 0);
	CHECK(buddy__alloc(&b, 0, MIGRATE_MOVABLE) == 0);
	b.frame_order[1] = 0; /* free head of order 0 forgotten */
	CHECK(buddy__check(&b, why, sizeof(why)) < 0);
	buddy__exit(&b);
	CHECK_EQ(buddy__init(&b, 1024), 0);
	b.area[10].nr_free_mt[MIGRATE_MOVABLE]++;
	CHECK(buddy__check(&b, why, sizeof(why)) < 0);
	buddy__exit(&b);

	CHECK(buddy__init(&b, 0) == -EINVAL);
	/* About 9 bytes per frame. */
	CHECK(buddy__metadata_bytes(1U << 20) < 10U * (1U << 20));
	CHECK(buddy__metadata_bytes(1U << 20) >= 9U * (1U << 20));
}

/* Exact scenarios whose outcome is known by hand. */
static void test_fixed(void)
{
	struct buddy b;

	tu_case = "fixed";
	tu_seed = 0;
	fixed_init_3000(&b);
	fixed_alloc_and_steal(&b);
	fixed_take(&b);
	fixed_small_fallback();
	buddy__exit(&b);
	fixed_check_and_limits();
}

int main(int argc, char **argv)
{
	static const uint32_t sizes[] = { 1, 2, 3, 7, 64, 100, 511, 512, 513, 1023, 1024, 1025, 1536,
					  2047, 2048, 3000, 4096 + 300, 5 * 512 + 17, 10000 };
	uint64_t base = tu_base_seed(argc, argv, 0x5eedb0dd1e5ULL);
	struct stats st = { 0 };
	uint64_t seq = 0;
	struct timespec t0, t1;
	struct tu_rng r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_fixed();

	tu_case = "random";
	tu_rng_seed(&r, base);
	/* Fixed sizes, then random sizes (small ones more often). */
	for (int rep = 0; rep < 20; rep++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++, seq++)
			run_case(tu_next(&r), sizes[i], 300 + (uint32_t)tu_below(&r, 300), &st);
	for (int i = 0; i < 1200; i++, seq++) {
		uint32_t n = (uint32_t)(tu_chance(&r, 3, 4) ? 1 + tu_below(&r, 1500) : 1 + tu_below(&r, 8000));

		run_case(tu_next(&r), n, 100 + (uint32_t)tu_below(&r, 400), &st);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(st.alloc_fail > 0 && st.fallbacks > 0 && st.steals > 0 && st.take_fail > 0);
	printf("test_buddy: OK: %llu sequences, %llu ops (%llu allocs, %llu failed, %llu fallbacks, %llu steals, "
	       "%llu frees, %llu takes, %llu take_blocks), %llu full checks, seed 0x%llx, %.1f s\n",
	       (unsigned long long)seq, (unsigned long long)st.ops, (unsigned long long)st.allocs,
	       (unsigned long long)st.alloc_fail, (unsigned long long)st.fallbacks, (unsigned long long)st.steals,
	       (unsigned long long)st.frees, (unsigned long long)st.takes, (unsigned long long)st.take_blocks,
	       (unsigned long long)st.checks, (unsigned long long)base,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
