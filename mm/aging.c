/* aging.c: reproducible "long-running host" layouts of guest pages and other tenants' ballast in the pool. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/aging.h"
#include "mm/util.h"

/*
 * The aging model
 * ===============
 *
 * The pool has F frames: G guest frames (R = G / 512 guest 2 MiB regions) plus
 * S = F - G slack frames. Blocks are the F / 512 naturally aligned 2 MiB pool
 * blocks (= pageblocks).
 *
 *  - Ballast (other tenants) is B = round(ballast * S) slack frames; the other
 *    S - B slack frames are free. U = round(unmovable * B) of the ballast is
 *    unmovable (pinned), BM = B - U is movable.
 *  - Unmovable ballast is grouped per pageblock as Linux's anti-fragmentation
 *    does: US = round(unmovable_scatter * U) unmovable frames are scattered as
 *    single frames (pollution of movable pageblocks); the other UG = U - US fill
 *    ceil(UG / 512) whole pageblocks (the last one partly; its free rest stays on
 *    the unmovable free lists), chosen at seeded-random positions among the
 *    blocks not holding a linear region, and marked MIGRATE_UNMOVABLE. If the
 *    partial block's free rest does not fit in the slack next to everything
 *    else, the UG % 512 leftover frames are scattered instead.
 *  - K = round(age * R) guest regions, chosen by the seed, are "scattered";
 *    the other R - K are "linear": region r in order on pool block r.
 *  - Every frame of a block that is neither linear nor unmovable is a
 *    candidate. The K * 512 scattered guest pages, the US scattered unmovable
 *    frames and the BM movable ballast frames take a uniformly random sample of
 *    the candidates (partial Fisher-Yates shuffle); the remaining candidates are
 *    free. So free memory is fragmented as on a long-running host, and a
 *    scattered region lands in order only with negligible probability.
 *  - age = 0 is perfectly linear: region r on block r (identity), ballast and
 *    free frames after the guest.
 *
 * Everything is allocated from the buddy allocator with buddy__take and
 * buddy__take_block (in ascending frame order, so the buddy state is exact and
 * reproducible), and owned in the GPA map (gpamap__bind for guest pages,
 * gpamap__set_owner for ballast). Same seed and sizes give the same layout.
 */

/* --- PRNG: splitmix64 seeding xoshiro256** (Blackman, Vigna 2018) --- */

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void rng__seed(struct rng *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = mm__splitmix64(&x);
}

uint64_t rng__next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Lemire's nearly divisionless method: unbiased. */
uint64_t rng__below(struct rng *r, uint64_t n)
{
	unsigned __int128 m;
	uint64_t l;

	if (n == 0)
		return 0;
	m = (unsigned __int128)rng__next(r) * n;
	l = (uint64_t)m;
	if (l < n) {
		uint64_t t = -n % n;

		while (l < t) {
			m = (unsigned __int128)rng__next(r) * n;
			l = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

double rng__unit(struct rng *r)
{
	return (double)(rng__next(r) >> 11) * 0x1.0p-53;
}

/* --- the layout --- */

static bool frac_ok(double v)
{
	return v >= 0.0 && v <= 1.0; /* false for NaN too */
}

int aging__counts(const struct aging_config *cfg, uint32_t nr_gpfns, uint32_t nr_frames,
		  struct aging_counts *c, char *err, size_t errlen)
{
	uint64_t slack;

	memset(c, 0, sizeof(*c));
	if (!frac_ok(cfg->age) || !frac_ok(cfg->ballast) || !frac_ok(cfg->unmovable) ||
	    !frac_ok(cfg->unmovable_scatter)) {
		mm__set_msg(err, errlen, "aging: age %g, ballast %g, unmovable %g, unmovable_scatter %g must all "
			"be in [0, 1]", cfg->age, cfg->ballast, cfg->unmovable, cfg->unmovable_scatter);
		return -EINVAL;
	}
	if (nr_gpfns % MM_PAGEBLOCK_FRAMES || nr_frames % MM_PAGEBLOCK_FRAMES || nr_frames < nr_gpfns) {
		mm__set_msg(err, errlen, "aging: %u guest pages and %u pool frames must be multiples of %u, "
			"the pool at least as large as the guest", nr_gpfns, nr_frames, MM_PAGEBLOCK_FRAMES);
		return -EINVAL;
	}
	slack = nr_frames - nr_gpfns;
	c->regions = nr_gpfns / MM_PAGEBLOCK_FRAMES;
	c->scattered_regions = (uint32_t)llround(cfg->age * c->regions);
	c->ballast = (uint64_t)llround(cfg->ballast * (double)slack);
	c->unmovable = (uint64_t)llround(cfg->unmovable * (double)c->ballast);
	c->movable = c->ballast - c->unmovable;
	c->unmovable_scattered = (uint64_t)llround(cfg->unmovable_scatter * (double)c->unmovable);
	c->unmovable_grouped = c->unmovable - c->unmovable_scattered;
	c->unmovable_blocks = (uint32_t)((c->unmovable_grouped + MM_PAGEBLOCK_FRAMES - 1) / MM_PAGEBLOCK_FRAMES);
	if ((uint64_t)c->unmovable_blocks * MM_PAGEBLOCK_FRAMES + c->unmovable_scattered + c->movable > slack) {
		/* No room for the partial block's free rest: scatter its frames instead. */
		c->unmovable_blocks = (uint32_t)(c->unmovable_grouped / MM_PAGEBLOCK_FRAMES);
		c->unmovable_scattered += c->unmovable_grouped % MM_PAGEBLOCK_FRAMES;
		c->unmovable_grouped -= c->unmovable_grouped % MM_PAGEBLOCK_FRAMES;
	}
	c->free = slack - c->ballast;
	return 0;
}

enum block_role { BLOCK_OPEN, BLOCK_LINEAR, BLOCK_UNMOVABLE };

/* Take every owned frame from the buddy allocator, in ascending frame order. */
static int take_owned(struct buddy *b, const struct gpamap *m, const uint8_t *role, uint32_t nr_blocks)
{
	for (uint32_t blk = 0; blk < nr_blocks; blk++) {
		frame_t f0 = blk << MM_PAGEBLOCK_ORDER;

		if (role[blk] == BLOCK_LINEAR ||
		    (role[blk] == BLOCK_UNMOVABLE && gpamap__owner(m, f0 + MM_PAGEBLOCK_FRAMES - 1) != FRAME_FREE)) {
			if (buddy__take_block(b, f0, MM_PAGEBLOCK_ORDER))
				return -EIO;
			continue;
		}
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (gpamap__owner(m, f) != FRAME_FREE && buddy__take(b, f))
				return -EIO;
	}
	return 0;
}

int aging__place(struct buddy *b, struct gpamap *m, const struct aging_config *cfg,
		 char *err, size_t errlen)
{
	struct aging_counts c;
	struct rng rng;
	uint32_t *regions = NULL, *blocks = NULL, *cand = NULL, *scattered;
	uint8_t *role = NULL;
	uint32_t nr_blocks, nr_open = 0, nr_cand = 0, k;
	uint64_t need, left, i;
	int ret;

	ret = aging__counts(cfg, m->nr_gpfns, m->nr_frames, &c, err, errlen);
	if (ret)
		return ret;
	if (b->nr_frames != m->nr_frames || b->nr_free_frames != b->nr_frames ||
	    m->nr_owned[FRAME_FREE] != m->nr_frames) {
		mm__set_msg(err, errlen, "aging: needs a fresh buddy allocator and GPA map over the same %u frames",
			m->nr_frames);
		return -EINVAL;
	}
	nr_blocks = m->nr_frames / MM_PAGEBLOCK_FRAMES;
	regions = malloc(((size_t)c.regions + 1) * sizeof(*regions));
	blocks = malloc((size_t)nr_blocks * sizeof(*blocks));
	role = calloc(nr_blocks, 1);
	if (!regions || !blocks || !role)
		goto err_nomem;
	rng__seed(&rng, cfg->seed);

	/* 1. Which regions are scattered: the first K of a partial shuffle, kept in ascending order. */
	for (uint32_t r = 0; r < c.regions; r++)
		regions[r] = r;
	for (k = 0; k < c.scattered_regions; k++) {
		uint32_t j = k + (uint32_t)rng__below(&rng, c.regions - k), t = regions[k];

		regions[k] = regions[j];
		regions[j] = t;
	}
	for (uint32_t r = 0; r < c.regions; r++)
		role[r] = BLOCK_LINEAR;
	for (k = 0; k < c.scattered_regions; k++)
		role[regions[k]] = BLOCK_OPEN;
	scattered = regions;
	k = 0;
	for (uint32_t r = 0; r < c.regions; r++)
		if (role[r] == BLOCK_OPEN)
			scattered[k++] = r;

	/* 2. Linear regions: region r in order on block r. */
	for (uint32_t r = 0; r < c.regions; r++) {
		if (role[r] != BLOCK_LINEAR)
			continue;
		for (uint32_t p = 0; p < MM_PAGEBLOCK_FRAMES; p++)
			gpamap__bind(m, (r << MM_PAGEBLOCK_ORDER) + p, (r << MM_PAGEBLOCK_ORDER) + p);
	}

	/* 3. Unmovable pageblocks at random positions among the other blocks. */
	for (uint32_t blk = 0; blk < nr_blocks; blk++)
		if (role[blk] == BLOCK_OPEN)
			blocks[nr_open++] = blk;
	if (c.unmovable_blocks > nr_open) {
		mm__set_msg(err, errlen, "aging: %u unmovable pageblocks do not fit in %u free blocks",
			c.unmovable_blocks, nr_open);
		ret = -ENOSPC;
		goto out;
	}
	left = c.unmovable_grouped;
	for (k = 0; k < c.unmovable_blocks; k++) {
		uint32_t j = k + (uint32_t)rng__below(&rng, nr_open - k), t = blocks[k];
		frame_t f0;
		uint32_t n = left < MM_PAGEBLOCK_FRAMES ? (uint32_t)left : MM_PAGEBLOCK_FRAMES;

		blocks[k] = blocks[j];
		blocks[j] = t;
		role[blocks[k]] = BLOCK_UNMOVABLE;
		f0 = blocks[k] << MM_PAGEBLOCK_ORDER;
		for (uint32_t p = 0; p < n; p++)
			gpamap__set_owner(m, f0 + p, FRAME_BALLAST_UNMOVABLE);
		left -= n;
	}

	/* 4. A uniformly random sample of the candidate frames for everything scattered. */
	nr_cand = (nr_open - c.unmovable_blocks) * MM_PAGEBLOCK_FRAMES;
	need = (uint64_t)c.scattered_regions * MM_PAGEBLOCK_FRAMES + c.unmovable_scattered + c.movable;
	if (need > nr_cand) {
		mm__set_msg(err, errlen, "aging: %llu scattered frames do not fit in %u candidate frames",
			(unsigned long long)need, nr_cand);
		ret = -ENOSPC;
		goto out;
	}
	cand = malloc(((size_t)nr_cand + 1) * sizeof(*cand));
	if (!cand)
		goto err_nomem;
	nr_cand = 0;
	for (uint32_t blk = 0; blk < nr_blocks; blk++)
		if (role[blk] == BLOCK_OPEN)
			for (uint32_t p = 0; p < MM_PAGEBLOCK_FRAMES; p++)
				cand[nr_cand++] = (blk << MM_PAGEBLOCK_ORDER) + p;
	for (i = 0; i < need; i++) {
		uint64_t j = i + rng__below(&rng, nr_cand - i);
		uint32_t t = cand[i];

		cand[i] = cand[j];
		cand[j] = t;
	}
	i = 0;
	for (k = 0; k < c.scattered_regions; k++)
		for (uint32_t p = 0; p < MM_PAGEBLOCK_FRAMES; p++)
			gpamap__bind(m, (scattered[k] << MM_PAGEBLOCK_ORDER) + p, cand[i++]);
	for (uint64_t n = 0; n < c.unmovable_scattered; n++)
		gpamap__set_owner(m, cand[i++], FRAME_BALLAST_UNMOVABLE);
	for (uint64_t n = 0; n < c.movable; n++)
		gpamap__set_owner(m, cand[i++], FRAME_BALLAST_MOVABLE);

	/* 5. The buddy allocator gives up exactly the owned frames; then the pageblock types. */
	if (take_owned(b, m, role, nr_blocks)) {
		mm__set_msg(err, errlen, "aging: the buddy allocator refused a frame it should have had free");
		ret = -EIO;
		goto out;
	}
	for (uint32_t blk = 0; blk < nr_blocks; blk++)
		if (role[blk] == BLOCK_UNMOVABLE)
			buddy__set_pageblock_mt(b, blk << MM_PAGEBLOCK_ORDER, MIGRATE_UNMOVABLE);
	ret = 0;
	goto out;

err_nomem:
	mm__set_msg(err, errlen, "aging: out of memory");
	ret = -ENOMEM;
out:
	free(cand);
	free(role);
	free(blocks);
	free(regions);
	return ret;
}
