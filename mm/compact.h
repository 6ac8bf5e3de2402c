/* compact.h: host-side defragmentation of guest backing: Linux-style compaction and 2 MiB collapse. */
#ifndef VMC_MM_COMPACT_H
#define VMC_MM_COMPACT_H

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
extern const char *const compact_result_names[];

enum defrag_mode {
	DEFRAG_COMPACT,   /* compaction only (order-targeted or full) */
	DEFRAG_COLLAPSE,  /* promote guest regions into 2 MiB blocks */
	DEFRAG_FULL,      /* both */
};
enum defrag_algo {
	DEFRAG_ALGO_LINUX,   /* compact_zone() then khugepaged-style collapse: the reference */
	DEFRAG_ALGO_PLANNED, /* GPA-order-aware placement: pages go straight to their final slot */
};
extern const char *const defrag_mode_names[];
extern const char *const defrag_algo_names[];

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
#define DEFRAG_F_CHAINS        0x1u /* planned: fill every free target slot by chains (LIFO), a
				     * region copied whole only when its block happens to be clean */
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
};

#define DEFRAG_PAUSE_HIST 64   /* pause_hist[i]: steps whose pause took [2^i, 2^(i+1)) ns */
#define DEFRAG_MAX_PAUSE_NS_DEFAULT 1000000ULL

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
	int error;                     /* 0, -ECANCELED or the -errno that stopped the run */
	char error_msg[160];
};

struct defrag_engine;

struct compact_control {
	struct mm *mm;
	const struct defrag_request *req;
	const struct mm_step_ops *ops;
	int order;
	frame_t migrate_pfn;           /* migration scanner, moves up */
	frame_t free_pfn;              /* free scanner, moves down */
	frame_t *migratepages; uint32_t nr_migratepages;
	frame_t *freepages; uint32_t nr_freepages;
	uint64_t total_migrate_scanned, total_free_scanned;
	struct defrag_stats *stats;
	/* --- engine state --- */
	struct defrag_engine *engine;  /* steps, moves and accounting (set by compact_control__init) */
	uint32_t next_freepage;        /* freepages[next_freepage..nr_freepages) are unused */
	uint32_t cap_freepages;
	int extfrag_threshold;
	bool whole_zone;               /* order -1: run until the scanners meet */
	bool ran;                      /* compaction_suitable() let it run */
};

/* Linux's compaction_suitable(): COMPACT_CONTINUE, COMPACT_SKIPPED or COMPACT_SUCCESS. */
enum compact_result compaction_suitable(const struct mm *mm, int order, int extfrag_threshold);
/* One compact_zone() pass. cc must come from compact_control__init(). */
enum compact_result compact_zone(struct compact_control *cc);

/* Run a defrag request to completion (or cancellation). Callable from any non-vCPU thread.
 * Returns 0, -ECANCELED (stats describe the work done) or another -errno (st->error_msg). */
int mm__defrag(struct mm *mm, const struct defrag_request *req, const struct mm_step_ops *ops,
	       struct defrag_stats *st);

void defrag_request__init(struct defrag_request *req);

/*
 * ---------------------------------------------------------------------------
 * Engine internals, shared by compact.c, collapse.c and plan.c.
 *
 * Work happens in steps: defrag__step_begin() pauses the vCPUs (ops->pause)
 * and takes mm->lock; defrag__step_end() drops both and records how long the
 * guest was stopped. Moves are only legal inside a step.
 * ---------------------------------------------------------------------------
 */
struct defrag_engine {
	struct mm *mm;
	const struct defrag_request *req;
	const struct mm_step_ops *ops;
	struct defrag_stats *st;
	struct mm_vmstat vm0;          /* vmstat when the run started */
	uint64_t t0_ns;                /* CLOCK_MONOTONIC start of the run */
	uint64_t max_pause_ns;
	uint64_t work_budget_ns;       /* max_pause_ns less a reserve for stopping and resuming vCPUs */
	bool in_step;
	uint64_t step_t0_ns;           /* when the step asked for the pause */
	bool locked;                   /* mm->lock held outside a step (scanning, planning) */
	uint32_t step_ops;             /* operations done in the current step */
	uint64_t est_move_ns;          /* running estimate: one 4 KiB move (copy + remap) */
	uint64_t est_remap_ns;         /* running estimate: 2 MiB remap of a region mapped in one piece */
	uint64_t est_copy_ns;          /* running estimate: one 4 KiB copy within a whole-region copy */
	uint64_t est_unmap_ns;         /* running estimate: per mapping a 2 MiB remap replaces */
	uint64_t *pauses;              /* duration of every step */
	size_t nr_pauses, cap_pauses;
	uint64_t *moved;               /* bitmap over gpfns: moved by this run */
	uint8_t *compound;             /* per region: in order on a host huge block (a "THP") */
	frame_t cached_migrate_pfn;    /* zone->compact_cached_migrate_pfn */
	frame_t cached_free_pfn;       /* zone->compact_cached_free_pfn */
	uint64_t progress_done, progress_total;
};

#define COMPACT_CLUSTER_MAX 32  /* SWAP_CLUSTER_MAX: pages isolated per batch */
#define PAGE_ALLOC_COSTLY_ORDER 3

uint64_t defrag__now_ns(void);
void defrag__set_error(struct defrag_engine *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Make sure we are inside a step with room for an operation of cost_ns; ends the
 * current step and starts a new one when not. 0, -ECANCELED or the pause error. */
int defrag__step_ensure(struct defrag_engine *e, uint64_t cost_ns);
int defrag__step_begin(struct defrag_engine *e);
void defrag__step_end(struct defrag_engine *e);
/* Hold mm->lock (inside a step, or alone when not in one) / drop everything. */
void defrag__hold(struct defrag_engine *e);
void defrag__release(struct defrag_engine *e);
/* Long scans call this: past the pause budget, resume the guest and go on under the lock only. */
void defrag__scan_yield(struct defrag_engine *e);
bool defrag__cancelled(struct defrag_engine *e);
/* Report progress now (also called at the end of each step with the last figures). */
void defrag__progress(struct defrag_engine *e, uint64_t done, uint64_t total);

/*
 * Move the page in frame src (guest, or movable ballast) into frame dst, which
 * the caller has already taken from the buddy allocator (owner FREE or ISOLATED).
 * Guest pages are rebound and remapped with a 4 KiB window remap; src goes back to
 * the buddy allocator, or with MOVE_KEEP_SRC stays taken as FRAME_ISOLATED.
 * MOVE_TEMP: the copy is not the page's final place (planned: cycle breaking).
 * 0, or -errno (the window could not be remapped; the move is undone, dst stays taken).
 */
#define MOVE_TEMP     0x1u
#define MOVE_KEEP_SRC 0x2u
int defrag__move(struct defrag_engine *e, frame_t src, frame_t dst, unsigned flags);
/*
 * Copy region r whole into the aligned block at frame `block`: every frame of the
 * block is either already r's page at its offset ("home") or taken from the buddy
 * allocator by the caller. Rebinds all pages, one window__remap_2m, frees the old
 * frames. old[i] receives the frame page i left (FRAME_NONE if it was home); may be NULL.
 */
int defrag__collapse_into(struct defrag_engine *e, uint32_t region, frame_t block, frame_t *old);
/* Estimated pause time of a whole-region copy of n pages into region r's block. */
uint64_t defrag__collapse_cost(const struct defrag_engine *e, uint32_t region, uint32_t n);
/* Region r is in order on a host huge block: map it with one 2 MiB mapping.
 * _in_place counts a zero-copy promotion, _filled one whose pages were copied there. */
int defrag__promote_in_place(struct defrag_engine *e, uint32_t region);
int defrag__promote_filled(struct defrag_engine *e, uint32_t region);

/* Region state helpers. */
bool defrag__region_full(const struct mm *mm, uint32_t region);      /* all 512 pages backed */
bool defrag__region_in_place(const struct mm *mm, uint32_t region);  /* in order on a huge block */
bool defrag__block_has_unmovable(const struct mm *mm, uint32_t block);

/* compact.c */
/*
 * Set up an engine run over mm (stats zeroed, vmstat baseline, achievable regions, which
 * regions are "THPs") / finish it (leave any step, final stats: vmstat delta, pause p99,
 * regions backed 2 MiB, wall time; free). mm__defrag and mm__scatter use these. init
 * returns 0 or -ENOMEM (st->error_msg set; exit is then a harmless no-op).
 */
int defrag_engine__init(struct defrag_engine *e, struct mm *mm, const struct defrag_request *req,
			const struct mm_step_ops *ops, struct defrag_stats *st);
void defrag_engine__exit(struct defrag_engine *e);
void compact_control__init(struct compact_control *cc, struct defrag_engine *e, int order);
void compact_control__exit(struct compact_control *cc);
enum compact_result defrag__compact(struct defrag_engine *e, int order, bool direct);
enum compact_result plan__compact(struct defrag_engine *e, int order);
/* collapse.c: khugepaged-style. 0, -ECANCELED or -errno. */
int collapse__linux(struct defrag_engine *e);
/* A free, aligned order-9 block that is a host huge page, or FRAME_NONE. */
frame_t collapse__find_free_huge_block(const struct mm *mm);
/* plan.c: the planned collapse. */
int plan__collapse(struct defrag_engine *e);

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
/* ------------------------------ end of scatter.c ------------------------------ */

#endif
