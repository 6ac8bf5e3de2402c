/* lazy.h: lazy restore: userfaultfd (MISSING) on the guest window fills a region on first touch while io_uring prefetches the rest in GPA order. */
#ifndef VMC_SNAPSHOT_LAZY_H
#define VMC_SNAPSHOT_LAZY_H

#include <pthread.h>
#include "vmm/snapshot/snapshot.h"

struct snap_lazy_stats {
	uint64_t faults;              /* userfaultfd page faults handled */
	uint64_t regions_by_fault;    /* regions filled because something touched them first */
	uint64_t regions_by_prefetch; /* regions filled by the GPA-order prefetch */
	uint64_t first_fault_ns;      /* start -> first fault resolved (0: none) */
	uint64_t resident_ns;         /* start -> every region filled */
	uint64_t fault_max_ns;        /* longest fault: event read -> wake */
	uint64_t regions_collapsed;   /* blocks made one huge page again after the copy (MADV_COLLAPSE) */
	uint64_t collapse_failed;     /* ... and those MADV_COLLAPSE refused after retries */
	int collapse_errno;           /* the last refusal's errno */
	uint64_t collapse_ns;
};

/*
 * Regions are filled whole, 2 MiB per UFFDIO_COPY into the window (a page appears only with its
 * content), then every thread waiting on that region is woken. shmem gets 4 KiB pages from
 * UFFDIO_COPY, so once everything is resident each block is collapsed in place (MADV_COLLAPSE)
 * into one huge page. Needs a linear mm (every region in order on its own block: snap_file__mm_config without the
 * layout) created without prefault, so that no guest page is in the page cache yet.
 */
struct snap_lazy {
	struct snap_file *f;
	struct mm *mm;
	int uffd;
	int stop_efd;
	uint8_t *state;               /* per region: LAZY_EMPTY, LAZY_FILLING, LAZY_DONE (atomic) */
	uint8_t *fault_buf;           /* the fault handler's own 2 MiB buffer (aligned for O_DIRECT) */
	uint8_t *zero_buf;            /* 2 MiB of zeros: the source for a region without present pages */
	pthread_mutex_t lock;
	pthread_cond_t filled;        /* a region became LAZY_DONE */
	pthread_t handler, prefetcher;
	bool handler_started, prefetcher_started;
	uint32_t nr_done;             /* under lock */
	uint64_t t0;
	int error;                    /* first error, under lock; message in err */
	char err[256];
	struct snap_lazy_stats st;
};

/* Register the window with userfaultfd and start the fault handler and the prefetcher. The guest
 * may run as soon as this returns. 0 or -errno with err set (nothing left running). */
int snap_lazy__start(struct snap_lazy *l, struct snap_file *f, struct mm *mm, char *err, size_t errlen);
/* Until every region is filled (or an error): 0 or the error (message in l->err). Then the
 * window is unregistered, the pool's huge blocks re-read and mm marked ready for defrag. */
int snap_lazy__wait(struct snap_lazy *l);
/* Stop the threads (after wait, or to abandon the restore) and free everything. */
void snap_lazy__stop(struct snap_lazy *l);

#endif
