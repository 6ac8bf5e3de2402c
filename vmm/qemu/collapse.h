/* collapse.h: put a foreign process's memory on 2 MiB pages with pidfd + process_madvise(MADV_COLLAPSE), under budgets. */
#ifndef VMC_VMM_QEMU_COLLAPSE_H
#define VMC_VMM_QEMU_COLLAPSE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct collapse_range {
	uint64_t start, end;          /* host virtual addresses in the target */
};

struct collapse_budget {
	bool single_call;             /* one call over every range (KubeVirt's way); no budgets */
	uint32_t max_stall_us;        /* longest single call to aim for; 0 = one region per call */
	uint32_t max_mbps;            /* collapse rate in MB/s (10^6), 0 = unlimited */
	uint32_t max_regions;         /* stop after this many collapse attempts, 0 = all */
	bool retry_failed;            /* retry each failed region once alone, for its errno */
};
#define COLLAPSE_BUDGET_DEFAULTS { .single_call = false, .max_stall_us = 5000, .max_mbps = 0, \
				   .max_regions = 0, .retry_failed = true }
#define COLLAPSE_MAX_IOV 1024

struct collapse_result {
	uint64_t regions;             /* whole 2 MiB regions in the ranges */
	uint64_t already_huge;        /* before the run */
	uint64_t unpopulated;         /* nothing to collapse: no page present (skipped) */
	uint64_t attempted;
	uint64_t collapsed;           /* attempted and now huge */
	uint64_t failed;              /* attempted and still not huge */
	uint64_t failed_eagain, failed_enomem, failed_einval, failed_other;
	uint64_t huge_after;          /* regions on 2 MiB pages at the end (by pagemap) */
	uint64_t calls;
	double seconds;               /* wall time, sleeps included */
	double call_seconds;          /* inside process_madvise */
	double call_max_ms;           /* the longest single call */
	double call_p99_ms;
	uint64_t calls_over_budget;   /* calls longer than max_stall_us */
	double sleep_seconds;         /* rate limit sleeps */
	uint32_t chunk_last, chunk_max;   /* regions per call */
	bool cancelled;
	bool pfns_visible;            /* pagemap showed PFNs: per-region figures are exact */
};

/* Called after every call: regions done (attempted) of those to attempt. */
typedef void (*collapse_progress_fn)(void *ctx, uint64_t done, uint64_t total,
				     const struct collapse_result *sofar);

struct collapse_job {
	pid_t pid;
	const struct collapse_range *ranges;
	size_t nr_ranges;
	struct collapse_budget budget;
	volatile sig_atomic_t *cancel;    /* set to non-zero to stop between calls; may be NULL */
	collapse_progress_fn progress;
	void *ctx;
};

/*
 * Collapse the not-yet-huge, populated regions of the ranges, most populated
 * first, in chunks sized so that one call stays under max_stall_us (measured
 * per region and adapted), at most max_mbps. Failed regions (EAGAIN, ENOMEM,
 * ...) are counted per reason. 0 when the run finished (some regions may have
 * failed: see res), -ECANCELED, -ESRCH (the process exited), -EPERM/-EACCES,
 * -ENOSYS, with err set.
 */
int collapse__run(const struct collapse_job *job, struct collapse_result *res, char *err,
		  size_t errlen);

/*
 * The reverse, to age a guest for tests and demos: split the 2 MiB pages of
 * a share (0..1) of the regions into 4 KiB pages, as host memory pressure, KSM
 * or migration do, with process_madvise(MADV_COLD) on one 4 KiB page of each
 * chosen region (a partial MADV_COLD splits a PMD-mapped THP; the data stays).
 * Regions are chosen by a splitmix64 stream from seed. *split: regions advised.
 */
int collapse__split(pid_t pid, const struct collapse_range *ranges, size_t nr, double share,
		    uint64_t seed, uint64_t *split, char *err, size_t errlen);

/* What chunk sizing remembers between calls: the dearest per-region cost seen lately (decays 5 % a call). */
struct collapse_sizer {
	double worst_us;
};

/* Next chunk size (regions) so that a call takes about 3/4 of target_us at the dearest recent per-region cost. */
uint32_t collapse__next_chunk(struct collapse_sizer *s, uint32_t last_chunk, double last_call_us,
			      uint32_t target_us);

#endif
