/* internal.h: what only mm/ sees: the defrag engine (steps, moves), Linux compaction state, and the algorithms' entry points. */
#ifndef VMC_MM_INTERNAL_H
#define VMC_MM_INTERNAL_H

#include "mm/defrag.h"

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
	uint32_t present_at_start;     /* pool blocks present when the run started */
	uint32_t present_peak;         /* most present during the run */
	uint32_t blocks_borrowed, blocks_given_back;
	uint32_t *stale;               /* regions switched to the direct map in this step whose
				        * window is fixed after the vCPUs resume */
	uint32_t nr_stale;
	struct mm_view_stats view0;    /* mm->view_stats when the run started */
};

#define COMPACT_CLUSTER_MAX 32  /* SWAP_CLUSTER_MAX: pages isolated per batch */
#define PAGE_ALLOC_COSTLY_ORDER 3

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

/* engine.c
 *
 * Set up an engine run over mm (stats zeroed, vmstat baseline, achievable regions, which
 * regions are "THPs") / finish it (leave any step, final stats: vmstat delta, pause p99,
 * regions backed 2 MiB, wall time; free). mm__defrag and mm__scatter use these. init
 * returns 0 or -ENOMEM (st->error_msg set; exit is then a harmless no-op).
 */
int defrag_engine__init(struct defrag_engine *e, struct mm *mm, const struct defrag_request *req,
			const struct mm_step_ops *ops, struct defrag_stats *st);
void defrag_engine__exit(struct defrag_engine *e);
/* compact.c: Linux compaction run on the engine; direct counts compact_stall/success/fail. */
void compact_control__init(struct compact_control *cc, struct defrag_engine *e, int order);
void compact_control__exit(struct compact_control *cc);
enum compact_result defrag__compact(struct defrag_engine *e, int order, bool direct);
/* collapse.c: khugepaged-style. 0, -ECANCELED or -errno. */
int collapse__linux(struct defrag_engine *e);
/* A free, aligned order-9 block that is a host huge page, or FRAME_NONE. */
frame_t collapse__find_free_huge_block(const struct mm *mm);
/* borrow.c: the elastic pool. borrow__grow: add up to `want` blocks from the host (faulted in,
 * free in the buddy allocator), within req->borrow_bytes, MemAvailable, the VMA budget and the
 * pool's capacity; outside any pause; with DEFRAG_BORROW_AUTO it stops once a block takes longer
 * to fault in than saves_ns (the 4 KiB moves one borrowed block saves). borrow__give_back: move movable ballast out of blocks that
 * hold nothing else and give those blocks back until the pool is its start size plus a small
 * reserve. Both 0 or -errno (then stats say why). */
int borrow__grow(struct defrag_engine *e, uint32_t want, uint64_t saves_ns);
int borrow__give_back(struct defrag_engine *e);
/* plan.c: the planned collapse; plan_compact.c: order-targeted compaction by evacuating chunks. */
int plan__collapse(struct defrag_engine *e);
enum compact_result plan__compact(struct defrag_engine *e, int order);


#endif
