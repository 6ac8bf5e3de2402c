/* compact.c: Linux's compaction (the kernel's mm/compaction.c, not a file here): compaction_suitable(), compact_zone(), its scanners. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"

static const char *const compact_result_names[COMPACT_RESULT_COUNT] = {
	[COMPACT_NOT_SUITABLE_ZONE] = "not_suitable_zone",
	[COMPACT_SKIPPED] = "skipped",
	[COMPACT_CONTINUE] = "continue",
	[COMPACT_COMPLETE] = "complete",
	[COMPACT_PARTIAL_SKIPPED] = "partial_skipped",
	[COMPACT_SUCCESS] = "success",
	[COMPACT_ABORTED] = "aborted",
};

const char *compact_result__name(enum compact_result r)
{
	return (unsigned)r < COMPACT_RESULT_COUNT ? compact_result_names[r] : "?";
}

/* --- Linux compaction, after the kernel's mm/compaction.c --- */

enum isolate_result { ISOLATE_NONE, ISOLATE_SUCCESS };

/* A free block of at least `order` an allocation of that order could use (__compact_finished). */
static bool free_block_suitable(const struct mm *mm, int order)
{
	const struct buddy *b = &mm->buddy;

	for (int o = order; o < MM_MAX_ORDER; o++) {
		const struct free_area *area = &b->area[o];
		bool can_steal = o >= MM_PAGEBLOCK_ORDER / 2; /* can_steal_fallback() */

		if (!area->nr_free_mt[MIGRATE_MOVABLE] &&
		    !(can_steal && (area->nr_free_mt[MIGRATE_RECLAIMABLE] || area->nr_free_mt[MIGRATE_UNMOVABLE])))
			continue;
		if (o < MM_HPAGE_ORDER || mm->pool.nr_huge_blocks == mm->pool.nr_present)
			return true;
		/* A collapse needs the block to be a host huge page too. */
		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			for (frame_t h = area->head[mt]; h != FRAME_NONE; h = b->next[h])
				for (frame_t f = h; f < h + (1U << o); f += MM_PAGEBLOCK_FRAMES)
					if (pool__block_is_huge(&mm->pool, f))
						return true;
	}
	return false;
}

enum compact_result compaction_suitable(const struct mm *mm, int order, int extfrag_threshold)
{
	struct contig_page_info info;
	int fragindex;

	if (order < 0)
		return COMPACT_CONTINUE; /* compact_memory: always */
	if (order >= MM_MAX_ORDER)
		return COMPACT_NOT_SUITABLE_ZONE;
	if (extfrag_threshold <= 0)
		extfrag_threshold = EXTFRAG_THRESHOLD_DEFAULT;
	buddy__contig_page_info(&mm->buddy, (unsigned)order, &info);
	fragindex = fragmentation_index(&info, (unsigned)order);
	/* The allocation would succeed already (zone_watermark_ok for the order). */
	if (fragindex == -1000 && free_block_suitable(mm, order))
		return COMPACT_SUCCESS;
	/* Enough free memory to compact into: order-0 watermark plus compact_gap(order). */
	if (mm->buddy.nr_free_frames < (2ULL << order))
		return COMPACT_SKIPPED;
	/* Costly orders: the failure is due to lack of memory, not fragmentation. */
	if (order > PAGE_ALLOC_COSTLY_ORDER && fragindex >= 0 && fragindex <= extfrag_threshold)
		return COMPACT_SKIPPED;
	return COMPACT_CONTINUE;
}

void compact_control__init(struct compact_control *cc, struct defrag_engine *e, int order)
{
	memset(cc, 0, sizeof(*cc));
	cc->mm = e->mm;
	cc->req = e->req;
	cc->ops = e->ops;
	cc->stats = e->st;
	cc->engine = e;
	cc->order = order;
	cc->whole_zone = order < 0;
	cc->extfrag_threshold = e->req->extfrag_threshold > 0 ? e->req->extfrag_threshold
							     : EXTFRAG_THRESHOLD_DEFAULT;
	cc->migratepages = malloc(COMPACT_CLUSTER_MAX * sizeof(frame_t));
	/* One isolated buddy block can add up to 2^(MAX_ORDER-1) frames past the need. */
	cc->cap_freepages = COMPACT_CLUSTER_MAX + (1U << (MM_MAX_ORDER - 1));
	cc->freepages = malloc(cc->cap_freepages * sizeof(frame_t));
}

void compact_control__exit(struct compact_control *cc)
{
	free(cc->migratepages);
	free(cc->freepages);
	cc->migratepages = cc->freepages = NULL;
}

static frame_t last_pageblock(const struct mm *mm)
{
	return (mm->buddy.nr_frames - 1) & ~(MM_PAGEBLOCK_FRAMES - 1);
}

static bool compact_scanners_met(const struct compact_control *cc)
{
	return (cc->free_pfn >> MM_PAGEBLOCK_ORDER) <= (cc->migrate_pfn >> MM_PAGEBLOCK_ORDER);
}

/* __compact_finished() */
static enum compact_result compact_finished(struct compact_control *cc)
{
	if (defrag__cancelled(cc->engine))
		return COMPACT_ABORTED;
	if (compact_scanners_met(cc))
		return COMPACT_COMPLETE;
	if (cc->whole_zone)
		return COMPACT_CONTINUE;
	/* Finish the pageblock the migration scanner is in first. */
	if (cc->migrate_pfn & (MM_PAGEBLOCK_FRAMES - 1))
		return COMPACT_CONTINUE;
	return free_block_suitable(cc->mm, cc->order) ? COMPACT_SUCCESS : COMPACT_CONTINUE;
}

/* suitable_migration_source(): pages are taken from movable-ish pageblocks only. */
static bool suitable_migration_source(const struct compact_control *cc, frame_t block)
{
	return buddy__pageblock_mt(&cc->mm->buddy, block) != MIGRATE_UNMOVABLE;
}

/* suitable_migration_target(): a MOVABLE pageblock that is not one big free page. */
static bool suitable_migration_target(const struct compact_control *cc, frame_t block)
{
	const struct buddy *b = &cc->mm->buddy;
	uint8_t fo = b->frame_order[block];

	if ((fo & BUDDY_FREE_HEAD) && (fo & ~BUDDY_FREE_HEAD) >= MM_PAGEBLOCK_ORDER)
		return false;
	return buddy__pageblock_mt(b, block) == MIGRATE_MOVABLE;
}

/* isolate_migratepages_block(): isolate up to COMPACT_CLUSTER_MAX movable pages in [low, end). */
static void isolate_migratepages_block(struct compact_control *cc, frame_t low, frame_t end)
{
	struct mm *mm = cc->mm;
	struct defrag_engine *e = cc->engine;
	uint64_t scanned = 0, isolated = 0;
	frame_t f = low;

	while (f < end) {
		uint8_t fo = mm->buddy.frame_order[f];

		scanned++;
		if (fo & BUDDY_FREE_HEAD) {
			f += 1U << (fo & ~BUDDY_FREE_HEAD);
			continue;
		}
		switch (gpamap__owner(&mm->map, f)) {
		case FRAME_GUEST: {
			uint32_t r = gpamap__gpfn(&mm->map, f) >> MM_PAGEBLOCK_ORDER;

			if (e->compound[r] || mm->region_huge_mapped[r]) {
				/* A THP: skip it whole, as compaction skips compound pages. */
				f = (f | (MM_PAGEBLOCK_FRAMES - 1)) + 1;
				continue;
			}
			break;
		}
		case FRAME_BALLAST_MOVABLE:
			break;
		default: /* unmovable, isolated, or inside a free block */
			f++;
			continue;
		}
		cc->migratepages[cc->nr_migratepages++] = f++;
		isolated++;
		if (cc->nr_migratepages == COMPACT_CLUSTER_MAX)
			break;
	}
	cc->migrate_pfn = f < end ? f : end;
	trace_mm_compaction_isolate_migratepages(mm, low, cc->migrate_pfn, scanned, isolated);
	cc->total_migrate_scanned += scanned;
	mm->vmstat.compact_migrate_scanned += scanned;
	mm->vmstat.compact_isolated += isolated;
	e->st->migrate_isolated += isolated;
}

/* isolate_migratepages(): scan the next suitable pageblock below the free scanner. */
static enum isolate_result isolate_migratepages(struct compact_control *cc)
{
	frame_t low = cc->migrate_pfn;

	cc->nr_migratepages = 0;
	for (;;) {
		frame_t block_start = low & ~(MM_PAGEBLOCK_FRAMES - 1);
		frame_t block_end = block_start + MM_PAGEBLOCK_FRAMES;

		if (block_end > cc->free_pfn || block_end > cc->mm->buddy.nr_frames)
			break;
		if (!suitable_migration_source(cc, block_start)) {
			low = cc->migrate_pfn = block_end;
			continue;
		}
		isolate_migratepages_block(cc, low, block_end);
		break;
	}
	return cc->nr_migratepages ? ISOLATE_SUCCESS : ISOLATE_NONE;
}

/* isolate_freepages_block(): take free blocks in [*start, end) until enough are isolated. */
static void isolate_freepages_block(struct compact_control *cc, frame_t *start, frame_t end)
{
	struct mm *mm = cc->mm;
	uint64_t scanned = 0, isolated = 0;
	frame_t f = *start;

	while (f < end) {
		uint8_t fo = mm->buddy.frame_order[f];
		unsigned o;

		scanned++;
		if (!(fo & BUDDY_FREE_HEAD)) {
			f++;
			continue;
		}
		o = fo & ~BUDDY_FREE_HEAD;
		if (buddy__take_block(&mm->buddy, f, o)) {
			f++;
			continue;
		}
		for (frame_t i = f; i < f + (1U << o); i++) {
			gpamap__set_owner(&mm->map, i, FRAME_ISOLATED);
			cc->freepages[cc->nr_freepages++] = i;
		}
		isolated += 1U << o;
		f += 1U << o;
		if (cc->nr_freepages - cc->next_freepage >= cc->nr_migratepages)
			break;
	}
	trace_mm_compaction_isolate_freepages(mm, *start, f, scanned, isolated);
	*start = f;
	cc->total_free_scanned += scanned;
	mm->vmstat.compact_free_scanned += scanned;
	mm->vmstat.compact_isolated += isolated;
	cc->engine->st->free_isolated += isolated;
}

/* isolate_freepages(): the free scanner, from cc->free_pfn down to the migration scanner. */
static void isolate_freepages(struct compact_control *cc)
{
	int64_t low_pfn = (int64_t)(cc->migrate_pfn & ~(MM_PAGEBLOCK_FRAMES - 1)) + MM_PAGEBLOCK_FRAMES;
	int64_t block_start = cc->free_pfn & ~(MM_PAGEBLOCK_FRAMES - 1);
	int64_t isolate_start = cc->free_pfn;
	int64_t block_end = block_start + MM_PAGEBLOCK_FRAMES;

	cc->nr_freepages = cc->next_freepage = 0;
	if (block_end > cc->mm->buddy.nr_frames)
		block_end = cc->mm->buddy.nr_frames;
	for (; block_start >= low_pfn; block_end = block_start, block_start -= MM_PAGEBLOCK_FRAMES,
				       isolate_start = block_start) {
		frame_t s = (frame_t)isolate_start;

		defrag__scan_yield(cc->engine);
		if (!suitable_migration_target(cc, (frame_t)block_start))
			continue;
		isolate_freepages_block(cc, &s, (frame_t)block_end);
		isolate_start = s;
		if (cc->nr_freepages >= cc->nr_migratepages) {
			/* Resume in this block if it may hold more, else in the one below. */
			if (isolate_start >= block_end)
				isolate_start = block_start - MM_PAGEBLOCK_FRAMES;
			break;
		}
	}
	cc->free_pfn = isolate_start > 0 ? (frame_t)isolate_start : 0;
}

/* compaction_alloc(): the next isolated free frame, running the free scanner when out. */
static frame_t compaction_alloc(struct compact_control *cc)
{
	if (cc->next_freepage == cc->nr_freepages) {
		if (compact_scanners_met(cc))
			return FRAME_NONE;
		isolate_freepages(cc);
		if (cc->next_freepage == cc->nr_freepages)
			return FRAME_NONE;
	}
	return cc->freepages[cc->next_freepage++];
}

/* release_freepages(): give unused isolated free frames back to the buddy allocator. */
static void release_freepages(struct compact_control *cc)
{
	struct mm *mm = cc->mm;

	for (uint32_t i = cc->next_freepage; i < cc->nr_freepages; i++) {
		gpamap__set_owner(&mm->map, cc->freepages[i], FRAME_FREE);
		buddy__free(&mm->buddy, cc->freepages[i], 0);
	}
	cc->nr_freepages = cc->next_freepage = 0;
}

/* Still worth migrating? The map may have changed while the lock was dropped between steps. */
static bool still_movable(const struct compact_control *cc, frame_t f)
{
	const struct mm *mm = cc->mm;

	switch (gpamap__owner(&mm->map, f)) {
	case FRAME_BALLAST_MOVABLE:
		return true;
	case FRAME_GUEST: {
		uint32_t r = gpamap__gpfn(&mm->map, f) >> MM_PAGEBLOCK_ORDER;

		return !cc->engine->compound[r] && !mm->region_huge_mapped[r];
	}
	default:
		return false;
	}
}

/* migrate_pages(): move every isolated page to an isolated free frame. 0 or -errno. */
static int migrate_pages(struct compact_control *cc)
{
	struct defrag_engine *e = cc->engine;
	struct mm *mm = cc->mm;
	uint32_t i, moved = 0;
	int ret = 0;

	for (i = 0; i < cc->nr_migratepages; i++) {
		frame_t src = cc->migratepages[i], dst;

		ret = defrag__step_ensure(e, e->est_move_ns);
		if (ret)
			break;
		if (!still_movable(cc, src))
			continue;
		dst = compaction_alloc(cc);
		if (dst == FRAME_NONE) {
			ret = -ENOMEM;
			break;
		}
		ret = defrag__move(e, src, dst, 0);
		if (ret) {
			cc->freepages[--cc->next_freepage] = dst; /* dst is still isolated: unuse it */
			break;
		}
		moved++;
	}
	/* The pages left over are "put back": nothing to undo, they never left their frames. */
	if (ret && ret != -ECANCELED)
		mm->vmstat.pgmigrate_fail += cc->nr_migratepages - i;
	trace_mm_migrate_pages(mm, moved, ret && ret != -ECANCELED ? cc->nr_migratepages - i : 0, 0, 0, "compaction");
	trace_mm_compaction_migratepages(mm, moved, ret && ret != -ECANCELED ? cc->nr_migratepages - i : 0);
	cc->nr_migratepages = 0;
	return ret;
}

enum compact_result compact_zone(struct compact_control *cc)
{
	struct defrag_engine *e = cc->engine;
	struct mm *mm = cc->mm;
	enum compact_result ret;
	int err;

	if (!e || !cc->migratepages || !cc->freepages) {
		if (e)
			defrag__set_error(e, -ENOMEM, "compaction: out of memory");
		return COMPACT_ABORTED;
	}
	defrag__hold(e);
	e->st->compact_runs++;
	if (!cc->whole_zone) {
		ret = compaction_suitable(mm, cc->order, cc->extfrag_threshold);
		if (ret != COMPACT_CONTINUE)
			return ret;
	}
	cc->ran = true;
	/* Whole-zone compaction starts at the zone ends; direct compaction where the last left off. */
	if (cc->whole_zone || e->cached_free_pfn == FRAME_NONE ||
	    (e->cached_free_pfn >> MM_PAGEBLOCK_ORDER) <= (e->cached_migrate_pfn >> MM_PAGEBLOCK_ORDER)) {
		cc->migrate_pfn = 0;
		cc->free_pfn = last_pageblock(mm);
	} else {
		cc->migrate_pfn = e->cached_migrate_pfn;
		cc->free_pfn = e->cached_free_pfn;
	}
	trace_mm_compaction_begin(mm, 0, cc->migrate_pfn, cc->free_pfn, mm->buddy.nr_frames, cc->order);

	while ((ret = compact_finished(cc)) == COMPACT_CONTINUE) {
		defrag__hold(e);
		if (isolate_migratepages(cc) == ISOLATE_NONE)
			continue;
		err = migrate_pages(cc);
		if (err == -ENOMEM) {
			/* The free scanner met the migration scanner: nothing left to migrate into. */
			if (!compact_scanners_met(cc)) {
				ret = COMPACT_PARTIAL_SKIPPED;
				break;
			}
		} else if (err) {
			ret = COMPACT_ABORTED;
			break;
		}
		/* Both scanners' ground: compaction ends where they meet, not at the last frame.
		 * Direct compaction inside a collapse is part of that region's work: no report. */
		if (cc->whole_zone || e->req->mode == DEFRAG_COMPACT) {
			e->progress_done = cc->migrate_pfn + (cc->free_pfn < mm->buddy.nr_frames ?
							      mm->buddy.nr_frames - cc->free_pfn : 0);
			e->progress_total = mm->buddy.nr_frames;
		}
		defrag__scan_yield(e);
	}
	defrag__hold(e);
	trace_mm_compaction_end(mm, 0, cc->migrate_pfn, cc->free_pfn, mm->buddy.nr_frames, cc->order,
				compact_result__name(ret));
	release_freepages(cc);
	if (ret == COMPACT_COMPLETE) {
		e->cached_migrate_pfn = 0;
		e->cached_free_pfn = FRAME_NONE;
	} else {
		e->cached_migrate_pfn = cc->migrate_pfn;
		e->cached_free_pfn = cc->free_pfn;
	}
	return ret;
}

enum compact_result defrag__compact(struct defrag_engine *e, int order, bool direct)
{
	struct compact_control cc;
	struct mm *mm = e->mm;
	enum compact_result ret;

	compact_control__init(&cc, e, order);
	ret = compact_zone(&cc);
	compact_control__exit(&cc);
	defrag__hold(e);
	/* __alloc_pages_direct_compact(): a stall is counted when compaction actually ran. */
	if (direct && order >= 0 && cc.ran) {
		mm->vmstat.compact_stall++;
		if (free_block_suitable(mm, order))
			mm->vmstat.compact_success++;
		else
			mm->vmstat.compact_fail++;
	}
	return ret;
}

