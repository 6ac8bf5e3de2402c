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
};

#define DEFRAG_PAUSE_HIST 64

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
};

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
};

/* Linux's compaction_suitable(): COMPACT_CONTINUE, COMPACT_SKIPPED or COMPACT_SUCCESS. */
enum compact_result compaction_suitable(const struct mm *mm, int order, int extfrag_threshold);
/* One compact_zone() pass. */
enum compact_result compact_zone(struct compact_control *cc);

/* Run a defrag request to completion (or cancellation). Callable from any non-vCPU thread. */
int mm__defrag(struct mm *mm, const struct defrag_request *req, const struct mm_step_ops *ops,
	       struct defrag_stats *st);

void defrag_request__init(struct defrag_request *req);

#endif
