/* defrag_job.c: the one-at-a-time defrag job runner shared by the `defrag` command and defragd. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/defrag_job.h"
#include "vmm/util.h"

const char *const defrag_job_state_names[] = {
	[DEFRAG_JOB_IDLE] = "idle",
	[DEFRAG_JOB_RUNNING] = "running",
	[DEFRAG_JOB_DONE] = "done",
	[DEFRAG_JOB_CANCELLED] = "cancelled",
	[DEFRAG_JOB_FAILED] = "failed",
};

const char *const defrag_origin_names[] = {
	[DEFRAG_ORIGIN_MANUAL] = "manual",
	[DEFRAG_ORIGIN_AUTO] = "auto",
};

const char *defrag_job_info__error(const struct defrag_job_info *info)
{
	return info->stats.error_msg[0] ? info->stats.error_msg : strerror(-info->error);
}

int defrag_job__init(struct defrag_job *job, struct mm *mm, const struct mm_step_ops *ops,
		     const struct defrag_job_hooks *hooks)
{
	pthread_condattr_t ca;
	int r;

	memset(job, 0, sizeof(*job));
	job->mm = mm;
	job->ops = ops;
	if (hooks)
		job->hooks = *hooks;
	job->progress_interval_ns = DEFRAG_JOB_PROGRESS_INTERVAL_NS;
	job->info.state = DEFRAG_JOB_IDLE;

	r = pthread_mutex_init(&job->lock, NULL);
	if (r)
		return -r;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(&job->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		pthread_mutex_destroy(&job->lock);
		return -r;
	}
	return 0;
}

/* mm__defrag's progress callback, on the job thread. */
static void job__progress(void *ctx, uint64_t done, uint64_t total)
{
	struct defrag_job *job = ctx;
	struct defrag_job_info copy;
	uint64_t now = util__now_ns();
	bool report = false;

	struct defrag_job_hooks hooks;

	pthread_mutex_lock(&job->lock);
	job->info.done = done;
	job->info.total = total;
	hooks = job->hooks;
	if (hooks.on_progress && now - job->last_progress_ns >= job->progress_interval_ns) {
		job->last_progress_ns = now;
		copy = job->info;
		report = true;
		job->hook_calls++;   /* set_hooks waits for us before the hooks' owner goes away */
	}
	pthread_mutex_unlock(&job->lock);

	if (!report)
		return;
	hooks.on_progress(hooks.ctx, &copy);
	pthread_mutex_lock(&job->lock);
	job->hook_calls--;
	pthread_cond_broadcast(&job->cond);
	pthread_mutex_unlock(&job->lock);
}

void defrag_job__set_hooks(struct defrag_job *job, const struct defrag_job_hooks *hooks)
{
	pthread_mutex_lock(&job->lock);
	while (job->hook_calls)
		pthread_cond_wait(&job->cond, &job->lock);
	if (hooks)
		job->hooks = *hooks;
	else
		memset(&job->hooks, 0, sizeof(job->hooks));
	pthread_mutex_unlock(&job->lock);
}

static void *job__thread(void *arg)
{
	struct defrag_job *job = arg;
	struct defrag_stats st;
	int r;

	memset(&st, 0, sizeof(st));
	r = mm__defrag(job->mm, &job->req, job->ops, &st);

	pthread_mutex_lock(&job->lock);
	job->info.finished_ns = util__now_ns();
	job->info.stats = st;
	job->info.has_result = true;
	job->info.error = r < 0 ? r : 0;
	if (r < 0 && r != -ECANCELED && r != -EINTR)
		job->info.state = DEFRAG_JOB_FAILED;
	else if (__atomic_load_n(&job->cancel, __ATOMIC_ACQUIRE))
		job->info.state = DEFRAG_JOB_CANCELLED;
	else if (r < 0)
		job->info.state = DEFRAG_JOB_FAILED;
	else
		job->info.state = DEFRAG_JOB_DONE;
	if (job->info.state != DEFRAG_JOB_FAILED)
		job->info.error = 0;
	/*
	 * Report under the lock: nobody can start the next job before the
	 * completion of this one has been handed on, so events stay in order.
	 */
	if (job->hooks.on_finish)
		job->hooks.on_finish(job->hooks.ctx, &job->info);
	pthread_cond_broadcast(&job->cond);
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

int defrag_job__start(struct defrag_job *job, const struct defrag_request *req,
		      enum defrag_origin origin, uint64_t *id, struct defrag_job_info *busy,
		      char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&job->lock);
	if (job->info.state == DEFRAG_JOB_RUNNING) {
		if (busy)
			*busy = job->info;
		snprintf(err, errlen, "defrag already running (job %llu, %s)",
			 (unsigned long long)job->info.id,
			 job->info.origin == DEFRAG_ORIGIN_AUTO ? "started by defragd" :
								   "started by a defrag command");
		pthread_mutex_unlock(&job->lock);
		return -EBUSY;
	}
	if (job->thread_joinable) {
		/* The previous thread has published its result; it is only returning. */
		pthread_join(job->thread, NULL);
		job->thread_joinable = false;
	}

	job->req = *req;
	job->req.cancel = &job->cancel;
	job->req.progress = job__progress;
	job->req.progress_ctx = job;
	__atomic_store_n(&job->cancel, 0, __ATOMIC_RELEASE);
	job->last_progress_ns = 0;

	memset(&job->info.stats, 0, sizeof(job->info.stats));
	job->info.has_result = false;
	job->info.state = DEFRAG_JOB_RUNNING;
	job->info.origin = origin;
	job->info.id++;
	job->info.mode = req->mode;
	job->info.algo = req->algo;
	job->info.order = req->order;
	job->info.done = job->info.total = 0;
	job->info.started_ns = util__now_ns();
	job->info.finished_ns = 0;
	job->info.error = 0;

	r = pthread_create(&job->thread, NULL, job__thread, job);
	if (r) {
		job->info.state = DEFRAG_JOB_FAILED;
		job->info.error = -r;
		job->info.finished_ns = job->info.started_ns;
		snprintf(err, errlen, "cannot start the defrag thread: %s", strerror(r));
		pthread_mutex_unlock(&job->lock);
		return -r;
	}
	job->thread_joinable = true;
	if (id)
		*id = job->info.id;
	pthread_mutex_unlock(&job->lock);
	return 0;
}

int defrag_job__cancel(struct defrag_job *job, uint64_t *id)
{
	int r = -ESRCH;

	pthread_mutex_lock(&job->lock);
	if (job->info.state == DEFRAG_JOB_RUNNING) {
		__atomic_store_n(&job->cancel, 1, __ATOMIC_RELEASE);
		if (id)
			*id = job->info.id;
		r = 0;
	}
	pthread_mutex_unlock(&job->lock);
	return r;
}

int defrag_job__cancel_id(struct defrag_job *job, uint64_t id)
{
	int r = -ESRCH;

	pthread_mutex_lock(&job->lock);
	if (job->info.state == DEFRAG_JOB_RUNNING && job->info.id == id) {
		__atomic_store_n(&job->cancel, 1, __ATOMIC_RELEASE);
		r = 0;
	}
	pthread_mutex_unlock(&job->lock);
	return r;
}

static bool job__finished(const struct defrag_job *job, uint64_t id)
{
	return job->info.id != id || job->info.state != DEFRAG_JOB_RUNNING;
}

void defrag_job__wait(struct defrag_job *job, uint64_t id, struct defrag_job_info *info)
{
	pthread_mutex_lock(&job->lock);
	while (!job__finished(job, id))
		pthread_cond_wait(&job->cond, &job->lock);
	if (info)
		*info = job->info;
	pthread_mutex_unlock(&job->lock);
}

bool defrag_job__wait_timeout(struct defrag_job *job, uint64_t id, unsigned timeout_ms,
			      struct defrag_job_info *info)
{
	struct timespec deadline;
	bool finished;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&job->lock);
	while (!job__finished(job, id)) {
		if (pthread_cond_timedwait(&job->cond, &job->lock, &deadline) == ETIMEDOUT)
			break;
	}
	finished = job__finished(job, id);
	if (info)
		*info = job->info;
	pthread_mutex_unlock(&job->lock);
	return finished;
}

void defrag_job__snapshot(struct defrag_job *job, struct defrag_job_info *info)
{
	pthread_mutex_lock(&job->lock);
	*info = job->info;
	pthread_mutex_unlock(&job->lock);
}

bool defrag_job__running(struct defrag_job *job)
{
	bool running;

	pthread_mutex_lock(&job->lock);
	running = job->info.state == DEFRAG_JOB_RUNNING;
	pthread_mutex_unlock(&job->lock);
	return running;
}

void defrag_job__exit(struct defrag_job *job)
{
	pthread_mutex_lock(&job->lock);
	if (job->info.state == DEFRAG_JOB_RUNNING)
		__atomic_store_n(&job->cancel, 1, __ATOMIC_RELEASE);
	while (job->info.state == DEFRAG_JOB_RUNNING)
		pthread_cond_wait(&job->cond, &job->lock);
	if (job->thread_joinable) {
		pthread_join(job->thread, NULL);
		job->thread_joinable = false;
	}
	pthread_mutex_unlock(&job->lock);
	pthread_cond_destroy(&job->cond);
	pthread_mutex_destroy(&job->lock);
}
