/* layout.h: a pool layout as plain data (which frame holds which guest page, ballast, pageblock types): export and replay. */
#ifndef VMC_MM_LAYOUT_H
#define VMC_MM_LAYOUT_H

#include "mm/buddy.h"
#include "mm/gpamap.h"

/* Frame tags besides a GPFN (the snapshot format stores these values verbatim). */
#define MM_LAYOUT_FREE 0xffffffffu
#define MM_LAYOUT_MOVABLE 0xfffffffeu    /* another tenant's movable page */
#define MM_LAYOUT_UNMOVABLE 0xfffffffdu  /* another tenant's pinned page */
#define MM_LAYOUT_ABSENT 0xfffffffcu     /* frame space of a block given back to the host (elastic pool) */

struct mm_layout {
	uint32_t nr_gpfns, nr_frames, nr_pageblocks;
	uint32_t *frame_tag;    /* per frame: the GPFN it holds, or MM_LAYOUT_* */
	uint8_t *pageblock_mt;  /* per pageblock: enum migratetype */
};

struct mm;

int mm_layout__alloc(struct mm_layout *l, uint32_t nr_gpfns, uint32_t nr_frames);
void mm_layout__free(struct mm_layout *l);
/* The layout of mm now. Caller holds mm->lock (or nothing else runs); -EBUSY if a frame is in
 * transit (FRAME_ISOLATED: the defrag engine is inside a step). */
int mm_layout__export(const struct mm *mm, struct mm_layout *l, char *err, size_t errlen);
/* Every tag valid, every guest page on exactly one frame, migratetypes valid. 0 or -EINVAL. */
int mm_layout__check(const struct mm_layout *l, char *err, size_t errlen);
/*
 * Like aging__place, but from a saved layout: bind every guest page and ballast frame as l says,
 * take exactly those frames from the buddy allocator (absent ones too: mm__create then gives those
 * blocks back), set the pageblock migratetypes. Needs a fresh
 * buddy and gpamap of l's sizes. The buddy's free set then equals the saved one, so buddyinfo and
 * pagetypeinfo's pageblock counts do too.
 */
int mm_layout__place(struct buddy *b, struct gpamap *m, const struct mm_layout *l, char *err, size_t errlen);

#endif
