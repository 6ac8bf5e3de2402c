/* engine.c: the defrag mechanism (like Linux's migrate.c): steps under a vCPU pause, page moves, region promotion, accounting. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"
#include "mm/util.h"

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
	elapsed = mm__now_ns() - e->t0_ns;
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
	e->step_t0_ns = mm__now_ns();
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
	trace_vcpu_pause(e->mm, e->st->steps + 1, mm__now_ns() - e->step_t0_ns);
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

/* The guest no longer sees the window of regions switched to the direct map: fix it after
 * the vCPUs resume (a failure leaves it stale; view__window retries before a page moves). */
static void fix_stale_windows(struct defrag_engine *e)
{
	for (uint32_t i = 0; i < e->nr_stale; i++)
		view__fix_window(e->mm, e->stale[i]);
	e->nr_stale = 0;
}

void defrag__step_end(struct defrag_engine *e)
{
	uint64_t t_end;

	if (!e->in_step)
		return;
	pthread_mutex_unlock(&e->mm->lock);
	/* The pause ends when resume lets the vCPUs go: waking them may preempt this thread,
	 * while the guest already runs, so the clock stops before that. */
	t_end = mm__now_ns();
	if (e->ops && e->ops->resume)
		e->ops->resume(e->ops->ctx);
	e->in_step = false;
	if (e->nr_stale) {
		pthread_mutex_lock(&e->mm->lock);
		fix_stale_windows(e);
		pthread_mutex_unlock(&e->mm->lock);
	}
	record_pause(e, t_end - e->step_t0_ns);
	trace_vcpu_resume(e->mm, e->st->steps, t_end - e->step_t0_ns);
	trace_defrag_step(e->mm, e->st->steps, t_end - e->step_t0_ns, e->step_ops, e->st->pages_copied);
	if (e->req->progress)
		e->req->progress(e->req->progress_ctx, e->progress_done, e->progress_total);
}

int defrag__step_ensure(struct defrag_engine *e, uint64_t cost_ns)
{
	if (e->in_step) {
		if (!e->step_ops || mm__now_ns() - e->step_t0_ns + cost_ns <= e->work_budget_ns)
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
	if (e->in_step && mm__now_ns() - e->step_t0_ns >= e->work_budget_ns) {
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

/* A page of region r is about to move: a region served from the direct map goes back to
 * the window first (the move remaps the window, which the guest must see). */
static int leave_direct_view(struct defrag_engine *e, uint32_t r)
{
	struct mm *mm = e->mm;
	int ret;

	if (!mm->region_view || !(mm->region_view[r] & MM_VIEW_DIRECT))
		return 0;
	ret = view__window(mm, r);
	if (ret) {
		mm->vmstat.pgmigrate_fail++;
		defrag__set_error(e, ret, "switching region %u back to the window failed: %s", r, strerror(-ret));
		return ret;
	}
	e->step_ops++;
	return 0;
}

int defrag__move(struct defrag_engine *e, frame_t src, frame_t dst, unsigned flags)
{
	struct mm *mm = e->mm;
	enum frame_owner owner = gpamap__owner(&mm->map, src);
	enum frame_owner dst_owner = gpamap__owner(&mm->map, dst);
	uint64_t t = mm__now_ns();
	int ret;

	if (owner != FRAME_GUEST && owner != FRAME_BALLAST_MOVABLE)
		return -EINVAL;
	if (dst_owner != FRAME_FREE && dst_owner != FRAME_ISOLATED)
		return -EBUSY;
	if (mm__fault(mm, MM_FAULT_COPY)) {
		mm->vmstat.pgmigrate_fail++;
		defrag__set_error(e, -EIO, "copying frame %u to %u failed (injected)", src, dst);
		return -EIO;
	}
	if (owner == FRAME_GUEST) {
		ret = leave_direct_view(e, gpamap__gpfn(&mm->map, src) >> MM_PAGEBLOCK_ORDER);
		if (ret)
			return ret;
	}
	pool__copy_frame(&mm->pool, dst, src);
	if (owner == FRAME_GUEST) {
		gpfn_t g = gpamap__gpfn(&mm->map, src);
		uint64_t t_remap = mm__now_ns();

		e->st->copy_ns += t_remap - t;
		gpamap__rebind(&mm->map, g, dst);
		ret = mm__fault(mm, MM_FAULT_REMAP_4K) ? -ENOMEM : window__remap_4k(&mm->win, &mm->map, g);
		e->st->remap_4k_ns += mm__now_ns() - t_remap;
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
	e->est_move_ns = ewma(e->est_move_ns, mm__now_ns() - t);
	trace_defrag_move(mm, owner == FRAME_GUEST ? (long long)gpamap__gpfn(&mm->map, dst) : -1LL, src, dst, mm__now_ns() - t, flags);
	return 0;
}

/* With a view attached, region r (now in order) is served from the direct map: one memslot
 * switch under the pause, the window is fixed after the vCPUs resume. false: no view, or the
 * switch failed and the caller remaps the window instead. */
static bool promote_by_view(struct defrag_engine *e, uint32_t r, uint64_t runs)
{
	struct mm *mm = e->mm;
	uint64_t t = mm__now_ns(), dt;

	if (!mm->view)
		return false;
	if (!(mm->region_view[r] & MM_VIEW_DIRECT)) {
		if (view__direct(mm, r)) {
			mm->view_stats.fallbacks++;
			return false;
		}
		if (e->nr_stale < mm->map.nr_regions)
			e->stale[e->nr_stale++] = r;
		else
			view__fix_window(mm, r);  /* a region promoted again in one step: rare */
	}
	dt = mm__now_ns() - t;
	e->compound[r] = 1;
	e->step_ops++;
	trace_mm_collapse_huge_page(mm, r, runs, dt);
	e->est_remap_ns = ewma(e->est_remap_ns, dt);
	return true;
}

/* Promote region r, which was mapped in `runs` pieces: switch its view or remap the window 2 MiB. */
static int remap_window_2m(struct defrag_engine *e, uint32_t r, uint64_t runs)
{
	struct mm *mm = e->mm;
	uint64_t t = mm__now_ns(), dt;
	int ret;

	if (promote_by_view(e, r, runs))
		return 0;
	ret = mm__fault(mm, MM_FAULT_REMAP_2M) ? -ENOMEM : window__remap_2m(&mm->win, &mm->map, r);
	if (ret)
		return ret;
	dt = mm__now_ns() - t;
	e->st->remap_2m_ns += dt;
	mm->region_huge_mapped[r] = 1;
	e->compound[r] = 1;
	e->st->remaps_2m++;
	e->step_ops++;
	trace_mm_collapse_huge_page(mm, r, runs, dt);
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
	uint64_t t = mm__now_ns(), t_remap;
	uint64_t runs = gpamap__count_runs_range(&mm->map, g0, MM_PAGEBLOCK_FRAMES);
	uint32_t n = 0;
	int ret;

	if (!old)
		old = local;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		old[i] = FRAME_NONE;
	if (mm__fault(mm, MM_FAULT_COPY)) {
		defrag__set_error(e, -EIO, "copying region %u into block %u failed (injected)", r,
				  block >> MM_PAGEBLOCK_ORDER);
		return -EIO;
	}
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		frame_t f = gpamap__frame(&mm->map, g0 + i);

		if (f == block + i)
			continue;
		if (f == FRAME_NONE)
			return -EINVAL;
		pool__copy_frame_nofence(&mm->pool, block + i, f);
		old[i] = f;
		n++;
	}
	pool__copy_fence();
	t_remap = mm__now_ns();
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


/* --- engine set-up and final accounting --- */

static int engine_alloc(struct defrag_engine *e, struct mm *mm, const struct defrag_request *req,
			const struct mm_step_ops *ops, struct defrag_stats *st)
{
	memset(e, 0, sizeof(*e));
	e->mm = mm;
	e->req = req;
	e->ops = ops;
	e->st = st;
	e->max_pause_ns = req->max_pause_ns ? req->max_pause_ns : DEFRAG_MAX_PAUSE_NS_DEFAULT;
	/* A step plans 5/8 of the pause: the rest is for stopping and resuming the vCPUs and for the
	 * estimates' error. With 7/8, steps filled the budget and 1 % of them overran it (bench_defrag_mm,
	 * 256M, --borrow off, memslot model: p99 0.90-1.02 ms, now 0.71-0.80 ms, same wall time). */
	e->work_budget_ns = e->max_pause_ns - e->max_pause_ns * 3 / 8;
	/* Starting points measured on a kvm_pvm host (README, "Measured"); the engine refines them as it goes. */
	e->est_move_ns = 10000;
	e->est_remap_ns = 50000;
	e->est_copy_ns = 700;
	e->est_unmap_ns = 600;
	e->cached_migrate_pfn = 0;
	e->cached_free_pfn = FRAME_NONE;
	e->moved = calloc(((size_t)mm->map.nr_gpfns + 63) / 64 + 1, sizeof(uint64_t));
	e->compound = calloc((size_t)mm->map.nr_regions + 1, 1);
	e->stale = calloc((size_t)mm->map.nr_regions + 1, sizeof(*e->stale));
	if (!e->moved || !e->compound || !e->stale)
		return -ENOMEM;
	return 0;
}

static void engine_free(struct defrag_engine *e)
{
	free(e->moved);
	free(e->compound);
	free(e->stale);
	free(e->pauses);
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
	st->view_switches = mm->view_stats.switches - e->view0.switches;
	st->view_switch_max_ns = mm->view_stats.switch_max_ns;
	st->view_demotions = mm->view_stats.demotions - e->view0.demotions;
	st->view_fallbacks = mm->view_stats.fallbacks - e->view0.fallbacks;
	st->window_fixes = mm->view_stats.window_fixes - e->view0.window_fixes;
	st->window_fix_ns = mm->view_stats.window_fix_ns - e->view0.window_fix_ns;
	for (uint32_t r = 0; r < mm->map.nr_regions; r++) {
		st->regions_huge_mapped += mm->region_huge_mapped[r];
		st->regions_backed_2m += defrag__region_in_place(mm, r);
	}
	pthread_mutex_unlock(&mm->lock);
	st->wall_ns = mm__now_ns() - e->t0_ns;
	if (e->nr_pauses) {
		qsort(e->pauses, e->nr_pauses, sizeof(uint64_t), mm__cmp_u64);
		st->pause_p99_ns = e->pauses[(e->nr_pauses * 99 + 99) / 100 - 1];
	}
	promoted = st->regions_promoted + st->regions_zero_copy;
	if (promoted)
		st->copies_per_promoted_page = (double)st->pages_copied / ((double)promoted * MM_PAGEBLOCK_FRAMES);
	if (st->guest_pages_moved)
		st->copies_per_moved_page = (double)st->pages_copied / (double)st->guest_pages_moved;
	st->borrowed_peak_bytes = e->present_peak > e->present_at_start ?
		(uint64_t)(e->present_peak - e->present_at_start) << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER) : 0;
	st->borrowed_bytes = (uint64_t)e->blocks_borrowed << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER);
	st->given_back_bytes = (uint64_t)e->blocks_given_back << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER);
	st->pool_rss_after_bytes = pool__present_bytes(&mm->pool);
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
	e->t0_ns = mm__now_ns();
	pthread_mutex_lock(&mm->lock);
	e->vm0 = mm->vmstat;
	e->present_at_start = e->present_peak = mm->pool.nr_present;
	st->promote_path = mm->view ? "memslot" : "remap";
	e->view0 = mm->view_stats;
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

