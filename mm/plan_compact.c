/* plan_compact.c: planned compaction: free aligned blocks of an order by evacuating the cheapest ones. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"
#include "mm/util.h"


/*
 * Linux frees a block of order N by migrating everything below where its two
 * scanners meet. Here the cost of freeing each aligned block of order N is known
 * (its movable frames), so the cheapest one is evacuated (order N), or for a full
 * compaction the cheapest floor(free / 2^N) pageblocks: the fewest copies for the
 * same number of free blocks. Evacuated pages fill the smallest free holes first.
 */

/* The smallest free block outside the chunks being evacuated (their frames are all taken). */
static frame_t take_hole(struct mm *mm)
{
	static const enum migratetype order_of_types[] = {
		MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
	};

	for (size_t t = 0; t < sizeof(order_of_types) / sizeof(order_of_types[0]); t++)
		for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
			frame_t h = mm->buddy.area[o].head[order_of_types[t]];

			if (h != FRAME_NONE && !buddy__take(&mm->buddy, h))
				return h;
		}
	return FRAME_NONE;
}

/* Movable frames in the chunk, or -1 if it cannot be freed. */
static int64_t chunk_cost(struct defrag_engine *e, frame_t c0, uint32_t len, bool need_huge)
{
	const struct mm *mm = e->mm;
	int64_t cost = 0;

	if (need_huge)
		for (frame_t f = c0; f < c0 + len; f += MM_PAGEBLOCK_FRAMES)
			if (!pool__block_is_huge(&mm->pool, f))
				return -1;
	if (len < MM_PAGEBLOCK_FRAMES && buddy__pageblock_mt(&mm->buddy, c0) != MIGRATE_MOVABLE)
		return -1;
	for (frame_t f = c0; f < c0 + len; f++) {
		switch (gpamap__owner(&mm->map, f)) {
		case FRAME_FREE:
			break;
		case FRAME_BALLAST_MOVABLE:
			cost++;
			break;
		case FRAME_GUEST:
			if (e->compound[gpamap__gpfn(&mm->map, f) >> MM_PAGEBLOCK_ORDER])
				return -1;
			cost++;
			break;
		default:
			return -1;
		}
	}
	return cost;
}

static int cmp_chunk(const void *a, const void *b, void *cost)
{
	int64_t x = ((const int64_t *)cost)[*(const uint32_t *)a];
	int64_t y = ((const int64_t *)cost)[*(const uint32_t *)b];

	if (x != y)
		return x < y ? -1 : 1;
	return mm__cmp_u32(a, b);
}

static int evacuate(struct defrag_engine *e, const uint32_t *chunks, uint32_t n, unsigned corder)
{
	struct mm *mm = e->mm;
	uint32_t len = 1U << corder;
	uint64_t isolated = 0;
	int ret = 0;

	/* Hold every free frame of the chunks so no evacuated page lands in one. */
	for (uint32_t i = 0; i < n; i++)
		for (frame_t f = chunks[i] << corder; f < (chunks[i] + 1) << corder; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_FREE && !buddy__take(&mm->buddy, f))
				gpamap__set_owner(&mm->map, f, FRAME_ISOLATED);
	for (uint32_t i = 0; i < n && !ret; i++) {
		for (frame_t f = chunks[i] << corder; f < (chunks[i] << corder) + len && !ret; f++) {
			enum frame_owner o = gpamap__owner(&mm->map, f);
			frame_t dst;

			if (o != FRAME_GUEST && o != FRAME_BALLAST_MOVABLE)
				continue;
			ret = defrag__step_ensure(e, e->est_move_ns);
			if (ret)
				break;
			dst = take_hole(mm);
			if (dst == FRAME_NONE) {
				ret = -ENOSPC;
				break;
			}
			ret = defrag__move(e, f, dst, MOVE_KEEP_SRC);
			if (ret) {
				buddy__free(&mm->buddy, dst, 0);
				break;
			}
			isolated++;
			mm->vmstat.compact_isolated++;
		}
		e->progress_done = i + 1;
	}
	e->st->migrate_isolated += isolated;
	/* Give the chunks back: they merge into free blocks of the order asked. */
	defrag__hold(e);
	for (uint32_t i = 0; i < n; i++)
		for (frame_t f = chunks[i] << corder; f < (chunks[i] + 1) << corder; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_ISOLATED) {
				gpamap__set_owner(&mm->map, f, FRAME_FREE);
				buddy__free(&mm->buddy, f, 0);
			}
	return ret;
}

enum compact_result plan__compact(struct defrag_engine *e, int order)
{
	struct mm *mm = e->mm;
	unsigned corder = order >= 0 ? (unsigned)order : MM_PAGEBLOCK_ORDER;
	uint32_t nr_chunks, *idx = NULL, n = 0, take;
	int64_t *cost = NULL;
	enum compact_result res;
	int threshold = e->req->extfrag_threshold > 0 ? e->req->extfrag_threshold : EXTFRAG_THRESHOLD_DEFAULT;
	bool need_huge = corder >= MM_HPAGE_ORDER && mm->pool.nr_huge_blocks != mm->pool.nr_present;
	int ret;

	if (order >= MM_MAX_ORDER)
		return COMPACT_NOT_SUITABLE_ZONE;
	defrag__hold(e);
	e->st->compact_runs++;
	if (order >= 0) {
		res = compaction_suitable(mm, order, threshold);
		if (res != COMPACT_CONTINUE)
			return res;
	}
	nr_chunks = mm->buddy.nr_frames >> corder;
	cost = malloc((nr_chunks + 1) * sizeof(*cost));
	idx = malloc((nr_chunks + 1) * sizeof(*idx));
	if (!cost || !idx) {
		defrag__set_error(e, -ENOMEM, "planned compaction: out of memory");
		res = COMPACT_ABORTED;
		goto out;
	}
	for (uint32_t c = 0; c < nr_chunks; c++) {
		cost[c] = chunk_cost(e, c << corder, 1U << corder, need_huge);
		if (cost[c] >= 0)
			idx[n++] = c;
	}
	mm->vmstat.compact_migrate_scanned += (uint64_t)nr_chunks << corder;
	qsort_r(idx, n, sizeof(*idx), cmp_chunk, cost);
	/* Frames to free must fit in the free memory: floor(free / chunk) chunks at most. */
	take = (uint32_t)(mm->buddy.nr_free_frames >> corder);
	if (order >= 0 && take > 1)
		take = 1;
	if (take > n)
		take = n;
	/* Chunks already free need nothing; for order N one of them would have been a success. */
	e->progress_total = take;
	if (order >= 0)
		mm->vmstat.compact_stall++;
	ret = evacuate(e, idx, take, corder);
	if (ret == -ECANCELED || (ret && ret != -ENOSPC)) {
		res = COMPACT_ABORTED;
	} else if (order >= 0) {
		res = compaction_suitable(mm, order, threshold) == COMPACT_SUCCESS ? COMPACT_SUCCESS
										     : COMPACT_COMPLETE;
		if (res == COMPACT_SUCCESS)
			mm->vmstat.compact_success++;
		else
			mm->vmstat.compact_fail++;
	} else {
		res = COMPACT_COMPLETE;
	}
out:
	free(cost);
	free(idx);
	return res;
}
