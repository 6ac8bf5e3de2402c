/* view.c: how the guest sees each 2 MiB region: through the window, or straight from the pool's direct map (the VMM's per-region memslots). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "mm/mm.h"
#include "mm/util.h"
#include "mm/view.h"

static void *region_window_hva(const struct mm *mm, uint32_t r)
{
	return window__gpa_ptr(&mm->win, (uint64_t)r << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER));
}

static void *region_direct_hva(const struct mm *mm, uint32_t r)
{
	frame_t f = gpamap__frame(&mm->map, (gpfn_t)r << MM_PAGEBLOCK_ORDER);

	return pool__frame_ptr(&mm->pool, f);
}

static int serve(struct mm *mm, uint32_t r, void *hva)
{
	uint64_t t = mm__now_ns(), dt;
	int ret = mm__fault(mm, MM_FAULT_VIEW) ? -ENOMEM : mm->view->serve(mm->view->ctx, r, hva);

	if (ret)
		return ret;
	dt = mm__now_ns() - t;
	mm->view_stats.switches++;
	mm->view_stats.switch_ns += dt;
	if (dt > mm->view_stats.switch_max_ns)
		mm->view_stats.switch_max_ns = dt;
	return 0;
}

int view__direct(struct mm *mm, uint32_t r)
{
	int ret;

	if (!mm->view || (mm->region_view[r] & MM_VIEW_DIRECT))
		return 0;
	if (!gpamap__region_in_order(&mm->map, r))
		return -EINVAL;
	ret = serve(mm, r, region_direct_hva(mm, r));
	if (ret)
		return ret;
	mm->region_view[r] = MM_VIEW_DIRECT | MM_VIEW_WINDOW_STALE;
	mm->region_huge_mapped[r] = 1;
	return 0;
}

int view__fix_window(struct mm *mm, uint32_t r)
{
	uint64_t t = mm__now_ns();
	int ret;

	if (!mm->region_view || !(mm->region_view[r] & MM_VIEW_WINDOW_STALE))
		return 0;
	ret = mm__fault(mm, MM_FAULT_REMAP_2M) ? -ENOMEM : window__remap_2m(&mm->win, &mm->map, r);
	if (ret)
		return ret;
	mm->region_view[r] &= ~MM_VIEW_WINDOW_STALE;
	mm->view_stats.window_fixes++;
	mm->view_stats.window_fix_ns += mm__now_ns() - t;
	return 0;
}

int view__window(struct mm *mm, uint32_t r)
{
	int ret;

	if (!mm->view || !(mm->region_view[r] & MM_VIEW_DIRECT))
		return 0;
	ret = view__fix_window(mm, r);
	if (ret)
		return ret;
	ret = serve(mm, r, region_window_hva(mm, r));
	if (ret)
		return ret;
	mm->region_view[r] = 0;
	mm->view_stats.demotions++;
	return 0;
}

void *mm__view_hva(const struct mm *mm, uint64_t gpa)
{
	uint32_t r = (uint32_t)(gpa >> (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER));

	if (gpa >= mm->win.size)
		return NULL;
	if (mm->region_view && (mm->region_view[r] & MM_VIEW_DIRECT))
		return (uint8_t *)region_direct_hva(mm, r) +
		       (gpa & ((1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER)) - 1));
	return window__gpa_ptr(&mm->win, gpa);
}

int mm__view_attach(struct mm *mm, const struct mm_view_ops *ops, char *err, size_t errlen)
{
	uint32_t nr = mm->map.nr_regions;
	int ret = 0;

	pthread_mutex_lock(&mm->lock);
	if (mm->view) {
		mm__set_msg(err, errlen, "mm: a view is already attached");
		ret = -EBUSY;
		goto out;
	}
	free(mm->region_view);
	mm->region_view = calloc(nr, 1);
	if (!mm->region_view) {
		mm__set_msg(err, errlen, "mm: out of memory for %u region views", nr);
		ret = -ENOMEM;
		goto out;
	}
	mm->view = ops;
	for (uint32_t r = 0; r < nr && !ret; r++) {
		bool direct = gpamap__region_in_order(&mm->map, r);

		ret = serve(mm, r, direct ? region_direct_hva(mm, r) : region_window_hva(mm, r));
		if (!ret && direct)
			mm->region_view[r] = MM_VIEW_DIRECT;  /* map_all already mapped it whole */
		else if (ret)
			mm__set_msg(err, errlen, "mm: serving region %u of %u failed: %s", r, nr, strerror(-ret));
	}
	if (ret) {
		for (uint32_t r = 0; r < nr; r++)
			if (mm->region_view[r] & MM_VIEW_DIRECT)
				mm->view->serve(mm->view->ctx, r, region_window_hva(mm, r));
		mm->view = NULL;
		free(mm->region_view);
		mm->region_view = NULL;
	}
out:
	pthread_mutex_unlock(&mm->lock);
	return ret;
}

void mm__view_detach(struct mm *mm)
{
	pthread_mutex_lock(&mm->lock);
	for (uint32_t r = 0; mm->view && r < mm->map.nr_regions; r++)
		if (view__fix_window(mm, r) || view__window(mm, r))
			mm->region_view[r] = 0;  /* the memslots go away anyway: window only */
	mm->view = NULL;
	free(mm->region_view);
	mm->region_view = NULL;
	pthread_mutex_unlock(&mm->lock);
}
