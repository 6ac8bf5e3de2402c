/* test_collapse.c: collapse__run and collapse__split on a child process holding 4 KiB-backed RAM (as a paused QEMU): budgets, single call, cancel. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/check.h"
#include "vmm/qemu/collapse.h"
#include "vmm/qemu/coverage.h"

#define REGIONS 8

struct holder {
	pid_t pid;
	int release;
	struct collapse_range range;
};

/* A child with REGIONS x 2 MiB of memfd (anon: private anonymous), 2 MiB-aligned, every page written. */
static void holder__start(struct holder *h, bool anon)
{
	int ready[2], release[2];

	CHECK(pipe(ready) == 0 && pipe(release) == 0);
	h->pid = fork();
	CHECK(h->pid >= 0);
	if (h->pid == 0) {
		size_t len = REGIONS * REGION_2M;
		char *res = mmap(NULL, len + REGION_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *p = (char *)(((uintptr_t)res + REGION_2M - 1) & ~(uintptr_t)(REGION_2M - 1));
		int fd = anon ? -1 : memfd_create("test-collapse", 0);
		char c;

		close(ready[0]);
		close(release[1]);
		if (!anon && ftruncate(fd, (off_t)len))
			_exit(1);
		p = mmap(p, len, PROT_READ | PROT_WRITE, MAP_FIXED | (anon ? MAP_PRIVATE | MAP_ANONYMOUS :
			 MAP_SHARED), fd, 0);
		if (anon)
			madvise(p, len, MADV_HUGEPAGE);
		for (size_t off = 0; off < len; off += 4096)
			p[off] = (char)(off >> 12);
		h->range.start = (uint64_t)(uintptr_t)p;
		h->range.end = h->range.start + len;
		if (write(ready[1], &h->range, sizeof(h->range)) != sizeof(h->range))
			_exit(1);
		while (read(release[0], &c, 1) > 0)
			;
		/* the data survived whatever was done to its pages */
		for (size_t off = 0; off < len; off += 4096)
			if (p[off] != (char)(off >> 12))
				_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(release[0]);
	h->release = release[1];
	CHECK(read(ready[0], &h->range, sizeof(h->range)) == sizeof(h->range));
	close(ready[0]);
}

static void holder__stop(struct holder *h)
{
	int status;

	close(h->release);
	CHECK(waitpid(h->pid, &status, 0) == h->pid);
	CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "holder status 0x%x: its data changed",
	       status);
}

static volatile sig_atomic_t cancel_flag;

static void cancel_after_first(void *ctx, uint64_t done, uint64_t total,
			       const struct collapse_result *r)
{
	cancel_flag = 1;
}

int main(void)
{
	struct collapse_job job = { 0 };
	struct collapse_result res;
	struct holder h;
	uint64_t split;
	char err[256];

	if (geteuid() != 0) {
		printf("SKIP: needs root (pagemap PFNs, process_madvise on another process)\n");
		return 77;
	}
	tu_case = "chunked, 5 ms budget, memfd";
	holder__start(&h, false);
	job.pid = h.pid;
	job.ranges = &h.range;
	job.nr_ranges = 1;
	job.budget = (struct collapse_budget)COLLAPSE_BUDGET_DEFAULTS;
	CHECKF(collapse__run(&job, &res, err, sizeof(err)) == 0, "%s", err);
	CHECK(res.pfns_visible);
	CHECK_EQ(res.regions, REGIONS);
	CHECK_EQ(res.already_huge, 0);
	CHECK_EQ(res.collapsed, REGIONS);
	CHECK_EQ(res.failed, 0);
	CHECK_EQ(res.huge_after, REGIONS);
	CHECK(res.calls >= 1 && res.call_max_ms > 0 && res.call_seconds <= res.seconds);
	CHECK(res.chunk_max >= 1 && res.chunk_max <= REGIONS);
	tu_case = "again: nothing left to do";
	CHECK(collapse__run(&job, &res, err, sizeof(err)) == 0);
	CHECK_EQ(res.already_huge, REGIONS);
	CHECK_EQ(res.calls, 0);
	holder__stop(&h);

	tu_case = "single call, anonymous, split first";
	holder__start(&h, true);
	job.pid = h.pid;
	job.ranges = &h.range;
	CHECKF(collapse__split(h.pid, &h.range, 1, 1.0, 1, &split, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(split, REGIONS);
	job.budget.single_call = true;
	CHECKF(collapse__run(&job, &res, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(res.calls, 1);
	CHECK_EQ(res.collapsed + res.already_huge, REGIONS);
	CHECK_EQ(res.huge_after, REGIONS);

	tu_case = "max_regions and cancel";
	CHECK(collapse__split(h.pid, &h.range, 1, 1.0, 1, &split, err, sizeof(err)) == 0);
	job.budget = (struct collapse_budget)COLLAPSE_BUDGET_DEFAULTS;
	job.budget.max_regions = 3;
	CHECK(collapse__run(&job, &res, err, sizeof(err)) == 0);
	CHECK_EQ(res.attempted, 3);
	CHECK_EQ(res.huge_after, 3);
	job.budget.max_regions = 0;
	job.budget.max_stall_us = 0;           /* one region per call */
	job.cancel = &cancel_flag;
	job.progress = cancel_after_first;
	CHECK(collapse__run(&job, &res, err, sizeof(err)) == -ECANCELED);
	CHECK(res.cancelled);
	CHECK_EQ(res.attempted, 1);
	holder__stop(&h);

	tu_case = "the process is gone";
	job.cancel = NULL;
	job.progress = NULL;
	CHECK(collapse__run(&job, &res, err, sizeof(err)) == -ESRCH);
	printf("ok collapse: chunked, single call, split, max_regions, cancel, exited process\n");
	return 0;
}
