/* plan.c: the planned defrag: every guest page is copied once, straight to its final 2 MiB slot. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"
#include "mm/util.h"

/*
 * Planned collapse
 * ================
 *
 * 1. Plan (under mm->lock, the guest running). Regions already mapped 2 MiB are
 *    done; regions in order on a host huge block are promoted by a remap alone.
 *    Every other region r gets a target block T(r) among the clean blocks (host
 *    huge, no unmovable frame, not holding a done region): first the block that
 *    already holds the most of r's pages at their offsets (so a run resumed after
 *    a cancel, or the next max_regions chunk, finds its half-filled blocks again),
 *    then the blocks with the fewest frames that must be evicted (movable ballast,
 *    pages of regions without a target), most free frames first. Page i of r then
 *    has the final slot T(r) + i ("home"). Anything else in a target block is a
 *    blocker: a misplaced page of another target region ("foreign") or something
 *    to evict.
 *
 * 2. Execute, in steps (defrag__step_ensure), region by region (the default):
 *    - pick the incomplete target block with the fewest blockers;
 *    - clear each blocker: ballast or a page without a target goes to a spare
 *      frame (outside the targets; when none is left, a free slot of the target
 *      block with the most blockers, which will come last); a foreign page goes
 *      home with a 4 KiB move. If its home holds another misplaced page, that one
 *      goes home first, and so on: a chain, executed from its free end, every move
 *      final. A chain can only close into a cycle at the slot being cleared; one
 *      page then waits on a spare frame (an extra copy: copies_temp);
 *    - the block now holds only free frames and r's pages in place: copy r's
 *      missing pages in whole and map the region with one 2 MiB remap ("fast
 *      path": no 4 KiB remap for those pages). If that would overrun the pause
 *      budget, the pages come in by 4 KiB moves instead;
 *    - a target block that a chain happened to fill completely is promoted with
 *      one 2 MiB remap (its 4 KiB remaps had merged the region's mappings).
 *    Every guest page is copied once, to its home, except cycle breaks.

 */

#define NO_REGION UINT32_MAX
#define NO_BLOCK UINT32_MAX
#define AFFINITY_MIN 8 /* pages already in place that make a block r's natural target */

enum region_plan {
	RP_SKIP,     /* not promotable now: unbacked pages, over max_regions or no clean block */
	RP_DONE,     /* already one 2 MiB mapping */
	RP_ZERO,     /* in order on a host huge block: remap only */
	RP_TARGET,   /* being filled into region_block[r] */
	RP_COMPLETE, /* promoted by this run */
};

struct frame_stack {
	frame_t *v;
	size_t n, cap;
};

struct plan {
	struct defrag_engine *e;
	struct mm *mm;
	uint32_t nr_regions, nr_blocks;
	uint8_t *rstate;          /* enum region_plan */
	uint32_t *region_block;   /* target block, or NO_BLOCK */
	uint32_t *block_region;   /* region the block is the target of, or NO_REGION */
	uint16_t *home;           /* per target block: its region's pages in place */
	uint16_t *foreign;        /* ... pages of other target regions */
	uint16_t *evict;          /* ... ballast and pages without a target */
	struct frame_stack spare;      /* free frames outside target blocks */
	struct frame_stack complete;   /* blocks holding all their pages (block numbers) */
	struct frame_stack chain;      /* frames of the chain being followed */
	uint32_t cur_blk;              /* the block being processed */
	uint32_t park_blk;             /* target block used for spare frames */
	frame_t park_next;             /* ... and where to look in it next */
	uint32_t targets_left;
	uint64_t to_place, placed;
};

static int fs_push(struct frame_stack *s, frame_t f)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		frame_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = f;
	return 0;
}

static bool fs_pop(struct frame_stack *s, frame_t *f)
{
	if (!s->n)
		return false;
	*f = s->v[--s->n];
	return true;
}

static void fs_free(struct frame_stack *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static inline uint32_t block_of(frame_t f)
{
	return f >> MM_PAGEBLOCK_ORDER;
}

static inline frame_t block_frame(uint32_t blk)
{
	return blk << MM_PAGEBLOCK_ORDER;
}

/* The block is the target of a region still being filled. */
static inline bool is_target(const struct plan *p, uint32_t blk)
{
	uint32_t r = p->block_region[blk];

	return r != NO_REGION && p->rstate[r] == RP_TARGET;
}

/* The guest page in frame f belongs to a region being filled (so it is not to be evicted). */
static inline bool holds_target_page(const struct plan *p, frame_t f)
{
	const struct gpamap *m = &p->mm->map;

	return gpamap__owner(m, f) == FRAME_GUEST &&
	       p->rstate[gpamap__gpfn(m, f) >> MM_PAGEBLOCK_ORDER] == RP_TARGET;
}

/* Frame f of a target block holds the page that belongs there. */
static inline bool is_home(const struct plan *p, frame_t f)
{
	const struct gpamap *m = &p->mm->map;
	uint32_t r = p->block_region[block_of(f)];

	return gpamap__owner(m, f) == FRAME_GUEST &&
	       gpamap__gpfn(m, f) == (r << MM_PAGEBLOCK_ORDER) + (f & (MM_PAGEBLOCK_FRAMES - 1));
}

static void plan_free(struct plan *p)
{
	free(p->rstate);
	free(p->region_block);
	free(p->block_region);
	free(p->home);
	free(p->foreign);
	free(p->evict);
	fs_free(&p->spare);
	fs_free(&p->complete);
	fs_free(&p->chain);
}

static int plan_alloc(struct plan *p, struct defrag_engine *e)
{
	memset(p, 0, sizeof(*p));
	p->e = e;
	p->mm = e->mm;
	p->nr_regions = e->mm->map.nr_regions;
	p->nr_blocks = e->mm->buddy.nr_frames / MM_PAGEBLOCK_FRAMES;
	p->rstate = calloc(p->nr_regions + 1, 1);
	p->region_block = malloc((p->nr_regions + 1) * sizeof(uint32_t));
	p->block_region = malloc((p->nr_blocks + 1) * sizeof(uint32_t));
	p->home = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	p->foreign = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	p->evict = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	if (!p->rstate || !p->region_block || !p->block_region || !p->home || !p->foreign ||
	    !p->evict)
		return -ENOMEM;
	memset(p->region_block, 0xff, (p->nr_regions + 1) * sizeof(uint32_t));
	memset(p->block_region, 0xff, (p->nr_blocks + 1) * sizeof(uint32_t));
	return 0;
}

struct affinity {
	uint32_t count, region, block;
};

static int cmp_affinity(const void *a, const void *b)
{
	const struct affinity *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->region < y->region ? -1 : x->region > y->region;
}

/*
 * The block r's pages already fill best at their offsets, and how many: the
 * blocks where pages sit in place, sorted, and the longest run of equal values.
 */
static uint32_t best_affinity(const struct mm *mm, uint32_t r, uint32_t *blk)
{
	uint32_t blocks[MM_PAGEBLOCK_FRAMES], n = 0, best = 0;
	gpfn_t g0 = r << MM_PAGEBLOCK_ORDER;

	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		frame_t f = gpamap__frame(&mm->map, g0 + i);

		if (f != FRAME_NONE && (f & (MM_PAGEBLOCK_FRAMES - 1)) == i)
			blocks[n++] = block_of(f);
	}
	if (n < AFFINITY_MIN)
		return 0;
	qsort(blocks, n, sizeof(blocks[0]), mm__cmp_u32);
	for (uint32_t i = 0, j; i < n; i = j) {
		for (j = i; j < n && blocks[j] == blocks[i]; j++)
			;
		if (j - i > best) {
			best = j - i;
			*blk = blocks[i];
		}
	}
	return best;
}

static int cmp_block_key(const void *a, const void *b, void *key)
{
	uint64_t x = ((const uint64_t *)key)[*(const uint32_t *)a];
	uint64_t y = ((const uint64_t *)key)[*(const uint32_t *)b];

	if (x != y)
		return x < y ? -1 : 1;
	return mm__cmp_u32(a, b);
}

static void assign(struct plan *p, uint32_t r, uint32_t blk)
{
	p->region_block[r] = blk;
	p->block_region[blk] = r;
	p->rstate[r] = RP_TARGET;
	p->targets_left++;
}

/* Step 1 of the plan: classify regions and blocks, choose T(r). Holds mm->lock. */
static int plan_targets(struct plan *p)
{
	struct mm *mm = p->mm;
	struct defrag_stats *st = p->e->st;
	uint32_t limit = p->e->req->max_regions, budget, nr_cand = 0, nr_aff = 0, nr_blocks = 0;
	uint32_t *cand = NULL, *blocks = NULL;
	uint64_t *key = NULL;
	struct affinity *aff = NULL;
	uint8_t *eligible = NULL;
	int ret = -ENOMEM;

	cand = malloc((p->nr_regions + 1) * sizeof(*cand));
	aff = malloc((p->nr_regions + 1) * sizeof(*aff));
	blocks = malloc((p->nr_blocks + 1) * sizeof(*blocks));
	key = calloc(p->nr_blocks + 1, sizeof(*key));
	eligible = calloc(p->nr_blocks + 1, 1);
	if (!cand || !aff || !blocks || !key || !eligible)
		goto out;

	/* Regions. */
	budget = limit ? limit : UINT32_MAX;
	for (uint32_t r = 0; r < p->nr_regions; r++) {
		if (mm->region_huge_mapped[r] && defrag__region_in_place(mm, r)) {
			p->rstate[r] = RP_DONE;
		} else if (!defrag__region_full(mm, r)) {
			p->rstate[r] = RP_SKIP;
			st->regions_failed++;
		} else if (defrag__region_in_place(mm, r)) {
			if (budget) {
				p->rstate[r] = RP_ZERO;
				budget--;
			}
		} else {
			cand[nr_cand++] = r;
		}
		if (p->rstate[r] == RP_DONE || p->rstate[r] == RP_ZERO || defrag__region_in_place(mm, r))
			p->block_region[block_of(gpamap__frame(&mm->map, r << MM_PAGEBLOCK_ORDER))] = r;
	}
	/* All candidates are planned; execution stops after `limit` regions, the cheapest first. */

	/* Clean blocks: host huge, no unmovable frame, not holding an in-place region. */
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		frame_t f0 = block_frame(blk);

		if (p->block_region[blk] != NO_REGION || !pool__block_is_huge(&mm->pool, f0) ||
		    defrag__block_has_unmovable(mm, blk))
			continue;
		eligible[blk] = 1;
	}

	/* Affinity first: a block already holding many of r's pages in place. */
	for (uint32_t i = 0; i < nr_cand; i++) {
		uint32_t blk = NO_BLOCK, n = best_affinity(mm, cand[i], &blk);

		if (n)
			aff[nr_aff++] = (struct affinity){ .count = n, .region = cand[i], .block = blk };
	}
	qsort(aff, nr_aff, sizeof(*aff), cmp_affinity);
	for (uint32_t i = 0; i < nr_aff; i++)
		if (eligible[aff[i].block] && p->block_region[aff[i].block] == NO_REGION &&
		    p->region_block[aff[i].region] == NO_BLOCK)
			assign(p, aff[i].region, aff[i].block);

	/* The other candidates are meant to get targets too (provisionally marked so for the
	 * eviction count below); pages of regions without one must be evicted. */
	for (uint32_t i = 0; i < nr_cand; i++)
		p->rstate[cand[i]] = RP_TARGET;
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		const uint8_t *own = mm->map.frame_owner + ((size_t)blk << MM_PAGEBLOCK_ORDER);
		uint32_t nr_free = 0, nr_evict = 0;

		if (!eligible[blk] || p->block_region[blk] != NO_REGION)
			continue;
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
			frame_t f = block_frame(blk) + i;

			if (own[i] == FRAME_FREE)
				nr_free++;
			else if (!holds_target_page(p, f))
				nr_evict++;
		}
		/* Fewest evictions first, then most free frames (the fast path). */
		key[blk] = (uint64_t)nr_evict << 16 | (MM_PAGEBLOCK_FRAMES - nr_free);
		blocks[nr_blocks++] = blk;
	}
	qsort_r(blocks, nr_blocks, sizeof(*blocks), cmp_block_key, key);

	for (uint32_t i = 0, b = 0; i < nr_cand; i++) {
		uint32_t r = cand[i];

		if (p->region_block[r] != NO_BLOCK)
			continue;
		if (b == nr_blocks) {
			p->rstate[r] = RP_SKIP;
			st->regions_failed++; /* no clean block left for it */
			continue;
		}
		assign(p, r, blocks[b++]);
	}
	ret = 0;
out:
	free(cand);
	free(aff);
	free(blocks);
	free(key);
	free(eligible);
	return ret;
}

/* Step 2 of the plan: counters per target block, and the work lists. Holds mm->lock. */
static int plan_lists(struct plan *p)
{
	struct mm *mm = p->mm;
	int ret = 0;

	for (uint32_t blk = 0; blk < p->nr_blocks && !ret; blk++) {
		frame_t f0 = block_frame(blk);
		bool target = is_target(p, blk);

		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && !ret; f++) {
			enum frame_owner o = gpamap__owner(&mm->map, f);

			if (!target) {
				if (o == FRAME_FREE && buddy__frame_is_free(&mm->buddy, f))
					ret = fs_push(&p->spare, f);
				continue;
			}
			if (o == FRAME_FREE) {
				continue;
			} else if (is_home(p, f)) {
				p->home[blk]++;
			} else if (holds_target_page(p, f)) {
				p->foreign[blk]++;
			} else {
				p->evict[blk]++;
			}
		}
		if (!target || ret)
			continue;
		p->to_place += MM_PAGEBLOCK_FRAMES - p->home[blk];
		if (p->home[blk] == MM_PAGEBLOCK_FRAMES)
			ret = fs_push(&p->complete, blk);
	}
	return ret;
}

/* Frame f, which held a page that has just moved out, is free now: file it. */
static int frame_vacated(struct plan *p, frame_t f, bool was_foreign_target_page)
{
	uint32_t blk = block_of(f);

	if (!is_target(p, blk))
		return fs_push(&p->spare, f);
	if (was_foreign_target_page)
		p->foreign[blk]--;
	else
		p->evict[blk]--;
	return 0; /* blocks are picked by their blocker counts, free slots found by scanning */
}

/* Progress moves with the work: pages placed (regions promoted in place count 512). */
static void plan_progress(struct plan *p)
{
	p->e->progress_done = (uint64_t)p->e->st->regions_zero_copy * MM_PAGEBLOCK_FRAMES + p->placed;
}

static int page_placed(struct plan *p, uint32_t blk)
{
	p->home[blk]++;
	p->placed++;
	plan_progress(p);
	if (p->home[blk] == MM_PAGEBLOCK_FRAMES)
		return fs_push(&p->complete, blk);
	return 0;
}

/* The incomplete target block with the most blockers, other than the current one. */
static uint32_t pick_park_block(const struct plan *p)
{
	uint32_t best = NO_BLOCK, best_key = 0;

	for (uint32_t r = 0; r < p->nr_regions; r++) {
		uint32_t blk, key;

		if (p->rstate[r] != RP_TARGET || p->region_block[r] == p->cur_blk)
			continue;
		blk = p->region_block[r];
		key = p->foreign[blk] + p->evict[blk] + 1U;
		if (key > best_key &&
		    (uint32_t)p->home[blk] + p->foreign[blk] + p->evict[blk] < MM_PAGEBLOCK_FRAMES) {
			best_key = key;
			best = blk;
		}
	}
	return best;
}

/*
 * When no frame outside the targets is free: a free slot of the
 * target block that will be processed last (the most blockers). What lands there
 * becomes one more blocker of that block.
 */
static frame_t take_park_frame(struct plan *p)
{
	struct mm *mm = p->mm;

	for (int tries = 0; tries < 2; tries++) {
		if (p->park_blk != NO_BLOCK && is_target(p, p->park_blk) && p->park_blk != p->cur_blk) {
			for (frame_t f = p->park_next; f < block_frame(p->park_blk) + MM_PAGEBLOCK_FRAMES; f++) {
				if (!buddy__frame_is_free(&mm->buddy, f) || buddy__take(&mm->buddy, f))
					continue;
				p->park_next = f + 1;
				return f;
			}
		}
		p->park_blk = pick_park_block(p);
		if (p->park_blk == NO_BLOCK)
			break;
		p->park_next = block_frame(p->park_blk);
	}
	return FRAME_NONE;
}

/* A spare frame (free, outside target blocks), taken from the buddy allocator. */
static frame_t take_spare(struct plan *p)
{
	frame_t f;

	while (fs_pop(&p->spare, &f))
		if (!is_target(p, block_of(f)) && buddy__frame_is_free(&p->mm->buddy, f) &&
		    !buddy__take(&p->mm->buddy, f))
			return f;
	return take_park_frame(p);
}

/* Move the page in f out to a spare frame (*to, if not NULL). 0, -EAGAIN (no spare frame) or -errno. */
static int move_to_spare(struct plan *p, frame_t f, unsigned flags, frame_t *to)
{
	struct defrag_engine *e = p->e;
	frame_t t;
	int ret;

	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	t = take_spare(p);
	if (t == FRAME_NONE)
		return -EAGAIN;
	if (gpamap__owner(&p->mm->map, f) == FRAME_GUEST) {
		gpfn_t g = gpamap__gpfn(&p->mm->map, f);

		if (e->moved[g >> 6] >> (g & 63) & 1)
			flags |= MOVE_TEMP; /* moved before in this run: this copy is an extra one */
	}
	ret = defrag__move(e, f, t, flags);
	if (ret) {
		buddy__free(&p->mm->buddy, t, 0);
		return ret;
	}
	if (to)
		*to = t;
	if (is_target(p, block_of(t))) { /* parked in a later target block: a blocker there now */
		if (holds_target_page(p, t))
			p->foreign[block_of(t)]++;
		else
			p->evict[block_of(t)]++;
	}
	return 0;
}

/* Fill the free target slot s with the page that belongs there (a 4 KiB move). */
static int fill_slot(struct plan *p, frame_t s)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	uint32_t blk = block_of(s), r = p->block_region[blk];
	gpfn_t g;
	frame_t f;
	int ret;

	if (!is_target(p, blk) || !buddy__frame_is_free(&mm->buddy, s))
		return 0; /* stale: filled by the fast path, or the block is done */
	g = (r << MM_PAGEBLOCK_ORDER) + (s & (MM_PAGEBLOCK_FRAMES - 1));
	f = gpamap__frame(&mm->map, g);
	if (f == FRAME_NONE)
		return 0;
	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	if (buddy__take(&mm->buddy, s))
		return 0;
	ret = defrag__move(e, f, s, 0);
	if (ret) {
		buddy__free(&mm->buddy, s, 0);
		return ret;
	}
	ret = page_placed(p, blk);
	if (!ret)
		ret = frame_vacated(p, f, true);
	return ret;
}

/* All of the region's pages are in place in its block: one 2 MiB remap. */
static int complete_block(struct plan *p, uint32_t blk)
{
	struct defrag_engine *e = p->e;
	uint32_t r = p->block_region[blk];
	int ret;

	if (!is_target(p, blk) || p->home[blk] != MM_PAGEBLOCK_FRAMES)
		return 0;
	ret = defrag__step_ensure(e, e->est_remap_ns);
	if (ret)
		return ret;
	ret = defrag__promote_filled(e, r);
	if (ret)
		return ret;
	p->rstate[r] = RP_COMPLETE;
	p->targets_left--;
	return 0;
}

/*
 * The fast path: block blk holds only free frames, pages of its region in place
 * and frames to evict. Evict those, then copy the region whole into the block
 * with one 2 MiB remap. 0, -EAGAIN (not possible now) or -errno.
 */
static int fast_path(struct plan *p, uint32_t blk)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	uint32_t r = p->block_region[blk];
	frame_t f0 = block_frame(blk), old[MM_PAGEBLOCK_FRAMES];
	uint32_t nr_free = 0, copied = 0;
	uint64_t cost;
	int ret;

	if (!is_target(p, blk) || p->foreign[blk] || p->home[blk] == MM_PAGEBLOCK_FRAMES)
		return 0;
	cost = defrag__collapse_cost(e, r, MM_PAGEBLOCK_FRAMES - p->home[blk]);
	/* Over the pause budget, 4 KiB moves do it in small steps, at ~10x the total time. A block
	 * with nothing to evict (a borrowed one) is always filled whole: a copy of 2 MiB and one
	 * remap, 0.6-0.9 ms measured, is the shortest pause that switches a region at all. */
	if (p->evict[blk] && cost > e->work_budget_ns)
		return -EAGAIN;
	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && p->evict[blk]; f++) {
		if (gpamap__owner(&mm->map, f) == FRAME_FREE || is_home(p, f))
			continue;
		ret = move_to_spare(p, f, 0, NULL);
		if (ret)
			return ret;
		p->evict[blk]--;
	}
	ret = defrag__step_ensure(e, cost);
	if (ret)
		return ret;
	if (p->foreign[blk] || p->evict[blk])
		return 0; /* changed meanwhile */
	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
		nr_free += gpamap__owner(&mm->map, f) == FRAME_FREE;
	if (nr_free == MM_PAGEBLOCK_FRAMES) {
		if (buddy__take_block(&mm->buddy, f0, MM_PAGEBLOCK_ORDER))
			return -EIO;
	} else {
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_FREE && buddy__take(&mm->buddy, f))
				return -EIO;
	}
	ret = defrag__collapse_into(e, r, f0, old);
	if (ret) {
		/* Rolled back: the region's pages are where they were; give back the frames taken. */
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_FREE && !buddy__frame_is_free(&mm->buddy, f))
				buddy__free(&mm->buddy, f, 0);
		return ret;
	}
	p->rstate[r] = RP_COMPLETE;
	p->targets_left--;
	e->st->regions_fast_path++;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		if (old[i] == FRAME_NONE)
			continue;
		copied++;
		ret = frame_vacated(p, old[i], true);
		if (ret)
			return ret;
	}
	p->home[blk] = MM_PAGEBLOCK_FRAMES;
	p->placed += copied;
	plan_progress(p);
	return 0;
}

static int zero_copy_all(struct plan *p)
{
	struct defrag_engine *e = p->e;
	int ret = 0;

	for (uint32_t r = 0; r < p->nr_regions && !ret; r++) {
		if (p->rstate[r] != RP_ZERO)
			continue;
		ret = defrag__step_ensure(e, e->est_remap_ns);
		if (!ret)
			ret = defrag__promote_in_place(e, r);
		if (!ret)
			p->rstate[r] = RP_COMPLETE;
		plan_progress(p);
	}
	return ret;
}

static int stuck(struct plan *p, const char *why)
{
	defrag__set_error(p->e, -ENOSPC, "planned defrag: %s with %u regions incomplete", why, p->targets_left);
	return -ENOSPC;
}

/* --- execution: region by region --- */

/* The incomplete target block with the fewest blockers, then the most pages in place. */
static uint32_t pick_block(const struct plan *p)
{
	uint32_t best = NO_BLOCK, best_key = UINT32_MAX;

	for (uint32_t r = 0; r < p->nr_regions; r++) {
		uint32_t blk, key;

		if (p->rstate[r] != RP_TARGET)
			continue;
		blk = p->region_block[r];
		key = (uint32_t)(p->foreign[blk] + p->evict[blk]) << 10 | (MM_PAGEBLOCK_FRAMES - p->home[blk]);
		if (key < best_key) {
			best_key = key;
			best = blk;
		}
	}
	return best;
}

static inline frame_t home_of(const struct plan *p, frame_t f)
{
	gpfn_t g = gpamap__gpfn(&p->mm->map, f);

	return block_frame(p->region_block[g >> MM_PAGEBLOCK_ORDER]) + (g & (MM_PAGEBLOCK_FRAMES - 1));
}

/* Move the misplaced target page in frame f to its home slot h, which is free. */
static int move_home(struct plan *p, frame_t f, frame_t h)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	int ret;

	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	if (buddy__take(&mm->buddy, h))
		return -EIO;
	ret = defrag__move(e, f, h, 0);
	if (ret) {
		buddy__free(&mm->buddy, h, 0);
		return ret;
	}
	ret = page_placed(p, block_of(h));
	if (!ret)
		ret = frame_vacated(p, f, true);
	return ret;
}

/*
 * Make frame f of the block being processed hold no blocker. Ballast or a page
 * without a target goes to a spare frame. A misplaced target page goes home; if
 * its home holds another misplaced page, that one goes home first, and so on
 * (a chain, executed from its end; every move is final). The chain ends at a free
 * home, or at one whose occupant can be evicted. It can only close into a cycle
 * at f itself: then the last page is parked on a spare frame and, once f's page
 * has left, comes home into f (one extra copy).
 */
static int clear_slot(struct plan *p, frame_t f)
{
	struct mm *mm = p->mm;
	frame_t cur = f, parked = FRAME_NONE, x;
	int ret;

	if (buddy__frame_is_free(&mm->buddy, f) || is_home(p, f))
		return 0;
	if (!holds_target_page(p, f)) {
		ret = move_to_spare(p, f, 0, NULL);
		return ret ? ret : frame_vacated(p, f, false);
	}
	p->chain.n = 0;
	for (;;) {
		frame_t h = home_of(p, cur);

		ret = fs_push(&p->chain, cur);
		if (ret)
			return ret;
		if (buddy__frame_is_free(&mm->buddy, h))
			break;
		if (h == f) { /* a cycle through f: park its last page */
			p->chain.n--;
			ret = move_to_spare(p, cur, MOVE_TEMP, &parked);
			if (!ret)
				ret = frame_vacated(p, cur, true);
			if (ret)
				return ret;
			break;
		}
		if (!holds_target_page(p, h)) { /* ballast or a target-less page: evict it */
			ret = move_to_spare(p, h, 0, NULL);
			if (!ret)
				ret = frame_vacated(p, h, false);
			if (ret)
				return ret;
			break;
		}
		cur = h;
	}
	while (fs_pop(&p->chain, &x)) {
		ret = move_home(p, x, home_of(p, x));
		if (ret)
			return ret;
	}
	return parked == FRAME_NONE ? 0 : move_home(p, parked, f);
}

/* Without the fast path: pull each missing page into its slot with a 4 KiB move. */
static int fill_block_4k(struct plan *p, uint32_t blk)
{
	int ret = 0;

	for (frame_t f = block_frame(blk); f < block_frame(blk) + MM_PAGEBLOCK_FRAMES && !ret; f++)
		if (is_target(p, blk) && buddy__frame_is_free(&p->mm->buddy, f))
			ret = fill_slot(p, f);
	return ret;
}

static int process_block(struct plan *p, uint32_t blk)
{
	struct defrag_engine *e = p->e;
	frame_t f0 = block_frame(blk);
	int ret = 0;

	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && !ret; f++)
		ret = clear_slot(p, f);
	if (ret || !is_target(p, blk))
		return ret;
	if (e->req->flags & DEFRAG_F_NO_FAST_PATH)
		return fill_block_4k(p, blk); /* completion comes through p->complete */
	ret = fast_path(p, blk);
	return ret == -EAGAIN ? fill_block_4k(p, blk) : ret;
}

static int execute_ordered(struct plan *p)
{
	struct defrag_engine *e = p->e;
	uint32_t limit = e->req->max_regions;
	int ret = 0;

	while (!ret && p->targets_left) {
		frame_t x;
		uint32_t blk;

		if (limit && e->st->regions_promoted + e->st->regions_zero_copy >= limit)
			break;
		if (fs_pop(&p->complete, &x)) {
			ret = complete_block(p, x);
			continue;
		}
		blk = pick_block(p);
		if (blk == NO_BLOCK)
			break;
		p->cur_blk = blk;
		ret = process_block(p, blk);
		if (ret == -EAGAIN)
			ret = stuck(p, "no spare frame to evict into");
		plan_progress(p);
	}
	return ret;
}

/*
 * Blocks to borrow: one per region to be copied, less the clean blocks that are wholly free
 * already. Every region then gets an empty target: copied whole, with no 4 KiB eviction.
 */
static uint32_t borrow_wanted(struct plan *p, uint64_t *saves_ns)
{
	struct mm *mm = p->mm;
	uint32_t regions = 0, free_blocks = 0, used_blocks = 0;
	uint64_t used_frames = 0;

	for (uint32_t r = 0; r < p->nr_regions; r++)
		regions += defrag__region_full(mm, r) && !defrag__region_in_place(mm, r);
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		frame_t head;
		unsigned order;

		if (!pool__block_is_huge(&mm->pool, block_frame(blk)))
			continue;
		if (buddy__free_block_of(&mm->buddy, block_frame(blk), &head, &order) && order >= MM_PAGEBLOCK_ORDER) {
			free_blocks++;
		} else if (!defrag__block_has_unmovable(mm, blk)) {
			/* a target without borrowing: what is in it must be moved out first */
			used_blocks++;
			for (frame_t f = block_frame(blk); f < block_frame(blk) + MM_PAGEBLOCK_FRAMES; f++)
				used_frames += !buddy__frame_is_free(&mm->buddy, f);
		}
	}
	*saves_ns = used_blocks ? used_frames / used_blocks * p->e->est_move_ns : 0;
	if (p->e->req->max_regions && regions > p->e->req->max_regions)
		regions = p->e->req->max_regions;
	return regions > free_blocks ? regions - free_blocks : 0;
}

int plan__collapse(struct defrag_engine *e)
{
	struct plan p;
	uint64_t saves_ns;
	uint32_t want;
	uint64_t t;
	int ret, gret;

	ret = plan_alloc(&p, e);
	if (ret)
		goto out;
	p.cur_blk = p.park_blk = NO_BLOCK;
	if (e->req->borrow_bytes != DEFRAG_BORROW_OFF && e->mm->pool.nr_present < e->mm->pool.nr_blocks) {
		defrag__hold(e);
		want = borrow_wanted(&p, &saves_ns);
		defrag__release(e);
		t = mm__now_ns();
		ret = borrow__grow(e, want, saves_ns);
		e->st->borrow_ns = mm__now_ns() - t;
		if (ret)
			goto out;
	}
	t = mm__now_ns();
	defrag__hold(e);
	ret = plan_targets(&p);
	if (!ret)
		ret = plan_lists(&p);
	defrag__release(e);
	e->st->plan_ns = mm__now_ns() - t;
	if (ret)
		goto out;
	/* in pages to place (mm__defrag reports them as regions' worth of the work) */
	e->progress_done = 0;
	e->progress_total = p.to_place;
	for (uint32_t r = 0; r < p.nr_regions; r++)
		e->progress_total += p.rstate[r] == RP_ZERO ? MM_PAGEBLOCK_FRAMES : 0;
	if (e->req->max_regions && (uint64_t)e->req->max_regions * MM_PAGEBLOCK_FRAMES < e->progress_total)
		e->progress_total = (uint64_t)e->req->max_regions * MM_PAGEBLOCK_FRAMES;
	ret = zero_copy_all(&p);
	if (!ret)
		ret = execute_ordered(&p);
	/* Whatever happened, blocks left wholly free beyond the pool's size go back to the host. */
	t = mm__now_ns();
	gret = ret == -ECANCELED ? 0 : borrow__give_back(e);
	e->st->give_back_ns = mm__now_ns() - t;
	if (!ret)
		ret = gret;
	defrag__hold(e);
	/* Targets left incomplete by a cancel or an error are reported as failed (not those a
	 * max_regions limit left for the next run). */
	if (ret)
		for (uint32_t r = 0; r < p.nr_regions; r++)
			if (p.rstate[r] == RP_TARGET)
				e->st->regions_failed++;
out:
	if (ret == -ENOMEM)
		defrag__set_error(e, ret, "planned defrag: out of memory");
	plan_free(&p);
	return ret;
}
