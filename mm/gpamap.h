/* gpamap.h: guest-physical page -> pool frame map, and its reverse map (frame -> GPA, owner). */
#ifndef VMC_MM_GPAMAP_H
#define VMC_MM_GPAMAP_H

#include "mm/buddy.h"

typedef uint32_t gpfn_t; /* guest page frame number: GPA >> 12 */
#define GPFN_NONE UINT32_MAX

/* Who owns an allocated pool frame. FRAME_FREE frames belong to the buddy allocator. */
enum frame_owner {
	FRAME_FREE,
	FRAME_GUEST,             /* backs a guest page; frame_to_gpfn is valid */
	FRAME_BALLAST_MOVABLE,   /* another tenant's movable page */
	FRAME_BALLAST_UNMOVABLE, /* another tenant's pinned page: never moved */
	FRAME_ISOLATED,          /* taken by a compaction scanner, in transit */
	FRAME_ABSENT,            /* frame space of a pool block the host does not back now (elastic pool) */
	FRAME_OWNERS
};

extern const char *const frame_owner_names[FRAME_OWNERS];

struct gpamap {
	uint32_t nr_gpfns;      /* guest RAM pages */
	uint32_t nr_frames;     /* pool frames */
	uint32_t nr_regions;    /* guest 2 MiB regions: nr_gpfns / 512, rounded up */
	frame_t *gpfn_frame;    /* FRAME_NONE while unbacked */
	gpfn_t *frame_gpfn;     /* GPFN_NONE unless owner == FRAME_GUEST */
	uint8_t *frame_owner;   /* enum frame_owner */
	uint64_t nr_owned[FRAME_OWNERS];
};

int gpamap__init(struct gpamap *m, uint32_t nr_gpfns, uint32_t nr_frames);
void gpamap__exit(struct gpamap *m);
/* Extend the frame space to nr_frames (> current); the new frames are FRAME_ABSENT. 0 or -ENOMEM. */
int gpamap__grow(struct gpamap *m, uint32_t nr_frames);

/* Bind gpfn to frame f (frame must be unowned, gpfn unbacked or being moved). */
void gpamap__bind(struct gpamap *m, gpfn_t g, frame_t f);
/* Point gpfn at a new frame; the old frame becomes FRAME_FREE in the map. Returns old frame. */
frame_t gpamap__rebind(struct gpamap *m, gpfn_t g, frame_t new_frame);
/* Unback gpfn g; its frame becomes FRAME_FREE in the map. Returns it, or FRAME_NONE. */
frame_t gpamap__unbind(struct gpamap *m, gpfn_t g);
void gpamap__set_owner(struct gpamap *m, frame_t f, enum frame_owner o);

static inline frame_t gpamap__frame(const struct gpamap *m, gpfn_t g) { return m->gpfn_frame[g]; }
static inline gpfn_t gpamap__gpfn(const struct gpamap *m, frame_t f) { return m->frame_gpfn[f]; }
static inline enum frame_owner gpamap__owner(const struct gpamap *m, frame_t f)
{
	return (enum frame_owner)m->frame_owner[f];
}

/* Region r (2 MiB of GPA) sits in order on one 2 MiB-aligned pool block. */
bool gpamap__region_in_order(const struct gpamap *m, uint32_t region);
/* Nr of regions in order (regardless of whether the pool block is a host huge page). */
uint32_t gpamap__count_in_order(const struct gpamap *m);
/* Nr of maximal runs contiguous in both GPA and frame: the VMAs the window needs. */
uint64_t gpamap__count_runs(const struct gpamap *m);
/* Runs within [g, g + n) only. */
uint64_t gpamap__count_runs_range(const struct gpamap *m, gpfn_t g, uint32_t n);

size_t gpamap__metadata_bytes(uint32_t nr_gpfns, uint32_t nr_frames);
/* Forward and reverse maps agree; owner counts agree. 0 or negative with why. */
int gpamap__check(const struct gpamap *m, char *why, size_t whylen);

#endif
