/* defragd.c: background defragmenter: kcompactd-style proactive rounds over the guest's 2 MiB backing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/defragd.h"
#include "vmm/mm_json.h"
#include "vmm/util.h"

const char *const defragd_state_names[] = {
	[DEFRAGD_OFF] = "off",
	[DEFRAGD_IDLE] = "idle",
	[DEFRAGD_COMPACTING] = "compacting",
	[DEFRAGD_BACKOFF] = "backoff",
};

unsigned defragd__wmark(unsigned proactiveness, bool low)
{
	unsigned wmark_low = proactiveness >= 95 ? 5 : 100 - proactiveness;

	if (low)
		return wmark_low;
	return wmark_low + 10 > 100 ? 100 : wmark_low + 10;
}

int defragd__check_policy(const struct defragd_policy *p, char *err, size_t errlen)
{
	if (p->proactiveness > 100) {
		snprintf(err, errlen, "proactiveness %u is out of range 0..100", p->proactiveness);
		return -EINVAL;
	}
	if (p->interval_ms < DEFRAGD_INTERVAL_MS_MIN || p->interval_ms > DEFRAGD_INTERVAL_MS_MAX) {
		snprintf(err, errlen, "interval-ms %u is out of range %u..%u", p->interval_ms,
			 DEFRAGD_INTERVAL_MS_MIN, DEFRAGD_INTERVAL_MS_MAX);
		return -EINVAL;
	}
	if (p->max_pause_us < DEFRAGD_PAUSE_US_MIN || p->max_pause_us > DEFRAGD_PAUSE_US_MAX) {
		snprintf(err, errlen, "max-pause-us %u is out of range %u..%u", p->max_pause_us,
			 DEFRAGD_PAUSE_US_MIN, DEFRAGD_PAUSE_US_MAX);
		return -EINVAL;
	}
	if (p->max_mbps > DEFRAGD_MBPS_MAX) {
		snprintf(err, errlen, "max-mbps %u is out of range 0..%u", p->max_mbps,
			 DEFRAGD_MBPS_MAX);
		return -EINVAL;
	}
	if (p->backoff_ms > DEFRAGD_BACKOFF_MS_MAX) {
		snprintf(err, errlen, "backoff-ms %u is out of range 0..%u", p->backoff_ms,
			 DEFRAGD_BACKOFF_MS_MAX);
		return -EINVAL;
	}
	if (p->regions_per_wakeup < 1 || p->regions_per_wakeup > DEFRAGD_REGIONS_MAX) {
		snprintf(err, errlen, "regions-per-wakeup %u is out of range 1..%u",
			 p->regions_per_wakeup, DEFRAGD_REGIONS_MAX);
		return -EINVAL;
	}
	return 0;
}

int defragd__init(struct defragd *d, struct defrag_job *job)
{
	static const struct defragd_policy defaults = DEFRAGD_POLICY_DEFAULTS;
	pthread_condattr_t ca;
	int r;

	memset(d, 0, sizeof(*d));
	d->job = job;
	d->policy = defaults;
	d->state = DEFRAGD_OFF;
	r = pthread_mutex_init(&d->lock, NULL);
	if (r)
		return -r;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (r) {
		pthread_mutex_destroy(&d->lock);
		return -r;
	}
	return 0;
}

static void timespec__add_ms(struct timespec *ts, uint32_t ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool defragd__host_running(struct defragd *d)
{
	return !d->status || strcmp(d->status(d->status_ctx), "running") == 0;
}

static void defragd__backoff(struct defragd *d, const struct defragd_policy *p)
{
	d->counters.backoffs++;
	d->backoff_until_ns = util__now_ns() + (uint64_t)p->backoff_ms * 1000000ULL;
	d->state = DEFRAGD_BACKOFF;
}

/*
 * One wakeup, like kcompactd_do_work()'s proactive branch: start compacting
 * when the score is over the high watermark, run one budgeted chunk per wakeup
 * while it stays over the low one, back off when a chunk makes no progress.
 * Called and returns with d->lock held; drops it while work runs.
 */
static void defragd__wakeup(struct defragd *d, const struct defragd_policy *p)
{
	struct mm_stat before, after;
	struct defrag_request req;
	struct defrag_job_info info;
	unsigned score, score_before, low = defragd__wmark(p->proactiveness, true);
	unsigned high = defragd__wmark(p->proactiveness, false);
	uint64_t id;
	char err[256];
	int r;

	if (d->state == DEFRAGD_BACKOFF) {
		if (util__now_ns() < d->backoff_until_ns)
			return;
		d->state = DEFRAGD_IDLE;
	}
	if (!defragd__host_running(d))
		return;

	pthread_mutex_unlock(&d->lock);
	mm__stat(d->mm, &before);
	pthread_mutex_lock(&d->lock);
	score = score_before = mm_stat__backing_score(&before);
	d->counters.last_score = score;
	d->counters.last_free_score = before.frag_score;

	if (d->state != DEFRAGD_COMPACTING) {
		if (score <= high) {
			d->state = DEFRAGD_IDLE;
			return;
		}
		d->state = DEFRAGD_COMPACTING;
	}
	if (score <= low) {
		d->state = DEFRAGD_IDLE;
		return;
	}

	defrag_request__init(&req);
	req.mode = DEFRAG_FULL;
	req.algo = DEFRAG_ALGO_PLANNED;
	req.order = -1;
	req.max_pause_ns = (uint64_t)p->max_pause_us * 1000;
	req.max_bytes_per_sec = (uint64_t)p->max_mbps * 1000000;
	req.max_regions = p->regions_per_wakeup;
	r = defrag_job__start(d->job, &req, DEFRAG_ORIGIN_AUTO, &id, NULL, err, sizeof(err));
	if (r == -EBUSY) {
		d->counters.busy_skips++;
		return;
	}
	if (r < 0) {
		d->counters.failures++;
		defragd__backoff(d, p);
		return;
	}
	d->counters.rounds++;
	d->counters.last_job_id = id;
	d->running_job = id;
	pthread_mutex_unlock(&d->lock);

	defrag_job__wait(d->job, id, &info);
	mm__stat(d->mm, &after);

	pthread_mutex_lock(&d->lock);
	d->running_job = 0;
	d->counters.regions_promoted += info.stats.regions_promoted + info.stats.regions_zero_copy;
	d->counters.pages_copied += info.stats.pages_copied;
	score = mm_stat__backing_score(&after);
	d->counters.last_score = score;
	d->counters.last_free_score = after.frag_score;
	if (d->state != DEFRAGD_COMPACTING)
		return;              /* the policy changed meanwhile */
	if (info.state == DEFRAG_JOB_CANCELLED)
		return;              /* cancel-defrag or stop: not a lack of progress */
	if (info.state == DEFRAG_JOB_FAILED) {
		d->counters.failures++;
		defragd__backoff(d, p);
		return;
	}
	/*
	 * kcompactd defers when the score did not go down. A bounded chunk may
	 * move the integer score by less than one point in a large guest, so
	 * progress here is "more regions backed by 2 MiB pages".
	 */
	if (after.regions_backed_2m <= before.regions_backed_2m && score >= score_before) {
		defragd__backoff(d, p);
		return;
	}
	if (score <= low)
		d->state = DEFRAGD_IDLE;
}

static void *defragd__thread(void *arg)
{
	struct defragd *d = arg;
	struct defragd_policy p;
	struct timespec deadline;
	uint64_t gen;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		if (!d->policy.enabled) {
			d->state = DEFRAGD_OFF;
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		if (d->state == DEFRAGD_OFF)
			d->state = DEFRAGD_IDLE;
		gen = d->policy_gen;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		timespec__add_ms(&deadline, d->policy.interval_ms);
		while (!d->stop && d->policy_gen == gen &&
		       pthread_cond_timedwait(&d->cond, &d->lock, &deadline) != ETIMEDOUT)
			;
		if (d->stop || d->policy_gen != gen)
			continue;    /* a new policy restarts the timer */
		p = d->policy;
		d->counters.wakeups++;
		defragd__wakeup(d, &p);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

int defragd__start(struct defragd *d, struct mm *mm, const char *(*status)(void *ctx), void *status_ctx,
		   const struct defragd_policy *p)
{
	char err[128];
	int r;

	if (p && defragd__check_policy(p, err, sizeof(err)))
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	if (d->started) {
		pthread_mutex_unlock(&d->lock);
		return -EALREADY;
	}
	d->mm = mm;
	d->status = status;
	d->status_ctx = status_ctx;
	if (p)
		d->policy = *p;
	d->stop = false;
	r = pthread_create(&d->thread, NULL, defragd__thread, d);
	if (r) {
		pthread_mutex_unlock(&d->lock);
		return -r;
	}
	d->started = true;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int defragd__set_policy(struct defragd *d, const struct defragd_policy *p, char *err, size_t errlen)
{
	int r = defragd__check_policy(p, err, errlen);

	if (r)
		return r;
	pthread_mutex_lock(&d->lock);
	d->policy = *p;
	d->policy_gen++;
	if (!p->enabled)
		d->state = DEFRAGD_OFF;
	else if (d->state == DEFRAGD_OFF || d->state == DEFRAGD_BACKOFF)
		d->state = DEFRAGD_IDLE;   /* a new policy ends a backoff */
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void defragd__snapshot(struct defragd *d, struct defragd_policy *p, struct defragd_counters *c,
		       enum defragd_state *state)
{
	pthread_mutex_lock(&d->lock);
	if (p)
		*p = d->policy;
	if (c)
		*c = d->counters;
	if (state)
		*state = d->state;
	pthread_mutex_unlock(&d->lock);
}

void defragd__stop(struct defragd *d)
{
	bool joinable;

	pthread_mutex_lock(&d->lock);
	d->stop = true;
	if (d->running_job)
		defrag_job__cancel_id(d->job, d->running_job);
	pthread_cond_broadcast(&d->cond);
	joinable = d->started;
	d->started = false;
	pthread_mutex_unlock(&d->lock);
	if (joinable)
		pthread_join(d->thread, NULL);
}

void defragd__exit(struct defragd *d)
{
	defragd__stop(d);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}
