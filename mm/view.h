/* view.h: how the guest sees each 2 MiB region: through the window, or straight from the pool's direct map (the VMM's per-region memslots). */
#ifndef VMC_MM_VIEW_H
#define VMC_MM_VIEW_H

#include <stdbool.h>
#include <stdint.h>

struct mm;

/*
 * The VMM's side of a view (vmm/memslots.c): point region r's guest mapping at hva. Called
 * under mm->lock with the vCPUs paused (or before they first run). 0 or -errno; on error
 * the region must still be served from where it was.
 */
struct mm_view_ops {
	void *ctx;
	int (*serve)(void *ctx, uint32_t region, void *hva);
};

/* Per-region view flags (mm->region_view). */
#define MM_VIEW_DIRECT       0x1u  /* served from the direct map of its block (in order) */
#define MM_VIEW_WINDOW_STALE 0x2u  /* the window's own mapping of it is not fixed yet */

/*
 * Attach a view: from now on every region in order on its block is served from the direct
 * map, the others through the window, and the defrag engine promotes a region by switching
 * its view instead of remapping the window under the pause. 0 or -errno with a message;
 * on error nothing is attached and every region is served through the window.
 */
int mm__view_attach(struct mm *mm, const struct mm_view_ops *ops, char *err, size_t errlen);
/* Serve every region through the window again and forget the view (before the VMM's
 * memslots go away). */
void mm__view_detach(struct mm *mm);

/* Host address the guest sees GPA gpa at now (direct map or window): the VMM's accessors. */
void *mm__view_hva(const struct mm *mm, uint64_t gpa);

/* --- the engine's side (mm/ only) --- */
/* Region r is in order on its block: serve it from the direct map; the window keeps its old
 * mappings until view__fix_window. 0 or -errno (then nothing changed). */
int view__direct(struct mm *mm, uint32_t r);
/* Region r is about to lose a page: serve it through the window again, fixing the window
 * first if it is stale. 0 or -errno (then nothing changed). */
int view__window(struct mm *mm, uint32_t r);
/* Bring the window's mapping of a directly served region up to date (one 2 MiB mapping):
 * after the vCPUs resume, since the guest does not see the window for that region. */
int view__fix_window(struct mm *mm, uint32_t r);

#endif
