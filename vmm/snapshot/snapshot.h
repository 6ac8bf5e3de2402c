/* snapshot.h: write a guest's memory (and pool layout, vCPU state) to a snapshot file and restore it into a fresh mm. */
#ifndef VMC_SNAPSHOT_SNAPSHOT_H
#define VMC_SNAPSHOT_SNAPSHOT_H

#include "mm/mm.h"
#include "vmm/snapshot/format.h"
#include "vmm/snapshot/io.h"

/* Exit code for a snapshot file that is refused (corrupt, truncated, wrong version or sizes). */
#define SNAP_EXIT_BAD_FILE 2

struct snap_write_stats {
	uint64_t present_pages;    /* pages written (not all zero) */
	uint64_t data_bytes;       /* bytes of memory records written, rewrites included */
	uint64_t file_bytes;       /* space the file takes on disk (st_blocks × 512) */
	uint64_t regions_rewritten;/* by snap_writer__write_regions after the first pass (--live) */
	uint64_t mem_ns;           /* writing memory records */
	uint64_t total_ns;
	char io_note[160];
};

/*
 * A snapshot being written. snap_writer__open creates the file (sparse, at its final size);
 * write_regions writes the memory records of the selected regions (all on the first call; again
 * any later call, e.g. the pages KVM's dirty log names); finish writes the layout, vCPU states, the
 * region table and, last, the header, then syncs. The caller keeps guest memory still and the
 * pages unmoved during each call (vCPUs paused, or dirty-logged; mm->lock held).
 */
struct snap_writer {
	struct snap_io io;
	struct mm *mm;
	struct snap_header h;
	struct snap_region *table;
	struct snap_write_stats st;
	uint64_t t0;
	bool created;              /* the file is ours to remove if the snapshot fails */
	char path[4096];
};

int snap_writer__open(struct snap_writer *w, struct mm *mm, const char *path, unsigned depth, bool layout,
		      char *err, size_t errlen);
/* sel[r] != 0 selects region r; NULL: every region. */
int snap_writer__write_regions(struct snap_writer *w, const uint8_t *sel, char *err, size_t errlen);
int snap_writer__finish(struct snap_writer *w, const struct snap_vcpu *vcpus, uint32_t nr_vcpus, uint32_t flags,
			char *err, size_t errlen);
/* Close; on failure (ok = false) the half-written file is removed. */
void snap_writer__close(struct snap_writer *w, bool ok);

/* Everything above in one call, for a paused guest (vcpus may be NULL: an mm-only snapshot). */
int snapshot__write(struct mm *mm, const char *path, bool layout, const struct snap_vcpu *vcpus,
		    uint32_t nr_vcpus, struct snap_write_stats *st, char *err, size_t errlen);

/* A snapshot opened for restoring: header, vCPU states, layout and region table read and checked. */
struct snap_file {
	struct snap_io io;
	struct snap_header h;
	struct snap_region *table;
	struct snap_vcpu *vcpus;     /* h.nr_vcpus of them */
	struct mm_layout layout;     /* if h.flags & SNAP_F_LAYOUT */
	bool has_layout;
	uint64_t file_size;
};

/*
 * Open and validate everything but the memory records' checksums (those are checked as each
 * record is read): a refused file gets -EINVAL and one line in err, before anything is created.
 */
int snap_file__open(struct snap_file *f, const char *path, unsigned depth, char *err, size_t errlen);
void snap_file__close(struct snap_file *f);

/* The mm a restore needs: the saved sizes; the saved layout (use_layout) or every region linear
 * on its own huge block with the saved ballast recipe. cfg->pool_path etc. are left to the caller. */
int snap_file__mm_config(const struct snap_file *f, bool use_layout, struct mm_config *cfg, char *err, size_t errlen);

struct snap_restore_stats {
	uint64_t present_pages;
	uint64_t data_bytes;
	uint64_t read_ns;            /* reading and placing the records */
	uint64_t ready_ns;           /* until the pool was prefaulted too (mm__wait_ready) */
	char io_note[160];
};

/* Eager restore: read every record (checksum checked) into mm's frames, and fault the whole pool
 * in meanwhile (from the top down, while the records land from the bottom up). mm must have been
 * created from snap_file__mm_config, best with prefault = false (the restore does it; with mm's
 * own prefault the two just share the work). 0, -EINVAL (bad record: message names it) or -errno. */
int snap_file__restore(struct snap_file *f, struct mm *mm, struct snap_restore_stats *st, char *err, size_t errlen);

/* True if the page is all zero (absent from a snapshot). */
bool snap__page_is_zero(const void *page);

#endif
