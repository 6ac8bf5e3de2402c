/* plan.h: what the planned collapse's two halves share (plan.c decides, plan_execute.c moves): the plan and its predicates. */
#ifndef VMC_MM_PLAN_H
#define VMC_MM_PLAN_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"

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

static inline int fs_push(struct frame_stack *s, frame_t f)
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

static inline bool fs_pop(struct frame_stack *s, frame_t *f)
{
	if (!s->n)
		return false;
	*f = s->v[--s->n];
	return true;
}

static inline void fs_free(struct frame_stack *s)
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

static inline frame_t home_of(const struct plan *p, frame_t f)
{
	gpfn_t g = gpamap__gpfn(&p->mm->map, f);

	return block_frame(p->region_block[g >> MM_PAGEBLOCK_ORDER]) + (g & (MM_PAGEBLOCK_FRAMES - 1));
}

/* plan_execute.c: step 2. Promote the regions in order on a host huge block (a remap each) /
 * fill the target blocks, fewest blockers first, until done or max_regions. 0 or -errno. */
int plan__zero_copy_all(struct plan *p);
int plan__execute_ordered(struct plan *p);

#endif
