/* defragd.h: background defragmenter of the guest's backing, modelled on kcompactd's proactive compaction. */
#ifndef VMC_VMM_DEFRAGD_H
#define VMC_VMM_DEFRAGD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mm/defrag.h"
#include "mm/mm.h"
#include "vmm/defrag_job.h"


struct defragd_policy {
	bool enabled;                /* "auto": off by default, like a VM without --defrag auto */
	unsigned proactiveness;      /* 0..100, vm.compaction_proactiveness */
	uint32_t interval_ms;        /* wakeup period; kcompactd's is HZ/2 */
	uint32_t max_pause_us;       /* vCPU pause budget per step */
	uint32_t max_mbps;           /* copy rate budget in MB/s (10^6), 0 = unlimited */
	uint32_t backoff_ms;         /* sleep after a round without progress */
	uint32_t regions_per_wakeup; /* work bound per wakeup (req->max_regions) */
};

/* kcompactd: 500 ms wakeups, proactiveness 20, defer 1 << COMPACT_MAX_DEFER_SHIFT(6) wakeups. */
#define DEFRAGD_DEFAULT_PROACTIVENESS 20   /* vm.compaction_proactiveness */
#define DEFRAGD_DEFAULT_MAX_MBPS 6         /* each moved page costs the guest a shadow-page refault */
#define DEFRAGD_POLICY_DEFAULTS { .enabled = false, .proactiveness = DEFRAGD_DEFAULT_PROACTIVENESS, \
				  .interval_ms = 500, .max_pause_us = DEFRAG_MAX_PAUSE_US_DEFAULT, \
				  .max_mbps = DEFRAGD_DEFAULT_MAX_MBPS, .backoff_ms = 32000, \
				  .regions_per_wakeup = 32 }

/* Limits checked by defragd__check_policy() and the set-defrag-policy command. */
#define DEFRAGD_INTERVAL_MS_MIN 10
#define DEFRAGD_INTERVAL_MS_MAX 3600000
#define DEFRAGD_PAUSE_US_MIN 10
#define DEFRAGD_PAUSE_US_MAX 1000000
#define DEFRAGD_MBPS_MAX 1000000
#define DEFRAGD_BACKOFF_MS_MAX 3600000
#define DEFRAGD_REGIONS_MAX 1000000

enum defragd_state {
	DEFRAGD_OFF,         /* policy disabled */
	DEFRAGD_IDLE,        /* score at or under the high watermark */
	DEFRAGD_COMPACTING,  /* score went over high: one chunk per wakeup until it is at or under low */
	DEFRAGD_BACKOFF,     /* a round made no progress: sleeping backoff_ms */
};
extern const char *const defragd_state_names[];

struct defragd_counters {
	uint64_t wakeups;          /* timer expiries while enabled */
	uint64_t rounds;           /* chunks run */
	uint64_t regions_promoted; /* by defragd chunks: copied + zero-copy */
	uint64_t pages_copied;
	uint64_t backoffs;
	uint64_t busy_skips;       /* another job held the runner */
	uint64_t failures;
	unsigned last_score;       /* backing score, 0..100 */
	unsigned last_free_score;  /* Linux's free-memory fragmentation score, 0..100 */
	uint64_t last_job_id;
};

struct defragd {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct defrag_job *job;        /* shared with manual jobs: one at a time */
	struct mm *mm;                 /* the guest memory it watches and defragments */
	const char *(*status)(void *ctx); /* the VM's run state; it works only while "running" */
	void *status_ctx;
	struct defragd_policy policy;
	uint64_t policy_gen;
	struct defragd_counters counters;
	enum defragd_state state;
	uint64_t backoff_until_ns;
	uint64_t running_job;          /* id of our chunk while it runs, else 0 */
	pthread_t thread;
	bool started, stop;
};

/*
 * Linux's fragmentation_score_wmark(): low = max(100 - proactiveness, 5),
 * high = min(low + 10, 100). The score they bound is mm_stat__backing_score() (vmm/mm_json.h).
 */
unsigned defragd__wmark(unsigned proactiveness, bool low);

/* 0, or -EINVAL naming the field that is out of range. */
int defragd__check_policy(const struct defragd_policy *p, char *err, size_t errlen);

int defragd__init(struct defragd *d, struct defrag_job *job);
/* Starts the thread over mm; it works only while policy->enabled and status (NULL: always) says "running". */
int defragd__start(struct defragd *d, struct mm *mm, const char *(*status)(void *ctx), void *status_ctx,
		   const struct defragd_policy *p);
int defragd__set_policy(struct defragd *d, const struct defragd_policy *p, char *err, size_t errlen);
void defragd__snapshot(struct defragd *d, struct defragd_policy *p, struct defragd_counters *c,
		       enum defragd_state *state);
/* Stops the thread, cancelling its chunk; the struct stays usable (policy, snapshot). */
void defragd__stop(struct defragd *d);
/* Stops if needed and frees what init took. */
void defragd__exit(struct defragd *d);

#endif
