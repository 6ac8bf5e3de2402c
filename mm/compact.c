/* compact.c: the defrag engine (steps, page moves, accounting), Linux's compact_zone() and mm__defrag(). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/compact.h"

const char *const compact_result_names[] = {
	[COMPACT_NOT_SUITABLE_ZONE] = "not_suitable_zone",
	[COMPACT_SKIPPED] = "skipped",
	[COMPACT_CONTINUE] = "continue",
	[COMPACT_COMPLETE] = "complete",
	[COMPACT_PARTIAL_SKIPPED] = "partial_skipped",
	[COMPACT_SUCCESS] = "success",
	[COMPACT_ABORTED] = "aborted",
};
const char *const defrag_mode_names[] = {
	[DEFRAG_COMPACT] = "compact",
	[DEFRAG_COLLAPSE] = "collapse",
	[DEFRAG_FULL] = "full",
};
const char *const defrag_algo_names[] = {
	[DEFRAG_ALGO_LINUX] = "linux",
	[DEFRAG_ALGO_PLANNED] = "planned",
};

void defrag_request__init(struct defrag_request *req)
{
	memset(req, 0, sizeof(*req));
	req->mode = DEFRAG_FULL;
	req->algo = DEFRAG_ALGO_PLANNED;
	req->order = -1;
	req->max_pause_ns = DEFRAG_MAX_PAUSE_NS_DEFAULT;
	req->extfrag_threshold = EXTFRAG_THRESHOLD_DEFAULT;
}

uint64_t defrag__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void defrag__set_error(struct defrag_engine *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (e->st->error && e->st->error != -ECANCELED)
		return; /* keep the first real error */
	e->st->error = err;
	va_start(ap, fmt);
	vsnprintf(e->st->error_msg, sizeof(e->st->error_msg), fmt, ap);
	va_end(ap);
}

/* --- steps --- */

static bool cancel_requested(const struct defrag_engine *e)
{
	return e->req->cancel && __atomic_load_n(e->req->cancel, __ATOMIC_ACQUIRE);
}

/* Sleep so that the bytes copied so far keep under max_bytes_per_sec. */
static void throttle(struct defrag_engine *e)
{
	uint64_t rate = e->req->max_bytes_per_sec, bytes, min_ns, elapsed;
	struct timespec ts;

	if (!rate)
		return;
	bytes = e->st->pages_copied << MM_PAGE_SHIFT;
	min_ns = (uint64_t)((double)bytes * 1e9 / (double)rate);
	elapsed = defrag__now_ns() - e->t0_ns;
	if (elapsed >= min_ns)
		return;
	min_ns -= elapsed;
	ts.tv_sec = (time_t)(min_ns / 1000000000ULL);
	ts.tv_nsec = (long)(min_ns % 1000000000ULL);
	nanosleep(&ts, NULL);
}

int defrag__step_begin(struct defrag_engine *e)
{
	int ret;

	if (e->in_step)
		return 0;
	if (e->locked) {
		pthread_mutex_unlock(&e->mm->lock);
		e->locked = false;
	}
	if (cancel_requested(e))
		return -ECANCELED;
	throttle(e);
	e->step_t0_ns = defrag__now_ns();
	if (e->ops && e->ops->pause) {
		ret = e->ops->pause(e->ops->ctx);
		if (ret) {
			ret = ret < 0 ? ret : -EIO;
			defrag__set_error(e, ret, "pausing the vCPUs failed: %s", strerror(-ret));
			return ret;
		}
	}
	pthread_mutex_lock(&e->mm->lock);
	e->in_step = true;
	e->step_ops = 0;
	return 0;
}

static void record_pause(struct defrag_engine *e, uint64_t ns)
{
	struct defrag_stats *st = e->st;
	unsigned bucket = 0;

	st->steps++;
	st->pause_total_ns += ns;
	if (ns > st->pause_max_ns)
		st->pause_max_ns = ns;
	while (bucket < DEFRAG_PAUSE_HIST - 1 && (ns >> (bucket + 1)))
		bucket++;
	st->pause_hist[bucket]++;
	if (e->nr_pauses == e->cap_pauses) {
		size_t cap = e->cap_pauses ? e->cap_pauses * 2 : 1024;
		uint64_t *p = realloc(e->pauses, cap * sizeof(*p));

		if (!p)
			return; /* max, total and histogram stay exact; p99 then comes from fewer steps */
		e->pauses = p;
		e->cap_pauses = cap;
	}
	e->pauses[e->nr_pauses++] = ns;
}

void defrag__step_end(struct defrag_engine *e)
{
	uint64_t t_end;

	if (!e->in_step)
		return;
	pthread_mutex_unlock(&e->mm->lock);
	/* The pause ends when resume lets the vCPUs go: waking them may preempt this thread,
	 * while the guest already runs, so the clock stops before that. */
	t_end = defrag__now_ns();
	if (e->ops && e->ops->resume)
		e->ops->resume(e->ops->ctx);
	e->in_step = false;
	record_pause(e, t_end - e->step_t0_ns);
	if (e->req->progress)
		e->req->progress(e->req->progress_ctx, e->progress_done, e->progress_total);
}

int defrag__step_ensure(struct defrag_engine *e, uint64_t cost_ns)
{
	if (e->in_step) {
		if (!e->step_ops || defrag__now_ns() - e->step_t0_ns + cost_ns <= e->work_budget_ns)
			return 0;
		defrag__step_end(e);
	}
	return defrag__step_begin(e);
}

void defrag__hold(struct defrag_engine *e)
{
	if (e->in_step || e->locked)
		return;
	pthread_mutex_lock(&e->mm->lock);
	e->locked = true;
}

void defrag__release(struct defrag_engine *e)
{
	if (e->in_step)
		defrag__step_end(e);
	if (e->locked) {
		pthread_mutex_unlock(&e->mm->lock);
		e->locked = false;
	}
}

void defrag__scan_yield(struct defrag_engine *e)
{
	if (e->in_step && defrag__now_ns() - e->step_t0_ns >= e->work_budget_ns) {
		defrag__step_end(e);
		defrag__hold(e);
	}
}

bool defrag__cancelled(struct defrag_engine *e)
{
	return cancel_requested(e);
}

void defrag__progress(struct defrag_engine *e, uint64_t done, uint64_t total)
{
	e->progress_done = done;
	e->progress_total = total;
}

/* Running estimate; one sample counts at most 4 times the estimate (a preempted step
 * must not make every later step look too expensive to try). */
static uint64_t ewma(uint64_t est, uint64_t sample)
{
	if (est && sample > 4 * est)
		sample = 4 * est;
	return (est * 7 + sample) / 8;
}

uint64_t defrag__collapse_cost(const struct defrag_engine *e, uint32_t r, uint32_t n)
{
	uint64_t runs = gpamap__count_runs_range(&e->mm->map, r << MM_PAGEBLOCK_ORDER, MM_PAGEBLOCK_FRAMES);

	return n * e->est_copy_ns + runs * e->est_unmap_ns + e->est_remap_ns;
}

/* --- moves --- */

static void note_moved(struct defrag_engine *e, gpfn_t g)
{
	uint64_t bit = 1ULL << (g & 63);

	if (!(e->moved[g >> 6] & bit)) {
		e->moved[g >> 6] |= bit;
		e->st->guest_pages_moved++;
	}
}

/* A page of region r leaves its place: r is no longer one 2 MiB mapping nor a "THP". */
static void region_broken(struct defrag_engine *e, uint32_t r)
{
	e->mm->region_huge_mapped[r] = 0;
	e->compound[r] = 0;
}

int defrag__move(struct defrag_engine *e, frame_t src, frame_t dst, unsigned flags)
{
	struct mm *mm = e->mm;
	enum frame_owner owner = gpamap__owner(&mm->map, src);
	enum frame_owner dst_owner = gpamap__owner(&mm->map, dst);
	uint64_t t = defrag__now_ns();
	int ret;

	if (owner != FRAME_GUEST && owner != FRAME_BALLAST_MOVABLE)
		return -EINVAL;
	if (dst_owner != FRAME_FREE && dst_owner != FRAME_ISOLATED)
		return -EBUSY;
	pool__copy_frame(&mm->pool, dst, src);
	if (owner == FRAME_GUEST) {
		gpfn_t g = gpamap__gpfn(&mm->map, src);
		uint64_t t_remap = defrag__now_ns();

		e->st->copy_ns += t_remap - t;
		gpamap__rebind(&mm->map, g, dst);
		ret = window__remap_4k(&mm->win, &mm->map, g);
		e->st->remap_4k_ns += defrag__now_ns() - t_remap;
		if (ret) {
			/* src still holds the page and the guest is paused: point g back at it. */
			int undo;

			gpamap__rebind(&mm->map, g, src);
			gpamap__set_owner(&mm->map, dst, dst_owner);
			undo = window__remap_4k(&mm->win, &mm->map, g);
			mm->vmstat.pgmigrate_fail++;
			defrag__set_error(e, ret, "remapping GPA %#llx to frame %u failed: %s%s",
					  (unsigned long long)g << MM_PAGE_SHIFT, dst, strerror(-ret),
					  undo ? " (and mapping it back failed too)" : "");
			return ret;
		}
		if (mm->region_huge_mapped[g >> MM_PAGEBLOCK_ORDER] || e->compound[g >> MM_PAGEBLOCK_ORDER])
			region_broken(e, g >> MM_PAGEBLOCK_ORDER);
		e->st->pages_moved_4k++;
		e->st->copies_guest++;
		if (flags & MOVE_TEMP)
			e->st->copies_temp++;
		note_moved(e, g);
	} else {
		gpamap__set_owner(&mm->map, dst, FRAME_BALLAST_MOVABLE);
		gpamap__set_owner(&mm->map, src, FRAME_FREE);
		e->st->copies_ballast++;
	}
	if (flags & MOVE_KEEP_SRC)
		gpamap__set_owner(&mm->map, src, FRAME_ISOLATED);
	else
		buddy__free(&mm->buddy, src, 0);
	mm->vmstat.pages_copied++;
	mm->vmstat.pgmigrate_success++;
	e->st->pages_copied++;
	e->step_ops++;
	e->est_move_ns = ewma(e->est_move_ns, defrag__now_ns() - t);
	return 0;
}

/* The 2 MiB window remap of region r, which was mapped in `runs` pieces. */
static int remap_window_2m(struct defrag_engine *e, uint32_t r, uint64_t runs)
{
	struct mm *mm = e->mm;
	uint64_t t = defrag__now_ns(), dt;
	int ret = window__remap_2m(&mm->win, &mm->map, r);

	if (ret)
		return ret;
	dt = defrag__now_ns() - t;
	e->st->remap_2m_ns += dt;
	mm->region_huge_mapped[r] = 1;
	e->compound[r] = 1;
	e->st->remaps_2m++;
	e->step_ops++;
	if (runs <= 1)
		e->est_remap_ns = ewma(e->est_remap_ns, dt);
	else if (dt > e->est_remap_ns)
		e->est_unmap_ns = ewma(e->est_unmap_ns, (dt - e->est_remap_ns) / runs);
	return 0;
}

static int remap_region_2m(struct defrag_engine *e, uint32_t r)
{
	return remap_window_2m(e, r, gpamap__count_runs_range(&e->mm->map, r << MM_PAGEBLOCK_ORDER,
							      MM_PAGEBLOCK_FRAMES));
}

int defrag__promote_in_place(struct defrag_engine *e, uint32_t r)
{
	int ret = remap_region_2m(e, r);

	if (ret) {
		defrag__set_error(e, ret, "2 MiB remap of region %u failed: %s", r, strerror(-ret));
		return ret;
	}
	e->mm->vmstat.thp_collapse_zero_copy++;
	e->st->regions_zero_copy++;
	return 0;
}

int defrag__promote_filled(struct defrag_engine *e, uint32_t r)
{
	int ret = remap_region_2m(e, r);

	if (ret) {
		defrag__set_error(e, ret, "2 MiB remap of region %u failed: %s", r, strerror(-ret));
		return ret;
	}
	e->mm->vmstat.thp_collapse_alloc++;
	e->st->regions_promoted++;
	return 0;
}

int defrag__collapse_into(struct defrag_engine *e, uint32_t r, frame_t block, frame_t *old)
{
	struct mm *mm = e->mm;
	frame_t local[MM_PAGEBLOCK_FRAMES];
	gpfn_t g0 = r << MM_PAGEBLOCK_ORDER;
	uint64_t t = defrag__now_ns(), t_remap;
	uint64_t runs = gpamap__count_runs_range(&mm->map, g0, MM_PAGEBLOCK_FRAMES);
	uint32_t n = 0;
	int ret;

	if (!old)
		old = local;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		frame_t f = gpamap__frame(&mm->map, g0 + i);

		old[i] = FRAME_NONE;
		if (f == block + i)
			continue;
		if (f == FRAME_NONE)
			return -EINVAL;
		pool__copy_frame_nofence(&mm->pool, block + i, f);
		old[i] = f;
		n++;
	}
	pool__copy_fence();
	t_remap = defrag__now_ns();
	e->st->copy_ns += t_remap - t;
	if (n)
		e->est_copy_ns = ewma(e->est_copy_ns, (t_remap - t) / n);
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		if (old[i] != FRAME_NONE)
			gpamap__rebind(&mm->map, g0 + i, block + i);
	ret = remap_window_2m(e, r, runs);
	if (ret) {
		int undo = 0;

		/* The old frames still hold the pages (the guest is paused): map them back. */
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
			if (old[i] == FRAME_NONE)
				continue;
			gpamap__rebind(&mm->map, g0 + i, old[i]);
			if (window__remap_4k(&mm->win, &mm->map, g0 + i))
				undo = -1;
		}
		defrag__set_error(e, ret, "2 MiB remap of region %u onto block %u failed: %s%s", r,
				  block >> MM_PAGEBLOCK_ORDER, strerror(-ret),
				  undo ? " (and mapping the old frames back failed too)" : "");
		return ret;
	}
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		if (old[i] == FRAME_NONE)
			continue;
		buddy__free(&mm->buddy, old[i], 0);
		note_moved(e, g0 + i);
	}
	mm->vmstat.pages_copied += n;
	e->st->pages_copied += n;
	e->st->copies_guest += n;
	e->st->copies_bulk += n;
	if (n) {
		mm->vmstat.thp_collapse_alloc++;
		e->st->regions_promoted++;
	} else {
		mm->vmstat.thp_collapse_zero_copy++;
		e->st->regions_zero_copy++;
	}
	return 0;
}

/* --- region and block predicates --- */

bool defrag__region_full(const struct mm *mm, uint32_t r)
{
	gpfn_t g0 = r << MM_PAGEBLOCK_ORDER;

	if ((uint64_t)g0 + MM_PAGEBLOCK_FRAMES > mm->map.nr_gpfns)
		return false;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		if (gpamap__frame(&mm->map, g0 + i) == FRAME_NONE)
			return false;
	return true;
}

bool defrag__region_in_place(const struct mm *mm, uint32_t r)
{
	return gpamap__region_in_order(&mm->map, r) &&
	       pool__block_is_huge(&mm->pool, gpamap__frame(&mm->map, r << MM_PAGEBLOCK_ORDER));
}

bool defrag__block_has_unmovable(const struct mm *mm, uint32_t blk)
{
	const uint8_t *own = mm->map.frame_owner + ((size_t)blk << MM_PAGEBLOCK_ORDER);

	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		if (own[i] == FRAME_BALLAST_UNMOVABLE)
			return true;
	return false;
}

/* --- Linux compaction (mm/compaction.c) --- */

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
		if (o < MM_HPAGE_ORDER || mm->pool.nr_huge_blocks == mm->pool.nr_blocks)
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
	int ret = 0;
	uint32_t i;

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
	}
	/* The pages left over are "put back": nothing to undo, they never left their frames. */
	if (ret && ret != -ECANCELED)
		mm->vmstat.pgmigrate_fail += cc->nr_migratepages - i;
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
		e->progress_done = cc->migrate_pfn;
		e->progress_total = mm->buddy.nr_frames;
		defrag__scan_yield(e);
	}
	defrag__hold(e);
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

/* --- mm__defrag --- */

static int engine_alloc(struct defrag_engine *e, struct mm *mm, const struct defrag_request *req,
			const struct mm_step_ops *ops, struct defrag_stats *st)
{
	memset(e, 0, sizeof(*e));
	e->mm = mm;
	e->req = req;
	e->ops = ops;
	e->st = st;
	e->max_pause_ns = req->max_pause_ns ? req->max_pause_ns : DEFRAG_MAX_PAUSE_NS_DEFAULT;
	e->work_budget_ns = e->max_pause_ns - e->max_pause_ns / 8; /* resume and wake-up latency */
	/* Starting points from MEASURED.md; the engine refines them as it goes. */
	e->est_move_ns = 10000;
	e->est_remap_ns = 50000;
	e->est_copy_ns = 700;
	e->est_unmap_ns = 1000;
	e->cached_migrate_pfn = 0;
	e->cached_free_pfn = FRAME_NONE;
	e->moved = calloc(((size_t)mm->map.nr_gpfns + 63) / 64 + 1, sizeof(uint64_t));
	e->compound = calloc((size_t)mm->map.nr_regions + 1, 1);
	if (!e->moved || !e->compound)
		return -ENOMEM;
	return 0;
}

static void engine_free(struct defrag_engine *e)
{
	free(e->moved);
	free(e->compound);
	free(e->pauses);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void finish_stats(struct defrag_engine *e)
{
	struct defrag_stats *st = e->st;
	struct mm *mm = e->mm;
	const uint64_t *now = (const uint64_t *)&mm->vmstat, *then = (const uint64_t *)&e->vm0;
	uint64_t *delta = (uint64_t *)&st->delta;
	uint32_t promoted;

	pthread_mutex_lock(&mm->lock);
	for (size_t i = 0; i < sizeof(struct mm_vmstat) / sizeof(uint64_t); i++)
		delta[i] = now[i] - then[i];
	for (uint32_t r = 0; r < mm->map.nr_regions; r++) {
		st->regions_huge_mapped += mm->region_huge_mapped[r];
		st->regions_backed_2m += defrag__region_in_place(mm, r);
	}
	pthread_mutex_unlock(&mm->lock);
	st->wall_ns = defrag__now_ns() - e->t0_ns;
	if (e->nr_pauses) {
		qsort(e->pauses, e->nr_pauses, sizeof(uint64_t), cmp_u64);
		st->pause_p99_ns = e->pauses[(e->nr_pauses * 99 + 99) / 100 - 1];
	}
	promoted = st->regions_promoted + st->regions_zero_copy;
	if (promoted)
		st->copies_per_promoted_page = (double)st->pages_copied / ((double)promoted * MM_PAGEBLOCK_FRAMES);
	if (st->guest_pages_moved)
		st->copies_per_moved_page = (double)st->pages_copied / (double)st->guest_pages_moved;
	st->regions_blocked = mm->map.nr_regions > st->regions_achievable ?
				      mm->map.nr_regions - st->regions_achievable : 0;
}

int defrag_engine__init(struct defrag_engine *e, struct mm *mm, const struct defrag_request *req,
			const struct mm_step_ops *ops, struct defrag_stats *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	ret = engine_alloc(e, mm, req, ops, st);
	if (ret) {
		engine_free(e);
		memset(e, 0, sizeof(*e)); /* defrag_engine__exit() is then a no-op */
		snprintf(st->error_msg, sizeof(st->error_msg), "defrag: out of memory");
		st->error = ret;
		return ret;
	}
	e->t0_ns = defrag__now_ns();
	pthread_mutex_lock(&mm->lock);
	e->vm0 = mm->vmstat;
	st->regions_achievable = mm__achievable_regions(mm);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		e->compound[r] = mm->region_huge_mapped[r] || defrag__region_in_place(mm, r);
	pthread_mutex_unlock(&mm->lock);
	return 0;
}

void defrag_engine__exit(struct defrag_engine *e)
{
	if (e->mm)
		defrag__release(e);
	if (e->moved && e->compound)
		finish_stats(e);
	engine_free(e);
}

int mm__defrag(struct mm *mm, const struct defrag_request *req, const struct mm_step_ops *ops,
	       struct defrag_stats *st)
{
	struct defrag_engine e;
	enum compact_result cres = COMPACT_SKIPPED;
	int ret;

	/* Free frames must be faulted in (host THPs allocated) before anything is copied there. */
	ret = mm__wait_ready(mm);
	if (ret) {
		memset(st, 0, sizeof(*st));
		st->error = ret;
		snprintf(st->error_msg, sizeof(st->error_msg), "prefault failed: %.100s",
			 mm->prefault_err);
		return ret;
	}
	ret = defrag_engine__init(&e, mm, req, ops, st);
	if (ret)
		goto out;

	if (req->mode > DEFRAG_FULL || req->algo > DEFRAG_ALGO_PLANNED) {
		defrag__set_error(&e, -EINVAL, "defrag: unknown mode %d or algorithm %d", req->mode, req->algo);
		ret = -EINVAL;
		goto out;
	}
	switch (req->mode) {
	case DEFRAG_COMPACT:
		if (req->algo == DEFRAG_ALGO_LINUX)
			cres = defrag__compact(&e, req->order, req->order >= 0);
		else
			cres = plan__compact(&e, req->order);
		ret = cres == COMPACT_ABORTED ? (st->error ? st->error : -ECANCELED) : 0;
		break;
	case DEFRAG_COLLAPSE:
		ret = req->algo == DEFRAG_ALGO_LINUX ? collapse__linux(&e) : plan__collapse(&e);
		break;
	case DEFRAG_FULL:
		if (req->algo == DEFRAG_ALGO_LINUX) {
			cres = defrag__compact(&e, -1, false);
			ret = cres == COMPACT_ABORTED ? (st->error ? st->error : -ECANCELED) : 0;
			if (!ret)
				ret = collapse__linux(&e);
		} else {
			/* The plan puts every page straight into its final block: no compaction first. */
			ret = plan__collapse(&e);
		}
		break;
	}
	st->compact_result = cres;
	if (ret == -ECANCELED && !st->error)
		defrag__set_error(&e, ret, "cancelled");
out:
	defrag_engine__exit(&e);
	return ret;
}
