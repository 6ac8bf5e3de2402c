/* collapse.c: khugepaged-style collapse: copy each guest 2 MiB region into a fresh host huge block. */
#include <errno.h>
#include <string.h>

#include "mm/internal.h"

/*
 * Allocation order of a THP in Linux: the smallest free block of order >= 9 on
 * the MOVABLE lists, then the fallback types. Here the block must also be a host
 * huge page, or KVM could not map the region with a 2 MiB entry.
 */
frame_t collapse__find_free_huge_block(const struct mm *mm)
{
	static const enum migratetype order_of_types[] = {
		MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
	};
	const struct buddy *b = &mm->buddy;

	for (unsigned o = MM_HPAGE_ORDER; o < MM_MAX_ORDER; o++)
		for (size_t t = 0; t < sizeof(order_of_types) / sizeof(order_of_types[0]); t++)
			for (frame_t h = b->area[o].head[order_of_types[t]]; h != FRAME_NONE; h = b->next[h])
				for (frame_t f = h; f < h + (1U << o); f += MM_PAGEBLOCK_FRAMES)
					if (pool__block_is_huge(&mm->pool, f))
						return f;
	return FRAME_NONE;
}

/* khugepaged's collapse_huge_page() for one region: a new block, copy, one 2 MiB remap. */
static int collapse_one(struct defrag_engine *e, uint32_t r, frame_t block)
{
	struct mm *mm = e->mm;
	int ret;

	if (buddy__take_block(&mm->buddy, block, MM_HPAGE_ORDER))
		return -EAGAIN;
	ret = defrag__collapse_into(e, r, block, NULL);
	if (ret)
		buddy__free(&mm->buddy, block, MM_HPAGE_ORDER);
	return ret;
}

/*
 * __alloc_pages_slowpath() for the THP: direct compaction for order 9. It starts
 * where the last one left the scanners; when they meet without a free block
 * (COMPACT_COMPLETE, which resets them) the retry at a higher priority scans the
 * whole zone again, as should_compact_retry() lets it. 0 or -errno.
 */
static int direct_compact(struct defrag_engine *e)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		enum compact_result res = defrag__compact(e, MM_HPAGE_ORDER, true);

		if (res == COMPACT_ABORTED)
			return e->st->error ? e->st->error : -ECANCELED;
		if (res != COMPACT_COMPLETE || collapse__find_free_huge_block(e->mm) != FRAME_NONE)
			break;
	}
	return 0;
}

/*
 * The khugepaged scan: regions in GPA order. A region already in order on a
 * host huge block only needs its 2 MiB mapping (zero copies). Any other region
 * gets a free huge block; when there is none, the allocation fails
 * (thp_collapse_alloc_failed) and, as __alloc_pages_slowpath() does for a THP,
 * direct compaction for order 9 runs before one retry. Once compaction could not
 * produce a block even over the whole zone, it is deferred and the remaining
 * regions fail.
 */
int collapse__linux(struct defrag_engine *e)
{
	struct mm *mm = e->mm;
	struct defrag_stats *st = e->st;
	uint32_t limit = e->req->max_regions, nr_regions = mm->map.nr_regions;
	bool compaction_deferred = false;
	int ret = 0;

	for (uint32_t r = 0; r < nr_regions; r++) {
		frame_t block;

		if (limit && st->regions_promoted + st->regions_zero_copy >= limit)
			break;
		defrag__hold(e);
		e->progress_done = r;
		e->progress_total = nr_regions;
		if (mm->region_huge_mapped[r])
			continue;
		if (!defrag__region_full(mm, r)) {
			st->regions_failed++;
			continue;
		}
		if (defrag__region_in_place(mm, r)) {
			ret = defrag__step_ensure(e, e->est_remap_ns);
			if (!ret)
				ret = defrag__promote_in_place(e, r);
			if (ret)
				break;
			continue;
		}
		ret = defrag__step_ensure(e, defrag__collapse_cost(e, r, MM_PAGEBLOCK_FRAMES));
		if (ret)
			break;
		block = collapse__find_free_huge_block(mm);
		if (block == FRAME_NONE) {
			mm->vmstat.thp_collapse_alloc_failed++;
			if (compaction_deferred) {
				st->regions_failed++;
				continue;
			}
			ret = direct_compact(e);
			if (ret)
				break;
			ret = defrag__step_ensure(e, defrag__collapse_cost(e, r, MM_PAGEBLOCK_FRAMES));
			if (ret)
				break;
			block = collapse__find_free_huge_block(mm);
			if (block == FRAME_NONE) {
				compaction_deferred = true;
				st->regions_failed++;
				continue;
			}
		}
		ret = collapse_one(e, r, block);
		if (ret == -EAGAIN) {
			st->regions_failed++;
			ret = 0;
			continue;
		}
		if (ret)
			break;
	}
	e->progress_done = nr_regions;
	e->progress_total = nr_regions;
	return ret;
}
