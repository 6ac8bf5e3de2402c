/* defrag_job.h: runs one mm__defrag request at a time in its own thread, with progress, cancel and result. */
#ifndef VMC_VMM_DEFRAG_JOB_H
#define VMC_VMM_DEFRAG_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "mm/defrag.h"

enum defrag_job_state {
	DEFRAG_JOB_IDLE,       /* nothing ever ran */
	DEFRAG_JOB_RUNNING,
	DEFRAG_JOB_DONE,
	DEFRAG_JOB_CANCELLED,
	DEFRAG_JOB_FAILED,
};
extern const char *const defrag_job_state_names[];

enum defrag_origin {
	DEFRAG_ORIGIN_MANUAL,  /* a `defrag` command */
	DEFRAG_ORIGIN_AUTO,    /* a defragd chunk */
};
extern const char *const defrag_origin_names[];

/* A consistent copy of the job's state, for readers on other threads. */
struct defrag_job_info {
	enum defrag_job_state state;
	enum defrag_origin origin;
	uint64_t id;               /* 0 before the first job, then 1, 2, ... */
	enum defrag_mode mode;
	enum defrag_algo algo;
	int order;
	uint64_t done, total;      /* last progress report */
	uint64_t started_ns, finished_ns; /* CLOCK_MONOTONIC */
	int error;                 /* -errno of a failed run */
	bool has_result;           /* stats below belong to job `id` (also after cancel) */
	struct defrag_stats stats;
};

/* Why a job failed: the engine's message, else the errno's. */
const char *defrag_job_info__error(const struct defrag_job_info *info);

/*
 * Called on the job thread. on_progress runs without the job lock and is
 * throttled to one call per progress_interval_ns; on_finish runs with the job
 * lock held (so no later job can report before it), so neither may call
 * defrag_job__* functions.
 */
struct defrag_job_hooks {
	void (*on_progress)(void *ctx, const struct defrag_job_info *info);
	void (*on_finish)(void *ctx, const struct defrag_job_info *info);
	void *ctx;
};

struct defrag_job {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* broadcast when a job finishes */
	struct mm *mm;
	const struct mm_step_ops *ops;
	struct defrag_job_hooks hooks;
	unsigned hook_calls;       /* on_progress calls in flight (made without the lock) */
	uint64_t progress_interval_ns;

	pthread_t thread;
	bool thread_joinable;
	struct defrag_request req;
	volatile int cancel;
	uint64_t last_progress_ns;
	struct defrag_job_info info;
};

#define DEFRAG_JOB_PROGRESS_INTERVAL_NS 100000000ULL /* at most 10 progress events a second */

int defrag_job__init(struct defrag_job *job, struct mm *mm, const struct mm_step_ops *ops,
		     const struct defrag_job_hooks *hooks);
/* Replace the hooks (NULL: none); returns once no call to the old ones is in flight. */
void defrag_job__set_hooks(struct defrag_job *job, const struct defrag_job_hooks *hooks);
/* Cancels a running job, waits for it and frees what init took. */
void defrag_job__exit(struct defrag_job *job);

/*
 * Start req (its cancel/progress fields are overwritten) on a new thread.
 * Returns 0 and the job id, or -EBUSY (another job runs: its id and origin in
 * *busy if not NULL) or another -errno, with a message in err.
 */
int defrag_job__start(struct defrag_job *job, const struct defrag_request *req,
		      enum defrag_origin origin, uint64_t *id, struct defrag_job_info *busy,
		      char *err, size_t errlen);
/* Ask the running job to stop at its next step. 0, or -ESRCH if none runs. */
int defrag_job__cancel(struct defrag_job *job, uint64_t *id);
/* Same, only if the running job is job `id`. */
int defrag_job__cancel_id(struct defrag_job *job, uint64_t id);
/* Block until job `id` is no longer running; info gets its final state. */
void defrag_job__wait(struct defrag_job *job, uint64_t id, struct defrag_job_info *info);
/* Wait at most timeout_ms; true if it finished. */
bool defrag_job__wait_timeout(struct defrag_job *job, uint64_t id, unsigned timeout_ms,
			      struct defrag_job_info *info);
void defrag_job__snapshot(struct defrag_job *job, struct defrag_job_info *info);
bool defrag_job__running(struct defrag_job *job);


#endif
