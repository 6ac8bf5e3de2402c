/* test_gpamap.c: property-based tests of the GPA map and reverse map against a simple model. */
#include <string.h>
#include <time.h>

#include "mm/gpamap.h"
#include "tests/check.h"

struct model {
	uint32_t nr_gpfns, nr_frames;
	frame_t *g2f;    /* FRAME_NONE if unbacked */
	uint8_t *owner;  /* enum frame_owner */
};

/* Runs counted the long way: start at each backed gpfn, extend while both sides advance by one. */
static uint64_t brute_runs(const struct model *md, uint64_t g, uint64_t end)
{
	uint64_t runs = 0;

	if (end > md->nr_gpfns)
		end = md->nr_gpfns;
	while (g < end) {
		uint64_t j = g + 1;

		if (md->g2f[g] == FRAME_NONE) {
			g++;
			continue;
		}
		while (j < end && md->g2f[j] != FRAME_NONE && (uint64_t)md->g2f[j] == md->g2f[g] + (j - g))
			j++;
		runs++;
		g = j;
	}
	return runs;
}

static bool brute_in_order(const struct model *md, uint32_t r)
{
	uint64_t start = (uint64_t)r * 512;

	if (start + 512 > md->nr_gpfns)
		return false;
	for (uint32_t i = 0; i < 512; i++) {
		frame_t f = md->g2f[start + i];

		if (f == FRAME_NONE || f % 512 != i || f - i != md->g2f[start])
			return false;
	}
	return true;
}

/* A random frame with FRAME_FREE in the model, or FRAME_NONE after a few tries and a scan. */
static frame_t pick_free_frame(const struct model *md, struct tu_rng *r)
{
	frame_t f;

	for (int i = 0; i < 16; i++) {
		f = (frame_t)tu_below(r, md->nr_frames);
		if (md->owner[f] == FRAME_FREE)
			return f;
	}
	f = (frame_t)tu_below(r, md->nr_frames);
	for (uint32_t i = 0; i < md->nr_frames; i++, f = (f + 1) % md->nr_frames)
		if (md->owner[f] == FRAME_FREE)
			return f;
	return FRAME_NONE;
}

static uint64_t nr_checks, nr_ops, nr_in_order_seen, nr_in_order_placed;

static void compare(const struct gpamap *m, const struct model *md, struct tu_rng *r)
{
	uint64_t owned[FRAME_OWNERS] = { 0 };
	uint32_t in_order = 0;
	char why[256];

	CHECKF(gpamap__check(m, why, sizeof(why)) == 0, "gpamap__check: %s", why);
	for (gpfn_t g = 0; g < md->nr_gpfns; g++) {
		CHECKF(gpamap__frame(m, g) == md->g2f[g], "gpfn %u", g);
		if (md->g2f[g] != FRAME_NONE)
			CHECK_EQ(gpamap__gpfn(m, md->g2f[g]), g);
	}
	for (frame_t f = 0; f < md->nr_frames; f++) {
		CHECKF(gpamap__owner(m, f) == md->owner[f], "frame %u", f);
		owned[md->owner[f]]++;
		if (md->owner[f] != FRAME_GUEST)
			CHECK_EQ(gpamap__gpfn(m, f), GPFN_NONE);
	}
	for (int o = 0; o < FRAME_OWNERS; o++)
		CHECK_EQ(m->nr_owned[o], owned[o]);
	for (uint32_t reg = 0; reg < m->nr_regions; reg++) {
		bool want = brute_in_order(md, reg);

		CHECKF(gpamap__region_in_order(m, reg) == want, "region %u", reg);
		in_order += want;
	}
	nr_in_order_seen += in_order;
	CHECK_EQ(gpamap__count_in_order(m), in_order);
	CHECK_EQ(gpamap__count_runs(m), brute_runs(md, 0, md->nr_gpfns));
	for (int i = 0; i < 8; i++) {
		gpfn_t g = (gpfn_t)tu_below(r, md->nr_gpfns + 1);
		uint32_t n = (uint32_t)tu_below(r, md->nr_gpfns + 2);

		CHECKF(gpamap__count_runs_range(m, g, n) == brute_runs(md, g, (uint64_t)g + n), "range %u+%u", g, n);
	}
	nr_checks++;
}

/*
 * Bind a whole region in order onto 512 free frames (a collapse), usually an
 * aligned block; sometimes a misaligned one, which must not count as in order.
 */
static void place_region_in_order(struct gpamap *m, struct model *md, struct tu_rng *r)
{
	uint32_t nr_full = md->nr_gpfns / 512, nr_blocks = md->nr_frames / 512;
	uint32_t reg, base;

	if (!nr_full || !nr_blocks)
		return;
	reg = (uint32_t)tu_below(r, nr_full);
	base = (uint32_t)tu_below(r, nr_blocks) * 512;
	if (tu_chance(r, 1, 4))
		base += (uint32_t)tu_below(r, 512);
	if (base + 512 > md->nr_frames)
		return;
	for (uint32_t i = 0; i < 512; i++) {
		frame_t f = base + i;

		if (md->owner[f] != FRAME_FREE && !(md->owner[f] == FRAME_GUEST && md->g2f[reg * 512 + i] == f))
			return;
	}
	for (uint32_t i = 0; i < 512; i++) {
		gpfn_t g = reg * 512 + i;
		frame_t f = base + i, old = md->g2f[g];

		if (old == f)
			continue;
		CHECK_EQ(gpamap__rebind(m, g, f), old);
		if (old != FRAME_NONE)
			md->owner[old] = FRAME_FREE;
		md->g2f[g] = f;
		md->owner[f] = FRAME_GUEST;
	}
	nr_in_order_placed++;
}

static void run_case(uint64_t seed, uint32_t nr_gpfns, uint32_t nr_frames, uint32_t ops)
{
	struct tu_rng r;
	struct gpamap m;
	struct model md = { nr_gpfns, nr_frames, NULL, NULL };
	uint32_t every = nr_frames <= 1024 ? 1 : nr_frames / 1024 + 1;

	tu_seed = seed;
	tu_rng_seed(&r, seed);
	md.g2f = malloc(sizeof(frame_t) * (nr_gpfns + 1));
	md.owner = calloc(nr_frames, 1);
	CHECK(md.g2f && md.owner);
	memset(md.g2f, 0xff, sizeof(frame_t) * (nr_gpfns + 1));
	CHECK_EQ(gpamap__init(&m, nr_gpfns, nr_frames), 0);
	CHECK_EQ(m.nr_regions, (nr_gpfns + 511) / 512);
	compare(&m, &md, &r);

	/* Sometimes start from a linear layout: everything in order. */
	if (nr_frames >= nr_gpfns && tu_chance(&r, 1, 4)) {
		for (gpfn_t g = 0; g < nr_gpfns; g++) {
			gpamap__bind(&m, g, g);
			md.g2f[g] = g;
			md.owner[g] = FRAME_GUEST;
		}
		compare(&m, &md, &r);
		CHECK_EQ(gpamap__count_runs(&m), nr_gpfns ? 1 : 0);
		CHECK_EQ(gpamap__count_in_order(&m), nr_gpfns / 512);
	}

	for (uint32_t i = 0; i < ops; i++) {
		uint64_t x = tu_below(&r, 100);
		gpfn_t g = (gpfn_t)tu_below(&r, nr_gpfns);
		frame_t f, old;

		if (x < 35) {
			/* bind an unbacked gpfn, often right after its predecessor's frame */
			if (md.g2f[g] != FRAME_NONE)
				continue;
			f = FRAME_NONE;
			if (g > 0 && md.g2f[g - 1] != FRAME_NONE && md.g2f[g - 1] + 1 < nr_frames &&
			    md.owner[md.g2f[g - 1] + 1] == FRAME_FREE && tu_chance(&r, 2, 3))
				f = md.g2f[g - 1] + 1;
			if (f == FRAME_NONE)
				f = pick_free_frame(&md, &r);
			if (f == FRAME_NONE)
				continue;
			gpamap__bind(&m, g, f);
			md.g2f[g] = f;
			md.owner[f] = FRAME_GUEST;
		} else if (x < 60) {
			/* move a backed gpfn to a free frame: the old frame becomes free */
			if (md.g2f[g] == FRAME_NONE || (f = pick_free_frame(&md, &r)) == FRAME_NONE)
				continue;
			old = gpamap__rebind(&m, g, f);
			CHECK_EQ(old, md.g2f[g]);
			md.owner[old] = FRAME_FREE;
			md.g2f[g] = f;
			md.owner[f] = FRAME_GUEST;
		} else if (x < 70) {
			old = gpamap__unbind(&m, g);
			CHECK_EQ(old, md.g2f[g]);
			if (old != FRAME_NONE)
				md.owner[old] = FRAME_FREE;
			md.g2f[g] = FRAME_NONE;
		} else if (x < 85) {
			/* a free frame goes to ballast or a scanner, or a non-guest frame comes back */
			f = (frame_t)tu_below(&r, nr_frames);
			if (md.owner[f] == FRAME_GUEST)
				continue;
			enum frame_owner o = md.owner[f] == FRAME_FREE ?
						     (enum frame_owner)(FRAME_BALLAST_MOVABLE + tu_below(&r, 3)) :
						     FRAME_FREE;
			gpamap__set_owner(&m, f, o);
			md.owner[f] = (uint8_t)o;
		} else if (x < 90) {
			/* a scanner isolates a guest frame: the gpfn loses its backing */
			if ((f = md.g2f[g]) == FRAME_NONE)
				continue;
			gpamap__set_owner(&m, f, FRAME_ISOLATED);
			md.owner[f] = FRAME_ISOLATED;
			md.g2f[g] = FRAME_NONE;
		} else {
			place_region_in_order(&m, &md, &r);
		}
		nr_ops++;
		if (i % every == 0 || i + 1 == ops)
			compare(&m, &md, &r);
	}
	gpamap__exit(&m);
	free(md.g2f);
	free(md.owner);
}

static void test_fixed(void)
{
	struct gpamap m;
	char why[128];

	tu_case = "fixed";
	tu_seed = 0;
	CHECK_EQ(gpamap__init(&m, 1100, 2048), 0);
	CHECK_EQ(m.nr_regions, 3);
	CHECK_EQ(gpamap__count_runs(&m), 0);
	/* Region 1 in order on block 3 (frames 1536..2047); region 0 reversed on block 0. */
	for (gpfn_t i = 0; i < 512; i++) {
		gpamap__bind(&m, 512 + i, 1536 + i);
		gpamap__bind(&m, i, 511 - i);
	}
	CHECK(!gpamap__region_in_order(&m, 0));
	CHECK(gpamap__region_in_order(&m, 1));
	CHECK(!gpamap__region_in_order(&m, 2));
	CHECK_EQ(gpamap__count_runs(&m), 512 + 1);
	/* The partial last region, even linear and aligned, is never in order. */
	for (gpfn_t i = 0; i < 1100 - 1024; i++)
		gpamap__bind(&m, 1024 + i, 512 + i);
	CHECK(!gpamap__region_in_order(&m, 2));
	CHECK_EQ(gpamap__count_runs(&m), 512 + 2);
	CHECK_EQ(gpamap__count_runs_range(&m, 500, 600), 12 + 1 + 1);
	/* Region 1 moved one page off its alignment: out of order. */
	CHECK_EQ(gpamap__rebind(&m, 512, 1000), 1536);
	CHECK(!gpamap__region_in_order(&m, 1));
	CHECK_EQ(gpamap__owner(&m, 1536), FRAME_FREE);
	CHECK_EQ(gpamap__count_in_order(&m), 0);
	CHECK_EQ(m.nr_owned[FRAME_GUEST], 1100);
	CHECK_EQ(m.nr_owned[FRAME_FREE], 2048 - 1100);
	CHECK(gpamap__check(&m, why, sizeof(why)) == 0);
	/* Corruption is caught. */
	m.frame_gpfn[1000] = 3;
	CHECK(gpamap__check(&m, why, sizeof(why)) < 0);
	m.frame_gpfn[1000] = 512;
	m.nr_owned[FRAME_ISOLATED]++;
	CHECK(gpamap__check(&m, why, sizeof(why)) < 0);
	m.nr_owned[FRAME_ISOLATED]--;
	m.frame_owner[5] = FRAME_BALLAST_MOVABLE;
	CHECK(gpamap__check(&m, why, sizeof(why)) < 0);
	gpamap__exit(&m);
	CHECK_EQ(gpamap__metadata_bytes(1 << 20, 1 << 20) - sizeof(struct gpamap), 9U << 20);
	for (int o = 0; o < FRAME_OWNERS; o++)
		CHECK(frame_owner_names[o] && *frame_owner_names[o]);
}

int main(int argc, char **argv)
{
	uint64_t base = tu_base_seed(argc, argv, 0x69a3a9ULL);
	struct tu_rng r;
	struct timespec t0, t1;
	int nr_cases = 1500;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	test_fixed();
	tu_case = "random";
	tu_rng_seed(&r, base);
	for (int i = 0; i < nr_cases; i++) {
		uint32_t nr_gpfns = (uint32_t)(1 + tu_below(&r, tu_chance(&r, 1, 2) ? 1100 : 4000));
		uint32_t nr_frames = nr_gpfns + (uint32_t)tu_below(&r, nr_gpfns + 600);

		run_case(tu_next(&r), nr_gpfns, nr_frames, 100 + (uint32_t)tu_below(&r, 600));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(nr_in_order_placed > 0 && nr_in_order_seen > 0);
	printf("test_gpamap: OK: %d cases, %llu ops, %llu full comparisons, %llu regions placed in order, "
	       "seed 0x%llx, %.1f s\n",
	       nr_cases, (unsigned long long)nr_ops, (unsigned long long)nr_checks,
	       (unsigned long long)nr_in_order_placed, (unsigned long long)base,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	return 0;
}
