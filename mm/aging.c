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

/* aging__place's working state. */
struct placement {
	struct buddy *b;
	struct gpamap *m;
	struct aging_counts c;
	struct rng rng;
	uint32_t *regions;      /* scratch for the shuffle; then the scattered regions, ascending */
	uint32_t *blocks;       /* open blocks (not holding a linear region) */
	uint32_t *cand;         /* candidate frames for everything scattered */
	uint8_t *role;          /* per block: BLOCK_* */
	uint32_t nr_blocks, nr_open;
	char *err;
	size_t errlen;
};

/* 1. Which regions are scattered: the first K of a partial shuffle, kept in ascending order. */
static void place__pick_scattered(struct placement *p)
{
	const struct aging_counts *c = &p->c;
	uint32_t k;

	for (uint32_t r = 0; r < c->regions; r++)
		p->regions[r] = r;
	for (k = 0; k < c->scattered_regions; k++) {
		uint32_t j = k + (uint32_t)rng__below(&p->rng, c->regions - k), t = p->regions[k];

		p->regions[k] = p->regions[j];
		p->regions[j] = t;
	}
	for (uint32_t r = 0; r < c->regions; r++)
		p->role[r] = BLOCK_LINEAR;
	for (k = 0; k < c->scattered_regions; k++)
		p->role[p->regions[k]] = BLOCK_OPEN;
	k = 0;
	for (uint32_t r = 0; r < c->regions; r++)
		if (p->role[r] == BLOCK_OPEN)
			p->regions[k++] = r;
}

/* 2. Linear regions: region r in order on block r. */
static void place__linear(struct placement *p)
{
	for (uint32_t r = 0; r < p->c.regions; r++) {
		if (p->role[r] != BLOCK_LINEAR)
			continue;
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
			gpamap__bind(p->m, (r << MM_PAGEBLOCK_ORDER) + i, (r << MM_PAGEBLOCK_ORDER) + i);
	}
}

/* 3. Unmovable pageblocks at random positions among the other blocks. */
static int place__unmovable_blocks(struct placement *p)
{
	const struct aging_counts *c = &p->c;
	uint64_t left = c->unmovable_grouped;

	for (uint32_t blk = 0; blk < p->nr_blocks; blk++)
		if (p->role[blk] == BLOCK_OPEN)
			p->blocks[p->nr_open++] = blk;
	if (c->unmovable_blocks > p->nr_open) {
		mm__set_msg(p->err, p->errlen, "aging: %u unmovable pageblocks do not fit in %u free blocks",
			    c->unmovable_blocks, p->nr_open);
		return -ENOSPC;
	}
	for (uint32_t k = 0; k < c->unmovable_blocks; k++) {
		uint32_t j = k + (uint32_t)rng__below(&p->rng, p->nr_open - k), t = p->blocks[k];
		uint32_t n = left < MM_PAGEBLOCK_FRAMES ? (uint32_t)left : MM_PAGEBLOCK_FRAMES;
		frame_t f0;

		p->blocks[k] = p->blocks[j];
		p->blocks[j] = t;
		p->role[p->blocks[k]] = BLOCK_UNMOVABLE;
		f0 = p->blocks[k] << MM_PAGEBLOCK_ORDER;
		for (uint32_t i = 0; i < n; i++)
			gpamap__set_owner(p->m, f0 + i, FRAME_BALLAST_UNMOVABLE);
		left -= n;
	}
	return 0;
}

/* 4. A uniformly random sample of the candidate frames for everything scattered. */
static int place__scattered(struct placement *p)
{
	const struct aging_counts *c = &p->c;
	uint32_t nr_cand = (p->nr_open - c->unmovable_blocks) * MM_PAGEBLOCK_FRAMES;
	uint64_t need = (uint64_t)c->scattered_regions * MM_PAGEBLOCK_FRAMES + c->unmovable_scattered + c->movable;
	uint64_t i;

	if (need > nr_cand) {
		mm__set_msg(p->err, p->errlen, "aging: %llu scattered frames do not fit in %u candidate frames",
			    (unsigned long long)need, nr_cand);
		return -ENOSPC;
	}
	p->cand = malloc(((size_t)nr_cand + 1) * sizeof(*p->cand));
	if (!p->cand)
		return -ENOMEM;
	nr_cand = 0;
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++)
		if (p->role[blk] == BLOCK_OPEN)
			for (uint32_t f = 0; f < MM_PAGEBLOCK_FRAMES; f++)
				p->cand[nr_cand++] = (blk << MM_PAGEBLOCK_ORDER) + f;
	for (i = 0; i < need; i++) {
		uint64_t j = i + rng__below(&p->rng, nr_cand - i);
		uint32_t t = p->cand[i];

		p->cand[i] = p->cand[j];
		p->cand[j] = t;
	}
	i = 0;
	for (uint32_t k = 0; k < c->scattered_regions; k++)
		for (uint32_t f = 0; f < MM_PAGEBLOCK_FRAMES; f++)
			gpamap__bind(p->m, (p->regions[k] << MM_PAGEBLOCK_ORDER) + f, p->cand[i++]);
	for (uint64_t n = 0; n < c->unmovable_scattered; n++)
		gpamap__set_owner(p->m, p->cand[i++], FRAME_BALLAST_UNMOVABLE);
	for (uint64_t n = 0; n < c->movable; n++)
		gpamap__set_owner(p->m, p->cand[i++], FRAME_BALLAST_MOVABLE);
	return 0;
}

/* 5. The buddy allocator gives up exactly the owned frames; then the pageblock types. */
static int place__commit(struct placement *p)
{
	if (take_owned(p->b, p->m, p->role, p->nr_blocks)) {
		mm__set_msg(p->err, p->errlen, "aging: the buddy allocator refused a frame it should have had free");
		return -EIO;
	}
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++)
		if (p->role[blk] == BLOCK_UNMOVABLE)
			buddy__set_pageblock_mt(p->b, blk << MM_PAGEBLOCK_ORDER, MIGRATE_UNMOVABLE);
	return 0;
}

int aging__place(struct buddy *b, struct gpamap *m, const struct aging_config *cfg,
		 char *err, size_t errlen)
{
	struct placement p = { .b = b, .m = m, .err = err, .errlen = errlen };
	int ret;

	ret = aging__counts(cfg, m->nr_gpfns, m->nr_frames, &p.c, err, errlen);
	if (ret)
		return ret;
	if (b->nr_frames != m->nr_frames || b->nr_free_frames != b->nr_frames ||
	    m->nr_owned[FRAME_FREE] != m->nr_frames) {
		mm__set_msg(err, errlen, "aging: needs a fresh buddy allocator and GPA map over the same %u frames",
			    m->nr_frames);
		return -EINVAL;
	}
	p.nr_blocks = m->nr_frames / MM_PAGEBLOCK_FRAMES;
	p.regions = malloc(((size_t)p.c.regions + 1) * sizeof(*p.regions));
	p.blocks = malloc((size_t)p.nr_blocks * sizeof(*p.blocks));
	p.role = calloc(p.nr_blocks, 1);
	ret = -ENOMEM;
	if (p.regions && p.blocks && p.role) {
		rng__seed(&p.rng, cfg->seed);
		place__pick_scattered(&p);
		place__linear(&p);
		ret = place__unmovable_blocks(&p);
		if (!ret)
			ret = place__scattered(&p);
		if (!ret)
			ret = place__commit(&p);
	}
	if (ret == -ENOMEM)
		mm__set_msg(err, errlen, "aging: out of memory");
	free(p.cand);
	free(p.role);
	free(p.blocks);
	free(p.regions);
	return ret;
}
