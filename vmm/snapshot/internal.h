/* internal.h: what the snapshot writer, reader and lazy restorer share: staging slots, runs of present pages. */
#ifndef VMC_SNAPSHOT_INTERNAL_H
#define VMC_SNAPSHOT_INTERNAL_H

#include "vmm/snapshot/snapshot.h"

/* Staging buffers not in use, and the requests still out per buffer. */
struct snap_slots {
	unsigned free[SNAP_IO_MAX_DEPTH];
	unsigned nr_free;
	unsigned pending[SNAP_IO_MAX_DEPTH];
	uint32_t region[SNAP_IO_MAX_DEPTH];  /* reader: the region a buffer holds */
	uint8_t direct[SNAP_IO_MAX_DEPTH];   /* reader: read straight into the region's pool block */
};

void snap__slots_init(struct snap_slots *s, unsigned depth);
/* The next run of present pages at or after *p: [*start, *start + *n); false when none is left. */
bool snap__next_run(const struct snap_region *r, unsigned *p, unsigned *start, unsigned *n);
/* CRC32C of a region's present pages, staged at their offsets in buf. */
uint32_t snap__region_crc(const struct snap_region *r, const uint8_t *buf);
/* Copy a region staged in buf into mm's frames (present pages only; the rest stay as they are). */
void snap__region_place(struct mm *mm, uint32_t r, const struct snap_region *e, const uint8_t *buf);
/* Queue the reads of region r's present runs into a free staging buffer (s->nr_free > 0). */
int snap__queue_region_read(struct snap_file *f, struct snap_slots *s, uint32_t r);

#endif
