/* test_lazy.c: lazy restore at mm level: threads touch the guest window at random while userfaultfd and the prefetcher fill it; every byte checked. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/mm.h"
#include "mm/util.h"
#include "vmm/snapshot/lazy.h"

static char cleanup_path[4200]; /* removed at exit, also when a check fails */

static void cleanup(void)
{
	if (cleanup_path[0])
		unlink(cleanup_path);
}

#include "tests/check.h"

#define GUEST (128ull << 20)

struct toucher {
	struct mm *restored, *orig;
	uint64_t seed;
	uint64_t first_ns, t0;
	pthread_t thread;
};

/* Like a guest: random pages first (faults out of GPA order), compared with the original. */
static void *touch(void *opaque)
{
	struct toucher *t = opaque;
	uint64_t x = t->seed;

	for (int i = 0; i < 2000; i++) {
		uint64_t gpa = mm__splitmix64(&x) % (GUEST / 4096) * 4096;

		if (memcmp(window__gpa_ptr(&t->restored->win, gpa), window__gpa_ptr(&t->orig->win, gpa), 4096))
			FAIL("lazy restore: GPA 0x%" PRIx64 " differs", gpa);
		if (!t->first_ns)
			t->first_ns = mm__now_ns() - t->t0;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	struct mm_config cfg = { .guest_bytes = GUEST, .slack_bytes = 8 << 20, .prefault = true, .aging = AGING_DEFAULTS };
	struct toucher tt[2];
	struct snap_lazy lazy;
	struct snap_file f;
	struct mm orig, mm;
	struct mm_stat st;
	char path[4200], err[512];
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid()) {
		printf("SKIP: needs root (private huge tmpfs, userfaultfd for kernel faults)\n");
		return 77;
	}
	cfg.aging.age = 0.9;
	if (mm__create(&orig, &cfg, err, sizeof(err)))
		FAIL("mm__create: %s", err);
	for (uint64_t gpa = 0; gpa < GUEST; gpa += 4096)
		if ((gpa >> 12) % 5) /* a fifth of the pages stay zero */
			for (unsigned i = 0; i < 4096; i += 8)
				*(uint64_t *)window__gpa_ptr(&orig.win, gpa + i) = gpa * 31 + i;
	snprintf(path, sizeof(path), "%s/vmcompact-lazy.%d", dir, (int)getpid());
	snprintf(cleanup_path, sizeof(cleanup_path), "%s", path);
	atexit(cleanup);
	if (snapshot__write(&orig, path, false, NULL, 0, NULL, err, sizeof(err)))
		FAIL("snapshot: %s", err);
	if (snap_file__open(&f, path, 0, err, sizeof(err)))
		FAIL("open: %s", err);
	CHECK(!snap_file__mm_config(&f, false, &cfg, err, sizeof(err)));
	cfg.prefault = false; /* nothing in the page cache: every first touch is a userfault */
	if (mm__create(&mm, &cfg, err, sizeof(err)))
		FAIL("mm__create: %s", err);
	ret = snap_lazy__start(&lazy, &f, &mm, err, sizeof(err));
	if (ret == -EPERM || ret == -ENOSYS) {
		printf("SKIP: %s\n", err);
		return 77;
	}
	if (ret)
		FAIL("lazy start: %s", err);
	for (int i = 0; i < 2; i++) {
		tt[i] = (struct toucher){ .restored = &mm, .orig = &orig, .seed = (uint64_t)i + 1, .t0 = lazy.t0 };
		CHECK(!pthread_create(&tt[i].thread, NULL, touch, &tt[i]));
	}
	for (int i = 0; i < 2; i++)
		pthread_join(tt[i].thread, NULL);
	if (snap_lazy__wait(&lazy))
		FAIL("lazy: %s", lazy.err);
	printf("lazy restore of 128 MiB from %s: first touch served after %.3f ms, all resident after %.1f ms; "
	       "%" PRIu64 " faults, %" PRIu64 " regions filled by faults, %" PRIu64 " by prefetch, longest fault %.3f ms\n",
	       dir, tt[0].first_ns / 1e6, lazy.st.resident_ns / 1e6, lazy.st.faults, lazy.st.regions_by_fault,
	       lazy.st.regions_by_prefetch, lazy.st.fault_max_ns / 1e6);
	CHECK(lazy.st.regions_by_fault + lazy.st.regions_by_prefetch == mm.map.nr_regions);
	CHECK(lazy.st.faults > 0);
	for (uint64_t gpa = 0; gpa < GUEST; gpa += 4096)
		if (memcmp(window__gpa_ptr(&mm.win, gpa), window__gpa_ptr(&orig.win, gpa), 4096))
			FAIL("after lazy restore: GPA 0x%" PRIx64 " differs", gpa);
	mm__stat(&mm, &st);
	printf("  backing_2m %.3f after the lazy restore (pool %s); %" PRIu64 " blocks collapsed in %.1f ms\n", st.backing_2m,
	       pool_backing__name(mm.pool.backing), lazy.st.regions_collapsed, lazy.st.collapse_ns / 1e6);
	if (mm.pool.backing == POOL_BACKING_THP && mm.pool.huge_exact)
		CHECK(st.backing_2m == 1.0);
	snap_lazy__stop(&lazy);
	snap_file__close(&f);
	mm__destroy(&mm);
	mm__destroy(&orig);
	unlink(path);
	printf("ok\n");
	return 0;
}
