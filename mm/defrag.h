/* defrag.h: host-side defragmentation of guest backing: requests, results, and the entry points mm__defrag and mm__scatter. */
#ifndef VMC_MM_DEFRAG_H
#define VMC_MM_DEFRAG_H

#include "mm/mm.h"

enum compact_result {
	COMPACT_NOT_SUITABLE_ZONE,
	COMPACT_SKIPPED,        /* not suitable: fragindex says lack of memory, or enough free */
	COMPACT_CONTINUE,
	COMPACT_COMPLETE,       /* scanners met */
	COMPACT_PARTIAL_SKIPPED,
	COMPACT_SUCCESS,        /* requested order is free */
	COMPACT_ABORTED,        /* cancelled or an error */
};
#define COMPACT_RESULT_COUNT (COMPACT_ABORTED + 1)
const char *compact_result__name(enum compact_result r);

enum defrag_mode {
	DEFRAG_COMPACT,   /* compaction only (order-targeted or full) */
	DEFRAG_COLLAPSE,  /* promote guest regions into 2 MiB blocks */
	DEFRAG_FULL,      /* both */
};
enum defrag_algo {
	DEFRAG_ALGO_LINUX,   /* compact_zone() then khugepaged-style collapse: the reference */
	DEFRAG_ALGO_PLANNED, /* GPA-order-aware placement: pages go straight to their final slot */
};
#define DEFRAG_MODE_COUNT (DEFRAG_FULL + 1)
#define DEFRAG_ALGO_COUNT (DEFRAG_ALGO_PLANNED + 1)
/* Names as the CLI and the control socket spell them; "?" out of range. */
const char *defrag_mode__name(enum defrag_mode m);
const char *defrag_algo__name(enum defrag_algo a);
/* Name -> value; -1 if unknown. */
int defrag_mode__parse(const char *name);
int defrag_algo__parse(const char *name);

/*
 * How the engine stops the world around a step. The VMM pauses every vCPU
 * (blocked, not spinning) in pause() and lets them go in resume(). Unit tests
 * pass NULL hooks. Hooks are called without mm->lock held.
 */
struct mm_step_ops {
	int (*pause)(void *ctx);
	void (*resume)(void *ctx);
	void *ctx;
};

/*
 * defrag_request.flags: knobs for experiments and benchmarks; 0 is the tuned default
 * (planned: region by region, fewest blockers first, each region copied whole).
 */
#define DEFRAG_F_NO_FAST_PATH  0x2u /* planned: never copy a region whole: 4 KiB moves only */

struct defrag_request {
	enum defrag_mode mode;
	enum defrag_algo algo;
	int order;                 /* compaction target order; -1 = full (compact_memory) */
	uint64_t max_pause_ns;     /* budget per step (default 1 ms) */
	uint64_t max_bytes_per_sec;/* copy-rate budget, 0 = unlimited */
	uint32_t max_regions;      /* collapse at most this many regions, 0 = all */
	int extfrag_threshold;     /* default EXTFRAG_THRESHOLD_DEFAULT */
	volatile int *cancel;      /* set non-zero to stop at the next step */
	/* progress callback, may be NULL: done and total are in regions or frames */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	uint32_t flags;            /* DEFRAG_F_* */
	/* Borrowing (planned algorithm): copy scattered regions whole into 2 MiB blocks borrowed
	 * from the host (the pool's frame space beyond guest + slack, mm_config.borrow_capacity_bytes),
	 * then give back what is left free. DEFRAG_BORROW_AUTO: as many as the regions need, bounded
	 * by MemAvailable less a safety margin; 0: off; otherwise at most this many bytes. */
	uint64_t borrow_bytes;
};
#define DEFRAG_BORROW_AUTO UINT64_MAX
#define DEFRAG_BORROW_OFF 0
/* "auto", "off" or a size ("256M", up to 64G) -> borrow_bytes: 0 or -EINVAL. */
int defrag_borrow__parse(const char *s, uint64_t *bytes);
/* "auto", "off" or "NM" (buf holds the latter). */
const char *defrag_borrow__name(uint64_t bytes, char *buf, size_t len);

#define DEFRAG_PAUSE_HIST 64   /* pause_hist[i]: steps whose pause took [2^i, 2^(i+1)) ns */
#define DEFRAG_MAX_PAUSE_US_DEFAULT 1000   /* a plain literal: usage texts print it with VMC_STR() */
#define DEFRAG_MAX_PAUSE_NS_DEFAULT (DEFRAG_MAX_PAUSE_US_DEFAULT * 1000ULL)

struct defrag_stats {
	enum compact_result compact_result;
	uint64_t wall_ns;
	uint64_t steps;
	uint64_t pages_copied;
	uint64_t pages_moved_4k;       /* remapped singly */
	uint32_t regions_promoted;     /* copied into a fresh block */
	uint32_t regions_zero_copy;    /* already in order: remap only */
	uint32_t regions_failed;
	uint32_t regions_achievable;
	uint64_t pause_max_ns;
	uint64_t pause_p99_ns;
	uint64_t pause_total_ns;
	double copies_per_promoted_page;
	struct mm_vmstat delta;        /* vmstat counters added by this run */

	/* --- breakdown (added by the engine; all counted by this run) --- */
	uint64_t copies_guest;         /* 4 KiB copies of guest pages, final or not */
	uint64_t copies_ballast;       /* copies of movable ballast (evictions, migrations) */
	uint64_t copies_temp;          /* guest copies to a temporary frame (planned: cycle breaking) */
	uint64_t copies_bulk;          /* guest copies made by whole-region copies (no 4 KiB remap) */
	uint64_t guest_pages_moved;    /* distinct guest pages that changed frame */
	double copies_per_moved_page;  /* pages_copied / guest_pages_moved */
	uint64_t remaps_2m;            /* 2 MiB window remaps (collapse and zero-copy) */
	uint32_t regions_fast_path;    /* planned: copied whole into a clean block, no 4 KiB remap */
	uint32_t regions_blocked;      /* not promotable: unmovable ballast / no clean block left */
	uint32_t regions_backed_2m;    /* after the run: in order on a host huge block */
	uint32_t regions_huge_mapped;  /* after the run: mapped with one 2 MiB mapping */
	uint64_t migrate_isolated;     /* compaction: pages taken by the migration scanner */
	uint64_t free_isolated;        /* compaction: free frames taken by the free scanner */
	uint64_t compact_runs;         /* compact_zone() calls (incl. those collapse triggered) */
	uint64_t plan_ns;              /* planned: time spent planning (outside any pause) */
	uint64_t copy_ns;              /* time in 4 KiB copies (moves and whole-region copies) */
	uint64_t remap_4k_ns;          /* time in window__remap_4k */
	uint64_t remap_2m_ns;          /* time in window__remap_2m */
	uint64_t pause_hist[DEFRAG_PAUSE_HIST];
	/* --- elastic pool (borrowing) --- */
	uint64_t borrowed_peak_bytes;  /* most bytes borrowed beyond the pool's size at the start */
	uint64_t borrowed_bytes;       /* blocks borrowed by this run */
	uint64_t given_back_bytes;     /* blocks given back to the host by this run */
	uint64_t pool_rss_after_bytes; /* pool blocks present (faulted in) at the end */
	uint64_t borrow_limit_bytes;   /* what the policy allowed (0: off or no capacity) */
	uint64_t borrow_ns;            /* time borrowing (block files made and faulted in, no pause) */
	uint64_t give_back_ns;         /* time giving back (ballast moved out, blocks dropped) */
	char borrow_note[96];          /* why less was borrowed than wanted, if so */
	uint32_t blocks_faulted_lazily;/* pool not prefaulted: blocks made host huge pages first (free ones
					* faulted in, used ones collapsed with MADV_COLLAPSE) */
	const char *promote_path;      /* how regions were switched: "remap" (2 MiB window remap) or
					* "memslot" (the VMM's per-region memslots, mm/view.h) */
	uint64_t view_switches;        /* memslot: region view switches (promotions and demotions) */
	uint64_t view_switch_max_ns;   /* memslot: slowest switch over the mm's life */
	uint64_t view_demotions;       /* memslot: regions switched back to the window (a page left) */
	uint64_t view_fallbacks;       /* memslot: switches that failed, window remapped instead */
	uint64_t window_fixes;         /* memslot: window regions remapped 2 MiB after the resume */
	uint64_t window_fix_ns;
	int error;                     /* 0, -ECANCELED or the -errno that stopped the run */
	char error_msg[160];
};

/* Run a defrag request to completion (or cancellation). Callable from any non-vCPU thread.
 * Returns 0, -ECANCELED (stats describe the work done) or another -errno (st->error_msg). */
int mm__defrag(struct mm *mm, const struct defrag_request *req, const struct mm_step_ops *ops,
	       struct defrag_stats *st);

void defrag_request__init(struct defrag_request *req);

/*
 * ---------------------------------------------------------------------------
 * Re-aging (scatter.c): undo defragmentation as a long-running host would.
 * ---------------------------------------------------------------------------
 *
 * Move nr_moves guest pages, chosen uniformly at random by seed (a page may be
 * chosen again), each to a free frame chosen uniformly at random, through the
 * defrag engine's steps (vCPUs paused via ops, at most req->max_pause_ns per
 * step) and its defrag__move (copy, GPA map rebind, 4 KiB window remap, old frame
 * back to the buddy allocator). A region that was one 2 MiB mapping and loses a
 * page is split: the 4 KiB MAP_FIXED remap splits the host VMA (and its PMD, so
 * KVM drops its 2 MiB entry) and region_huge_mapped is cleared.
 * req_or_null: NULL means defrag_request__init() defaults; only max_pause_ns,
 * max_bytes_per_sec, cancel and progress are used. st counts the moves as the
 * engine does (pages_copied, pages_moved_4k, copies_guest, steps, pauses, vmstat
 * pgmigrate_success / pages_copied). Before moving anything it checks that
 * 2 * nr_moves more mappings fit under vm.max_map_count (-ENOMEM otherwise).
 * Returns 0, -ECANCELED or -errno (st->error_msg says why).
 */
int mm__scatter(struct mm *mm, uint64_t nr_moves, uint64_t seed, const struct mm_step_ops *ops,
		const struct defrag_request *req_or_null, struct defrag_stats *st);

#endif
