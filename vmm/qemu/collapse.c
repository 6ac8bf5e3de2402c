/* collapse.c: chunked, budgeted process_madvise(MADV_COLLAPSE) over a foreign process's RAM, most populated regions first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "vmm/qemu/collapse.h"
#include "vmm/util.h"
#include "vmm/qemu/coverage.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

struct cregion {
	uint64_t va;
	uint16_t present;
};

struct collapse_run {
	const struct collapse_job *job;
	struct collapse_result *res;
	struct page_scanner scan;
	int pidfd;
	struct cregion *todo;
	size_t nr_todo;
	double *call_ms;              /* every call's time, for the p99 */
	size_t nr_calls, cap_calls;
	uint64_t t0_ns;
	struct iovec iov[COLLAPSE_MAX_IOV];
};

uint32_t collapse__next_chunk(struct collapse_sizer *s, uint32_t last_chunk, double last_call_us,
			      uint32_t target_us)
{
	double per_region, want;
	uint32_t cap = last_chunk * 2 < COLLAPSE_MAX_IOV ? last_chunk * 2 : COLLAPSE_MAX_IOV;

	if (!target_us || !last_chunk)
		return 1;
	per_region = last_call_us / last_chunk;
	/* size for the dearest region seen lately, not the last call's mean: cold huge pages come in
	 * runs (~6 ms each against ~0.4 ms warm), and one inside a big chunk blows the budget */
	s->worst_us = per_region > s->worst_us * 0.95 ? per_region : s->worst_us * 0.95;
	if (s->worst_us <= 0)
		return cap ? cap : 1;
	want = 0.75 * target_us / s->worst_us;
	if (want < 1)
		return 1;
	return want > cap ? cap : (uint32_t)want;
}

static int region__cmp(const void *a, const void *b)
{
	const struct cregion *x = a, *y = b;

	if (x->present != y->present)
		return x->present > y->present ? -1 : 1;
	return x->va < y->va ? -1 : x->va > y->va;
}

/* Classify every region; the populated, not yet huge ones become the work list. */
static int collapse__plan(struct collapse_run *cr, char *err, size_t errlen)
{
	const struct collapse_job *job = cr->job;
	size_t cap = 0;

	for (size_t i = 0; i < job->nr_ranges; i++) {
		uint64_t first = (job->ranges[i].start + REGION_2M - 1) & ~(REGION_2M - 1);
		uint64_t last = job->ranges[i].end & ~(REGION_2M - 1);

		for (uint64_t va = first; va < last; va += REGION_2M) {
			enum region_state st;
			unsigned present;
			int r = page_scanner__region(&cr->scan, va, &st, &present);

			if (r < 0) {
				snprintf(err, errlen, "cannot read PID %d's pagemap: %s", (int)job->pid,
					 strerror(-r));
				return r;
			}
			cr->res->regions++;
			if (st == REGION_HUGE) {
				cr->res->already_huge++;
				continue;
			}
			if (st == REGION_EMPTY) {
				cr->res->unpopulated++;
				continue;
			}
			if (cr->nr_todo == cap) {
				struct cregion *p = realloc(cr->todo, (cap = cap ? 2 * cap : 512) *
							    sizeof(*p));

				if (!p)
					return -ENOMEM;
				cr->todo = p;
			}
			cr->todo[cr->nr_todo].va = va;
			cr->todo[cr->nr_todo++].present = (uint16_t)present;
		}
	}
	if (cr->nr_todo)   /* qsort's array may not be NULL, even empty */
		qsort(cr->todo, cr->nr_todo, sizeof(*cr->todo), region__cmp);
	cr->res->pfns_visible = cr->scan.pfns_visible;
	cr->cap_calls = 2 * cr->nr_todo + 1;   /* a chunk call and a retry per region at most */
	cr->call_ms = calloc(cr->cap_calls, sizeof(*cr->call_ms));
	return cr->call_ms ? 0 : -ENOMEM;
}

/* One process_madvise call over niov iovecs; returns its result, errno in *e, time in res. */
static long collapse__call(struct collapse_run *cr, size_t niov, int *e, double *us)
{
	uint64_t t0 = util__now_ns();
	long r = syscall(SYS_process_madvise, cr->pidfd, cr->iov, niov, MADV_COLLAPSE, 0);
	double ms;

	*e = r < 0 ? errno : 0;
	*us = (double)(util__now_ns() - t0) / 1e3;
	ms = *us / 1e3;
	cr->res->calls++;
	cr->res->call_seconds += ms / 1e3;
	if (cr->job->budget.max_stall_us && *us > cr->job->budget.max_stall_us)
		cr->res->calls_over_budget++;
	if (cr->nr_calls < cr->cap_calls)
		cr->call_ms[cr->nr_calls++] = ms;
	if (ms > cr->res->call_max_ms)
		cr->res->call_max_ms = ms;
	return r;
}

static bool collapse__is_huge(struct collapse_run *cr, uint64_t va)
{
	enum region_state st;
	unsigned present;

	return page_scanner__region(&cr->scan, va, &st, &present) == 0 && st == REGION_HUGE;
}

static void collapse__count_failure(struct collapse_result *res, int e)
{
	res->failed++;
	if (e == EAGAIN)
		res->failed_eagain++;
	else if (e == ENOMEM)
		res->failed_enomem++;
	else if (e == EINVAL)
		res->failed_einval++;
	else
		res->failed_other++;
}

/* Errors that end the run rather than count against one region. */
static int collapse__fatal(const struct collapse_job *job, int e, char *err, size_t errlen)
{
	switch (e) {
	case ESRCH:
		snprintf(err, errlen, "process %d exited", (int)job->pid);
		return -ESRCH;
	case EPERM:
	case EACCES:
		snprintf(err, errlen, "process_madvise on PID %d: %s (needs CAP_SYS_NICE and ptrace "
			 "access to it; run as root)", (int)job->pid, strerror(e));
		return -EPERM;
	case ENOSYS:
		snprintf(err, errlen, "this kernel has no process_madvise");
		return -ENOSYS;
	default:
		return 0;
	}
}

/* Regions todo[i..i+n) as iovecs, contiguous neighbours merged. */
static size_t collapse__iovecs(struct collapse_run *cr, size_t i, size_t n)
{
	size_t niov = 0;

	for (size_t k = i; k < i + n; k++) {
		struct iovec *prev = niov ? &cr->iov[niov - 1] : NULL;

		if (prev && (uint64_t)(uintptr_t)prev->iov_base + prev->iov_len == cr->todo[k].va) {
			prev->iov_len += REGION_2M;
			continue;
		}
		cr->iov[niov].iov_base = (void *)(uintptr_t)cr->todo[k].va;
		cr->iov[niov++].iov_len = REGION_2M;
	}
	return niov;
}

/* Check todo[i..i+n) after a call; retry failures alone once to learn why. */
static int collapse__settle(struct collapse_run *cr, size_t i, size_t n, int chunk_errno,
			    char *err, size_t errlen)
{
	struct collapse_result *res = cr->res;

	for (size_t k = i; k < i + n; k++) {
		int e = chunk_errno ? chunk_errno : EAGAIN;
		double us;

		res->attempted++;
		if (collapse__is_huge(cr, cr->todo[k].va)) {
			res->collapsed++;
			continue;
		}
		if (cr->job->budget.retry_failed) {
			cr->iov[0].iov_base = (void *)(uintptr_t)cr->todo[k].va;
			cr->iov[0].iov_len = REGION_2M;
			if (collapse__call(cr, 1, &e, &us) >= 0)
				e = 0;
			if (collapse__fatal(cr->job, e, err, errlen))
				return collapse__fatal(cr->job, e, err, errlen);
			if (collapse__is_huge(cr, cr->todo[k].va)) {
				res->collapsed++;
				continue;
			}
		}
		collapse__count_failure(res, e ? e : EAGAIN);
	}
	return 0;
}

/* Sleep so that the attempted bytes stay under max_mbps; false if cancelled meanwhile. */
static bool collapse__throttle(struct collapse_run *cr)
{
	const struct collapse_job *job = cr->job;
	uint64_t bytes = cr->res->attempted * REGION_2M, due_ns, now;

	if (!job->budget.max_mbps)
		return true;
	due_ns = cr->t0_ns + bytes * 1000ULL / job->budget.max_mbps;
	while ((now = util__now_ns()) < due_ns) {
		uint64_t step = due_ns - now > 50000000ULL ? 50000000ULL : due_ns - now;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step };

		if (job->cancel && *job->cancel)
			return false;
		nanosleep(&ts, NULL);
		cr->res->sleep_seconds += (double)step / 1e9;
	}
	return true;
}

static int collapse__chunked(struct collapse_run *cr, char *err, size_t errlen)
{
	const struct collapse_job *job = cr->job;
	struct collapse_sizer sizer = { 0 };
	size_t limit = cr->nr_todo, i = 0;
	uint32_t chunk = 1;

	if (job->budget.max_regions && job->budget.max_regions < limit)
		limit = job->budget.max_regions;
	while (i < limit) {
		size_t n = limit - i < chunk ? limit - i : chunk, niov;
		double us;
		int e, r;

		if (job->cancel && *job->cancel) {
			cr->res->cancelled = true;
			break;
		}
		niov = collapse__iovecs(cr, i, n);
		collapse__call(cr, niov, &e, &us);
		r = collapse__fatal(job, e, err, errlen);
		if (r < 0)
			return r;
		r = collapse__settle(cr, i, n, e, err, errlen);
		if (r < 0)
			return r;
		i += n;
		cr->res->chunk_last = (uint32_t)n;
		if (n > cr->res->chunk_max)
			cr->res->chunk_max = (uint32_t)n;
		chunk = collapse__next_chunk(&sizer, (uint32_t)n, us, job->budget.max_stall_us);
		if (job->progress)
			job->progress(job->ctx, i, limit, cr->res);
		if (!collapse__throttle(cr)) {
			cr->res->cancelled = true;
			break;
		}
	}
	return 0;
}

/* KubeVirt's way: one call over every range, whatever it costs. */
static int collapse__single(struct collapse_run *cr, char *err, size_t errlen)
{
	const struct collapse_job *job = cr->job;
	size_t niov = 0;
	double us;
	int e, r;

	for (size_t i = 0; i < job->nr_ranges && niov < COLLAPSE_MAX_IOV; i++) {
		uint64_t first = (job->ranges[i].start + REGION_2M - 1) & ~(REGION_2M - 1);
		uint64_t last = job->ranges[i].end & ~(REGION_2M - 1);

		if (last <= first)
			continue;
		cr->iov[niov].iov_base = (void *)(uintptr_t)first;
		cr->iov[niov++].iov_len = last - first;
	}
	if (!niov)
		return 0;
	collapse__call(cr, niov, &e, &us);
	r = collapse__fatal(job, e, err, errlen);
	if (r < 0)
		return r;
	cr->res->chunk_last = cr->res->chunk_max = (uint32_t)cr->nr_todo;
	for (size_t k = 0; k < cr->nr_todo; k++) {
		cr->res->attempted++;
		if (collapse__is_huge(cr, cr->todo[k].va))
			cr->res->collapsed++;
		else
			collapse__count_failure(cr->res, e ? e : EAGAIN);
	}
	if (job->progress)
		job->progress(job->ctx, cr->nr_todo, cr->nr_todo, cr->res);
	return 0;
}

static int ms__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Regions on 2 MiB pages now, over all ranges; the p99 call time. */
static void collapse__count_huge(struct collapse_run *cr)
{
	if (cr->nr_calls) {
		qsort(cr->call_ms, cr->nr_calls, sizeof(*cr->call_ms), ms__cmp);
		cr->res->call_p99_ms = cr->call_ms[(cr->nr_calls - 1) * 99 / 100];
	}
	cr->res->huge_after = 0;
	for (size_t i = 0; i < cr->job->nr_ranges; i++) {
		uint64_t first = (cr->job->ranges[i].start + REGION_2M - 1) & ~(REGION_2M - 1);
		uint64_t last = cr->job->ranges[i].end & ~(REGION_2M - 1);

		for (uint64_t va = first; va < last; va += REGION_2M)
			cr->res->huge_after += collapse__is_huge(cr, va);
	}
}

int collapse__run(const struct collapse_job *job, struct collapse_result *res, char *err,
		  size_t errlen)
{
	struct collapse_run *cr = calloc(1, sizeof(*cr));
	int r;

	memset(res, 0, sizeof(*res));
	if (!cr)
		return -ENOMEM;
	cr->job = job;
	cr->res = res;
	cr->t0_ns = util__now_ns();
	cr->pidfd = (int)syscall(SYS_pidfd_open, job->pid, 0);
	if (cr->pidfd < 0) {
		r = collapse__fatal(job, errno, err, errlen);
		if (!r) {
			r = -errno;
			snprintf(err, errlen, "pidfd_open(%d): %s", (int)job->pid, strerror(errno));
		}
		free(cr);
		return r;
	}
	cr->scan.pagemap_fd = cr->scan.kpageflags_fd = -1;
	r = page_scanner__open(&cr->scan, job->pid, err, errlen);
	if (r == 0)
		r = collapse__plan(cr, err, errlen);
	if (r == 0)
		r = job->budget.single_call ? collapse__single(cr, err, errlen) :
					      collapse__chunked(cr, err, errlen);
	if (r == 0 || r == -ECANCELED)
		collapse__count_huge(cr);
	res->seconds = (double)(util__now_ns() - cr->t0_ns) / 1e9;
	page_scanner__close(&cr->scan);
	close(cr->pidfd);
	free(cr->todo);
	free(cr->call_ms);
	free(cr);
	if (r == 0 && res->cancelled) {
		snprintf(err, errlen, "cancelled");
		r = -ECANCELED;
	}
	return r;
}

static uint64_t split__next(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

int collapse__split(pid_t pid, const struct collapse_range *ranges, size_t nr, double share,
		    uint64_t seed, uint64_t *split, char *err, size_t errlen)
{
	struct collapse_job job = { .pid = pid };
	struct iovec iov[COLLAPSE_MAX_IOV];
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), r = 0;
	size_t n = 0;

	*split = 0;
	err[0] = '\0';
	if (pidfd < 0)
		return collapse__fatal(&job, errno, err, errlen) ?: -errno;
	for (size_t i = 0; i < nr && r == 0; i++) {
		uint64_t first = (ranges[i].start + REGION_2M - 1) & ~(REGION_2M - 1);

		for (uint64_t va = first; va + REGION_2M <= ranges[i].end && r == 0; va += REGION_2M) {
			if ((double)(split__next(&seed) >> 11) / 9007199254740992.0 >= share)
				continue;
			iov[n].iov_base = (void *)(uintptr_t)va;
			iov[n++].iov_len = 4096;
			if (n < COLLAPSE_MAX_IOV)
				continue;
			if (syscall(SYS_process_madvise, pidfd, iov, n, MADV_COLD, 0) < 0)
				r = collapse__fatal(&job, errno, err, errlen) ?: -errno;
			*split += n;
			n = 0;
		}
	}
	if (r == 0 && n && syscall(SYS_process_madvise, pidfd, iov, n, MADV_COLD, 0) < 0)
		r = collapse__fatal(&job, errno, err, errlen) ?: -errno;
	if (r == 0)
		*split += n;
	else if (!err[0])
		snprintf(err, errlen, "process_madvise(MADV_COLD): %s", strerror(-r));
	close(pidfd);
	return r;
}
