/* test_aging.c: aged layouts: determinism, linear at age 0, exact counts, grouped unmovable ballast. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "mm/aging.h"
#include "tests/check.h"

struct layout {
	struct buddy b;
	struct gpamap m;
};

static void place(struct layout *l, uint32_t guest_frames, uint32_t slack_frames, const struct aging_config *cfg)
{
	char err[256];
	int ret;

	CHECK(buddy__init(&l->b, guest_frames + slack_frames) == 0);
	CHECK(gpamap__init(&l->m, guest_frames, guest_frames + slack_frames) == 0);
	ret = aging__place(&l->b, &l->m, cfg, err, sizeof(err));
	CHECKF(ret == 0, "aging__place: %d %s", ret, err);
}

static void drop(struct layout *l)
{
	buddy__exit(&l->b);
	gpamap__exit(&l->m);
}

static bool same_layout(const struct layout *a, const struct layout *b)
{
	const struct buddy *x = &a->b, *y = &b->b;

	return a->m.nr_frames == b->m.nr_frames &&
	       !memcmp(a->m.gpfn_frame, b->m.gpfn_frame, a->m.nr_gpfns * sizeof(frame_t)) &&
	       !memcmp(a->m.frame_owner, b->m.frame_owner, a->m.nr_frames) &&
	       !memcmp(x->frame_order, y->frame_order, x->nr_frames) &&
	       !memcmp(x->next, y->next, x->nr_frames * sizeof(frame_t)) &&
	       !memcmp(x->pageblock_mt, y->pageblock_mt, x->nr_pageblocks) &&
	       !memcmp(x->area, y->area, sizeof(x->area));
}

/* Every structural property the model promises, for one layout. */
static void check_layout(const struct layout *l, const struct aging_config *cfg, uint32_t guest_frames,
			 uint32_t slack_frames)
{
	const struct gpamap *m = &l->m;
	const struct buddy *b = &l->b;
	uint32_t regions = guest_frames / 512, nr_blocks = m->nr_frames / 512;
	/* The expected counts, straight from the model (not from aging__counts). */
	uint64_t ballast = (uint64_t)llround(cfg->ballast * slack_frames);
	uint64_t unmovable = (uint64_t)llround(cfg->unmovable * (double)ballast);
	uint64_t scatter = (uint64_t)llround(cfg->unmovable_scatter * (double)unmovable);
	uint64_t grouped = unmovable - scatter;
	uint32_t scattered_regions = (uint32_t)llround(cfg->age * regions);
	uint64_t um_blocks = 0, free_in_map = 0;
	uint64_t mt_counts[MIGRATE_TYPES];
	struct aging_counts c;
	char why[256];

	CHECKF(buddy__check(b, why, sizeof(why)) == 0, "%s", why);
	CHECKF(gpamap__check(m, why, sizeof(why)) == 0, "%s", why);
	CHECK(aging__counts(cfg, guest_frames, m->nr_frames, &c, NULL, 0) == 0);

	CHECK_EQ(m->nr_owned[FRAME_GUEST], guest_frames);
	CHECK_EQ(m->nr_owned[FRAME_BALLAST_UNMOVABLE], unmovable);
	CHECK_EQ(m->nr_owned[FRAME_BALLAST_MOVABLE], ballast - unmovable);
	CHECK_EQ(m->nr_owned[FRAME_FREE], slack_frames - ballast);
	CHECK_EQ(m->nr_owned[FRAME_ISOLATED], 0);
	/* Buddy and map agree frame by frame. */
	for (frame_t f = 0; f < m->nr_frames; f++) {
		bool is_free = gpamap__owner(m, f) == FRAME_FREE;

		CHECKF(buddy__frame_is_free(b, f) == is_free, "frame %u: owner %s, buddy free %d", f,
		       frame_owner_names[gpamap__owner(m, f)], !is_free);
		free_in_map += is_free;
	}
	CHECK_EQ(b->nr_free_frames, free_in_map);

	/* Regions: linear ones are identity, round(age * R) are scattered and not in order. */
	CHECK_EQ(gpamap__count_in_order(m), regions - scattered_regions);
	for (uint32_t r = 0; r < regions; r++)
		if (gpamap__region_in_order(m, r))
			CHECK_EQ(gpamap__frame(m, r * 512), r * 512);
	if (cfg->age == 0.0)
		for (gpfn_t g = 0; g < guest_frames; g++)
			CHECK_EQ(gpamap__frame(m, g), g);

	/* Unmovable ballast is grouped: few pageblocks hold any. */
	buddy__pageblock_counts(b, mt_counts);
	CHECK_EQ(mt_counts[MIGRATE_UNMOVABLE], c.unmovable_blocks);
	for (uint32_t blk = 0; blk < nr_blocks; blk++) {
		uint32_t n = 0;

		for (uint32_t p = 0; p < 512; p++)
			n += gpamap__owner(m, blk * 512 + p) == FRAME_BALLAST_UNMOVABLE;
		um_blocks += n > 0;
		if (buddy__pageblock_mt(b, blk * 512) == MIGRATE_UNMOVABLE)
			CHECKF(n > 0, "unmovable pageblock %u holds no unmovable frame", blk);
	}
	/* The partial last unmovable block is scattered instead when its free rest does not fit. */
	if ((grouped + 511) / 512 * 512 + scatter + (ballast - unmovable) > slack_frames) {
		scatter += grouped % 512;
		grouped -= grouped % 512;
	}
	CHECK_EQ(c.unmovable_scattered, scatter);
	CHECK_EQ(c.unmovable_blocks, (grouped + 511) / 512);
	CHECKF(um_blocks <= (grouped + 511) / 512 + scatter,
	       "%llu pageblocks hold unmovable frames; U %llu, scattered %llu", (unsigned long long)um_blocks,
	       (unsigned long long)unmovable, (unsigned long long)scatter);
	CHECK(um_blocks <= c.unmovable_blocks + c.unmovable_scattered);
}

static void test_counts_and_structure(void)
{
	static const struct {
		double age, ballast, unmovable, scatter;
		uint32_t guest, slack;
	} cases[] = {
		{ 0.0, 0.5, 0.25, 0.002, 32768, 8192 },
		{ 0.25, 0.5, 0.25, 0.002, 32768, 8192 },
		{ 0.5, 0.7, 0.4, 0.01, 32768, 16384 },
		{ 0.9, 0.5, 0.25, 0.002, 32768, 8192 },
		{ 1.0, 1.0, 0.5, 0.0, 16384, 4096 },   /* all slack is ballast: no room for waste */
		{ 1.0, 1.0, 0.3, 0.05, 16384, 4096 },
		{ 0.5, 0.0, 0.0, 0.0, 16384, 0 },      /* no slack at all */
		{ 0.33, 0.9, 1.0, 0.0, 8192, 8192 },   /* ballast all unmovable */
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aging_config cfg = AGING_DEFAULTS;
		struct layout l;
		char name[64];

		snprintf(name, sizeof(name), "counts#%u", i);
		tu_case = name;
		cfg.age = cases[i].age;
		cfg.ballast = cases[i].ballast;
		cfg.unmovable = cases[i].unmovable;
		cfg.unmovable_scatter = cases[i].scatter;
		cfg.seed = tu_seed + i;
		place(&l, cases[i].guest, cases[i].slack, &cfg);
		check_layout(&l, &cfg, cases[i].guest, cases[i].slack);
		drop(&l);
	}
}

static void test_determinism(void)
{
	struct aging_config cfg = AGING_DEFAULTS;
	struct layout a, b, c;

	tu_case = "determinism";
	cfg.age = 0.6;
	cfg.seed = tu_seed;
	place(&a, 32768, 8192, &cfg);
	place(&b, 32768, 8192, &cfg);
	CHECK(same_layout(&a, &b));
	cfg.seed = tu_seed + 1;
	place(&c, 32768, 8192, &cfg);
	CHECK(!same_layout(&a, &c));
	CHECK(memcmp(a.m.gpfn_frame, c.m.gpfn_frame, a.m.nr_gpfns * sizeof(frame_t)) != 0);
	drop(&a);
	drop(&b);
	drop(&c);
}

static void test_age0_layout(void)
{
	struct aging_config cfg = AGING_DEFAULTS;
	struct layout l;

	tu_case = "age0";
	cfg.seed = tu_seed;
	place(&l, 16384, 8192, &cfg);
	/* Guest blocks are whole: nothing else lives below the end of the guest. */
	for (frame_t f = 0; f < 16384; f++)
		CHECK_EQ(gpamap__owner(&l.m, f), FRAME_GUEST);
	CHECK_EQ(gpamap__count_runs(&l.m), 1);
	drop(&l);
}

static void test_bad_config(void)
{
	struct aging_config cfg = AGING_DEFAULTS;
	struct layout l;
	char err[256];

	tu_case = "bad-config";
	CHECK(buddy__init(&l.b, 2048) == 0);
	CHECK(gpamap__init(&l.m, 1024, 2048) == 0);
	cfg.age = 1.5;
	CHECK(aging__place(&l.b, &l.m, &cfg, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "[0, 1]"));
	cfg.age = NAN;
	CHECK(aging__place(&l.b, &l.m, &cfg, err, sizeof(err)) == -EINVAL);
	cfg.age = 0.5;
	CHECK(buddy__alloc(&l.b, 0, MIGRATE_MOVABLE) != FRAME_NONE); /* not fresh any more */
	CHECK(aging__place(&l.b, &l.m, &cfg, err, sizeof(err)) == -EINVAL);
	drop(&l);
	CHECK(buddy__init(&l.b, 2000) == 0);
	CHECK(gpamap__init(&l.m, 1000, 2000) == 0);
	CHECK(aging__place(&l.b, &l.m, &cfg, err, sizeof(err)) == -EINVAL); /* not multiples of 512 */
	drop(&l);
}

static void test_rng(void)
{
	struct rng a, b;
	uint64_t hist[10] = { 0 };
	const int n = 100000;

	tu_case = "rng";
	rng__seed(&a, 42);
	rng__seed(&b, 42);
	for (int i = 0; i < 1000; i++)
		CHECK(rng__next(&a) == rng__next(&b));
	/* Known first output of xoshiro256** seeded by splitmix64(0): pins the algorithm. */
	rng__seed(&a, 0);
	CHECK(rng__next(&a) == 0x99ec5f36cb75f2b4ULL);
	for (int i = 0; i < n; i++) {
		uint64_t v = rng__below(&a, 10);
		double u = rng__unit(&a);

		CHECK(v < 10);
		CHECK(u >= 0.0 && u < 1.0);
		hist[v]++;
	}
	for (int i = 0; i < 10; i++)
		CHECKF(hist[i] > n / 10 * 0.95 && hist[i] < n / 10 * 1.05, "bucket %d: %llu", i,
		       (unsigned long long)hist[i]);
	CHECK(rng__below(&a, 1) == 0);
}

/* 1 GiB guest + 128 MiB slack, age 0.9: the bench has the careful figure; this guards against O(n^2). */
static void test_speed_1g(void)
{
	struct aging_config cfg = AGING_DEFAULTS;
	struct timespec t0, t1;
	struct layout l;
	double ms;

	tu_case = "speed";
	cfg.age = 0.9;
	cfg.seed = 7;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	place(&l, 262144, 32768, &cfg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("1 GiB guest + 128 MiB slack, age 0.9: init + aging %.1f ms, %llu runs\n", ms,
	       (unsigned long long)gpamap__count_runs(&l.m));
	CHECKF(ms < 1000, "aging 1 GiB took %.1f ms", ms);
	CHECK_EQ(gpamap__count_in_order(&l.m), 512 - 461);
	drop(&l);
}

int main(int argc, char **argv)
{
	tu_seed = tu_base_seed(argc, argv, 0xa9e);
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_rng();
	test_bad_config();
	test_determinism();
	test_age0_layout();
	test_counts_and_structure();
	test_speed_1g();
	printf("test_aging: ok\n");
	return 0;
}
