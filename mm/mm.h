/* mm.h: the guest memory manager: pool + buddy + GPA map + window, and its statistics. */
#ifndef VMC_MM_MM_H
#define VMC_MM_MM_H

#include <pthread.h>
#include "mm/aging.h"
#include "mm/layout.h"
#include "mm/buddy.h"
#include "mm/gpamap.h"
#include "mm/pool.h"
#include "mm/trace.h"
#include "mm/view.h"
#include "mm/window.h"

struct mm_config {
	uint64_t guest_bytes;      /* multiple of 2 MiB */
	uint64_t slack_bytes;      /* extra pool frames: ballast + free; rounded up to 2 MiB */
	const char *pool_path;     /* see pool_config.path */
	bool prefault;
	bool prefault_async;       /* prefault on a thread after mm__create returns (see mm__wait_ready) */
	uint64_t borrow_capacity_bytes; /* frame space beyond guest + slack that defrag may borrow from
					 * the host as whole 2 MiB blocks (0: none); rounded up to 2 MiB */
	bool force_mem;            /* create a pool larger than the host's MemAvailable anyway */
	uint64_t fake_mem_available; /* tests: non-zero replaces MemAvailable */
	struct aging_config aging;
	const struct mm_layout *layout; /* non-NULL: place this saved layout (mm/layout.h), not aging */
};

/* Counters named like /proc/vmstat's. */
struct mm_vmstat {
	uint64_t compact_migrate_scanned;
	uint64_t compact_free_scanned;
	uint64_t compact_isolated;
	uint64_t compact_stall;
	uint64_t compact_fail;
	uint64_t compact_success;
	uint64_t pgmigrate_success;       /* 4 KiB moves (copy + remap) */
	uint64_t pgmigrate_fail;
	uint64_t thp_collapse_alloc;      /* regions promoted by copying into a new block */
	uint64_t thp_collapse_zero_copy;  /* regions already in order, promoted by remap only */
	uint64_t thp_collapse_alloc_failed;
	uint64_t pages_copied;            /* every 4 KiB copy, for copies-per-page figures */
};

/*
 * Fault injection (tests): countdown[p] = n > 0 makes the n-th operation at point p from now
 * fail (then the countdown is 0 again: off). Checked by the defrag engine before it acts, so a
 * failure looks like the real one (mmap/fallocate/... returning an error) to everything above.
 */
enum mm_fault_point {
	MM_FAULT_COPY,       /* a 4 KiB copy (move) or a whole-region copy: -EIO */
	MM_FAULT_REMAP_4K,   /* window__remap_4k of a move: -ENOMEM (as vm.max_map_count reached) */
	MM_FAULT_REMAP_2M,   /* the 2 MiB remap that promotes a region: -ENOMEM */
	MM_FAULT_BORROW,     /* making a borrowed block present / faulting it in: -ENOSPC */
	MM_FAULT_GIVE_BACK,  /* giving a block back: -EBUSY */
	MM_FAULT_VIEW,       /* switching a region's view (the VMM's memslot ioctl): -ENOMEM */
	MM_FAULT_POINTS
};

struct mm_fault_inject {
	uint32_t countdown[MM_FAULT_POINTS];
	uint32_t hits[MM_FAULT_POINTS];   /* failures injected so far */
};

/* Region view switches (mm/view.h), cumulative over the mm's life. */
struct mm_view_stats {
	uint64_t switches;        /* serve() calls that succeeded (memslot switches) */
	uint64_t switch_ns, switch_max_ns;
	uint64_t demotions;       /* direct -> window, because a page left the region */
	uint64_t window_fixes;    /* stale window regions remapped 2 MiB after the vCPUs resumed */
	uint64_t window_fix_ns;
	uint64_t fallbacks;       /* promotions that fell back to the window remap */
};

/* Where mm__create spent its time (the VMM's start-up budget). */
struct mm_startup {
	uint64_t layout_ns;   /* buddy + gpamap init, aging__place */
	uint64_t pool_ns;     /* pool__create, prefault included */
	uint64_t prefault_ns; /* of which prefaulting */
	uint64_t map_ns;      /* window__create + window__map_all */
	uint64_t total_ns;
};

struct mm {
	pthread_mutex_t lock;      /* held by the defrag engine per step and by readers of stats */
	struct mm_config cfg;
	struct pool pool;
	struct buddy buddy;
	struct gpamap map;
	struct window win;
	struct mm_vmstat vmstat;
	struct mm_fault_inject fault_inject; /* tests only; all zero: off */
	uint8_t *region_huge_mapped; /* per guest region: mapped with one 2 MiB mapping; set by
				      * mm__create for regions in order, kept by whoever remaps */
	const struct mm_view_ops *view; /* NULL: the guest sees every region through the window */
	uint8_t *region_view;      /* per region: MM_VIEW_* flags, NULL when no view is attached */
	struct mm_view_stats view_stats;
	struct mm_startup startup;
	struct mm_trace *trace;    /* trace-file sink for mm/trace.h's events, NULL: USDT probes only;
				    * set by the owner after mm__create */
	/* asynchronous prefault: the guest may start while the pool is faulted in */
	pthread_t prefault_thread;
	bool prefault_thread_started;
	uint8_t *block_prefaulted; /* per pool block, async prefault: done before the guest starts */
	pthread_mutex_t ready_lock;
	pthread_cond_t ready_cond;
	bool ready;                /* pool prefaulted (or not asked to be) and huge blocks known */
	int prefault_rc;
	char prefault_err[256];
};

/*
 * Validate cfg, lay out guest and ballast (aging__place), check the VMA budget, then
 * create the pool (prefaulted if asked) and map the window. The VMA budget is checked
 * before the pool is made, so a refused configuration costs no prefault.
 * 0 or -errno with a message in err.
 */
int mm__create(struct mm *mm, const struct mm_config *cfg, char *err, size_t errlen);
/* Block until the pool is prefaulted and its huge blocks are known (immediate unless
 * cfg.prefault_async). 0, or the prefault's -errno (message in mm->prefault_err). */
int mm__wait_ready(struct mm *mm);
/* Only after a successful mm__create (a failed one has already cleaned up). */
void mm__destroy(struct mm *mm);

/* A snapshot of everything a user wants to see about guest memory. */
struct mm_stat {
	uint64_t guest_bytes, pool_bytes, slack_bytes; /* pool_bytes: blocks present now */
	uint64_t pool_capacity_bytes;  /* frame space: pool_bytes + what may be borrowed */
	uint32_t nr_regions;
	uint32_t regions_in_order;     /* in order on an aligned block */
	uint32_t regions_backed_2m;    /* ... and that block is a host huge page */
	uint32_t regions_achievable;   /* upper bound given unmovable ballast and pool size */
	double backing_2m;             /* regions_backed_2m / nr_regions */
	double backing_2m_achievable;  /* regions_achievable / nr_regions */
	uint64_t nr_free[MM_MAX_ORDER];
	uint64_t nr_free_mt[MM_MAX_ORDER][MIGRATE_TYPES];
	uint64_t pageblocks_mt[MIGRATE_TYPES];
	int fragindex[MM_MAX_ORDER];   /* x1000, -1000 means enough */
	int unusable[MM_MAX_ORDER];    /* x1000 */
	unsigned frag_score;           /* 0..100 */
	uint64_t frames_owned[FRAME_OWNERS];
	uint64_t vmas;                 /* window mappings */
	bool view_attached;            /* regions served per memslot (promote path "memslot") */
	uint32_t regions_direct;       /* ... of which served straight from the direct map */
	struct mm_view_stats view;
	uint64_t huge_blocks;          /* pool blocks that are host huge pages */
	uint64_t metadata_bytes;       /* buddy + gpamap + pool/window/mm arrays */
	enum pool_backing backing;
	bool huge_exact;               /* huge_blocks from pagemap+kpageflags, else a guess */
	struct mm_vmstat vmstat;
};

/* Takes mm->lock. */
void mm__stat(struct mm *mm, struct mm_stat *st);

/* A /proc/meminfo field ("MemAvailable", "MemTotal") in bytes; 0 if unknown. */
uint64_t mm__meminfo_bytes(const char *key);
/*
 * Without a prefault, which pool blocks are host huge pages is not known until they are touched,
 * and blocks first touched through 4 KiB window mappings got 4 KiB pages: re-read it, fault in
 * every wholly free block that is not huge (a fresh file each, through its 2 MiB direct mapping),
 * and MADV_COLLAPSE the others. mm__defrag calls it first. Returns the blocks made huge.
 * Caller holds mm->lock.
 */
uint32_t mm__fault_in_free_blocks(struct mm *mm);

static inline bool mm__view_attached(const struct mm *mm)
{
	return mm->view != NULL;
}

/* Fault injection: true if the operation at point p is to fail now (see struct mm_fault_inject). */
static inline bool mm__fault(struct mm *mm, enum mm_fault_point p)
{
	if (__builtin_expect(!mm->fault_inject.countdown[p], 1) || --mm->fault_inject.countdown[p])
		return false;
	mm->fault_inject.hits[p]++;
	return true;
}
/*
 * Upper bound on the guest regions that can be in order on a host-huge pool block,
 * given where unmovable ballast sits. Caller holds mm->lock (or is single-threaded).
 * See mm.c for the argument.
 */
uint32_t mm__achievable_regions(const struct mm *mm);
/* Bytes of metadata for a guest of nr_gpfns pages in a pool of nr_frames frames. */
uint64_t mm__metadata_bytes(uint32_t nr_gpfns, uint32_t nr_frames);

#endif
