/* test_pool.c: the frame pool: private huge tmpfs, THP detection per block, copies, the non-root fallback. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "mm/pool.h"
#include "tests/check.h"

#define MiB (1ULL << 20)
#define SKIP 77

static uint64_t sig(frame_t f, unsigned word)
{
	return 0x5eed0000deadbeefULL ^ ((uint64_t)f << 20) ^ word;
}

static void fill_frame(struct pool *p, frame_t f)
{
	uint64_t *w = pool__frame_ptr(p, f);

	for (unsigned i = 0; i < MM_PAGE_SIZE / 8; i++)
		w[i] = sig(f, i);
}

static bool frame_has(struct pool *p, frame_t f, frame_t of)
{
	const uint64_t *w = pool__frame_ptr(p, f);

	for (unsigned i = 0; i < MM_PAGE_SIZE / 8; i++)
		if (w[i] != sig(of, i))
			return false;
	return true;
}

/* PMD-mapped kB of the pool's direct map, from /proc/self/smaps: an independent count. */
static uint64_t smaps_pmd_blocks(const struct pool *p)
{
	uintptr_t lo = (uintptr_t)p->base, hi = lo + p->size;
	char line[512];
	bool inside = false;
	uint64_t kb = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e, v;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = s >= lo && e <= hi;
			continue;
		}
		if (inside && (sscanf(line, "ShmemPmdMapped: %lu kB", &v) == 1 ||
			       sscanf(line, "FilePmdMapped: %lu kB", &v) == 1))
			kb += v;
	}
	fclose(f);
	return kb / 2048;
}

static void test_copies(struct pool *p)
{
	struct tu_rng r;

	tu_case = "copies";
	tu_rng_seed(&r, tu_seed);
	for (frame_t f = 0; f < p->nr_frames; f++)
		fill_frame(p, f);
	for (int i = 0; i < 200; i++) {
		frame_t src = (frame_t)tu_below(&r, p->nr_frames), dst = (frame_t)tu_below(&r, p->nr_frames);

		if (src == dst)
			continue;
		pool__copy_frame(p, dst, src);
		CHECKF(frame_has(p, dst, src), "copy %u -> %u (%s)", src, dst, p->copy_impl);
		fill_frame(p, dst);
	}
	/* Batch form and multi-frame form. */
	for (frame_t i = 0; i < 16; i++)
		pool__copy_frame_nofence(p, 100 + i, 300 + i);
	pool__copy_fence();
	for (frame_t i = 0; i < 16; i++)
		CHECK(frame_has(p, 100 + i, 300 + i));
	pool__copy_frames(p, 1024, 512, 512);
	for (frame_t i = 0; i < 512; i++)
		CHECK(frame_has(p, 1024 + i, 512 + i));
	CHECK(frame_has(p, 1023, 1023) && frame_has(p, 1536, 1536)); /* neighbours untouched */
}

/* Each copy implementation the CPU has, through a 4 MiB pool created with it forced. */
static void test_each_copy_impl(void)
{
	static const char *const impls[] = { "avx512", "avx2", "sse2", "memcpy" };
	char err[512];

	for (unsigned i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		struct pool_config cfg = { .size = 4 * MiB, .prefault = true };
		struct pool p;

		setenv("VMC_POOL_COPY", impls[i], 1);
		CHECKF(pool__create(&p, &cfg, err, sizeof(err)) == 0, "%s", err);
		if (!strcmp(p.copy_impl, impls[i])) {
			for (frame_t f = 0; f < p.nr_frames; f++)
				fill_frame(&p, f);
			for (frame_t f = 0; f < 64; f++)
				pool__copy_frame(&p, 512 + f * 3, f * 7);
			for (frame_t f = 0; f < 64; f++)
				CHECKF(frame_has(&p, 512 + f * 3, f * 7), "impl %s", impls[i]);
			printf("copy implementation %s: ok\n", impls[i]);
		}
		pool__destroy(&p);
	}
	unsetenv("VMC_POOL_COPY");
}

/* Split block 1 by punching one 4 KiB hole into it, refault: detection must see it. */
static void test_split_detected(struct pool *p)
{
	uint32_t before = p->nr_huge_blocks;

	tu_case = "split";
	CHECK(p->block_huge[1]);
	CHECK(fallocate(p->block_fd[1], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 4096) == 0);
	CHECK(madvise(p->base + 2 * MiB, 2 * MiB, 23 /* MADV_POPULATE_WRITE */) == 0);
	pool__refresh_huge(p);
	CHECKF(!p->block_huge[1], "block 1 still reported huge after a hole was punched into it");
	CHECK_EQ(p->nr_huge_blocks, before - 1);
	CHECK_EQ(p->nr_huge_blocks, smaps_pmd_blocks(p));
	printf("split block 1: detected, %u of %u blocks huge\n", p->nr_huge_blocks, p->nr_blocks);
}

/* A user-given tmpfs with huge=never: 4K backing, no huge blocks, an explanatory note. */
static void test_path_huge_never(void)
{
	char dir[] = "/tmp/vmc-test-pool.XXXXXX", err[512];
	struct pool_config cfg = { .size = 8 * MiB, .prefault = true, .path = dir };
	struct pool p;

	tu_case = "path-huge-never";
	CHECK(mkdtemp(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "huge=never,size=16m")) {
		printf("path test skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		rmdir(dir);
		return;
	}
	CHECKF(pool__create(&p, &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(p.backing, POOL_BACKING_4K);
	CHECK(strstr(p.note, "huge=never"));
	CHECK_EQ(p.nr_huge_blocks, 0);
	fill_frame(&p, 5);
	CHECK(frame_has(&p, 5, 5));
	printf("pool on %s: backing %s, note: %s\n", dir, pool_backing__name(p.backing), p.note);
	pool__destroy(&p);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* A user-given tmpfs too small for the pool: refused up front, naming what is missing. */
static void test_path_too_small(void)
{
	char dir[] = "/tmp/vmc-test-pool.XXXXXX", err[512];
	struct pool_config cfg = { .size = 16 * MiB, .prefault = true, .path = dir };
	struct pool p;

	tu_case = "path-too-small";
	CHECK(mkdtemp(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "huge=always,size=6m")) {
		printf("path test skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
		rmdir(dir);
		return;
	}
	CHECK_EQ(pool__create(&p, &cfg, err, sizeof(err)), -ENOSPC);
	CHECKF(strstr(err, "6 MiB free") && strstr(err, "needs 16 MiB") && strstr(err, "10 MiB missing"), "%s", err);
	printf("too small: %s\n", err);
	cfg.prefault = false; /* --no-prefault must not hide it either */
	CHECK_EQ(pool__create(&p, &cfg, err, sizeof(err)), -ENOSPC);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

/* Elastic pool: blocks beyond the start size are absent (PROT_NONE) until added; an added block
 * is its own file, faulted in, a huge page; dropping it gives its memory back. */
static void test_add_drop(void)
{
	struct pool_config cfg = { .size = 8 * MiB, .capacity = 16 * MiB, .prefault = true };
	unsigned char vec[1];
	struct pool p;
	char err[512];

	tu_case = "add-drop";
	CHECKF(pool__create(&p, &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK_EQ(p.nr_blocks, 8);
	CHECK_EQ(p.nr_present, 4);
	CHECK_EQ(pool__present_bytes(&p), 8 * MiB);
	for (uint32_t b = 0; b < 4; b++)
		for (uint32_t c = b + 1; c < 4; c++)
			CHECK(p.block_fd[b] >= 0 && p.block_fd[b] != p.block_fd[c]);
	CHECK(!pool__block_present(&p, 6) && p.block_fd[6] == -1);
	/* absent: reserved PROT_NONE, nothing resident */
	CHECK(mincore(p.base + 6 * 2 * MiB, 4096, vec) == 0 && !(vec[0] & 1));
	CHECKF(pool__block_add(&p, 6, true, err, sizeof(err)) == 0, "%s", err);
	CHECK(pool__block_present(&p, 6));
	CHECK_EQ(p.nr_present, 5);
	CHECK(pool__block_add(&p, 6, true, err, sizeof(err)) == -EINVAL);
	fill_frame(&p, 6 * 512 + 7);
	pool__copy_frame(&p, 2, 6 * 512 + 7);
	CHECK(frame_has(&p, 2, 6 * 512 + 7));
	if (p.backing == POOL_BACKING_THP && p.huge_exact)
		CHECK(p.block_huge[6]);
	pool__block_drop(&p, 6);
	CHECK(!pool__block_present(&p, 6) && p.block_fd[6] == -1 && !p.block_huge[6]);
	CHECK_EQ(p.nr_present, 4);
	CHECK(mincore(p.base + 6 * 2 * MiB, 4096, vec) == 0 && !(vec[0] & 1));
	CHECK(frame_has(&p, 2, 6 * 512 + 7)); /* what was copied out stays */
	printf("add/drop: block 6 added (%s), dropped; %u present\n", p.block_huge[6] ? "huge" : "checked", p.nr_present);
	pool__destroy(&p);
}

/* Not root: no mount, so a memfd; pagemap PFNs hidden, so the smaps count. Runs in a child. */
static int fallback_child(void)
{
	struct pool_config cfg = { .size = 8 * MiB, .prefault = true };
	struct pool p;
	char err[512];

	if (setgid(65534) || setuid(65534)) {
		printf("fallback test skipped: cannot drop to uid 65534 (%s)\n", strerror(errno));
		return SKIP;
	}
	tu_case = "fallback";
	CHECKF(pool__create(&p, &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK(strstr(p.note, "could not mount"));
	CHECK(strstr(p.note, "--pool-path"));
	CHECK(!p.huge_exact);
	CHECK_EQ(p.nr_huge_blocks, smaps_pmd_blocks(&p));
	fill_frame(&p, 3);
	pool__copy_frame(&p, 1000, 3);
	CHECK(frame_has(&p, 1000, 3));
	printf("non-root fallback: backing %s, %u/%u huge\n  note: %s\n", pool_backing__name(p.backing),
	       p.nr_huge_blocks, p.nr_blocks, p.note);
	pool__destroy(&p);
	return 0;
}

static void test_fallback(void)
{
	pid_t pid;
	int status;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(fallback_child());
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECKF(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == SKIP),
	       "fallback child status %#x", status);
}

int main(int argc, char **argv)
{
	struct pool_config cfg = { .size = 64 * MiB, .prefault = true };
	struct pool p;
	char err[512];
	int skip_reason = 0;

	tu_seed = tu_base_seed(argc, argv, 0x9001);
	setvbuf(stdout, NULL, _IOLBF, 0);
	{
		struct pool_config bad = { .size = 3 * MiB };

		CHECK(pool__create(&p, &bad, err, sizeof(err)) == -EINVAL);
		CHECK(strstr(err, "multiple of 2 MiB"));
	}

	tu_case = "create";
	CHECKF(pool__create(&p, &cfg, err, sizeof(err)) == 0, "%s", err);
	CHECK(((uintptr_t)p.base & (2 * MiB - 1)) == 0);
	CHECK_EQ(p.nr_frames, 64 * MiB / 4096);
	CHECK_EQ(p.nr_blocks, 32);
	printf("pool 64 MiB: backing %s, %u/%u blocks huge (%s), prefault %.2f ms, refresh %.3f ms, copy %s\n"
	       "  note: %s\n", pool_backing__name(p.backing), p.nr_huge_blocks, p.nr_blocks,
	       p.huge_exact ? "pagemap+kpageflags" : "smaps guess", p.prefault_ns / 1e6, p.refresh_ns / 1e6,
	       p.copy_impl, p.note);
	/* Nothing may be left behind: the mount is detached and its directory gone. */
	CHECK(p.mount_dir[0] == '\0' || access(p.mount_dir, F_OK) != 0);

	test_copies(&p);
	test_each_copy_impl();

	if (p.backing == POOL_BACKING_THP) {
		/* The detection agrees with the kernel's own count of PMD-mapped pool memory. */
		CHECK_EQ(p.nr_huge_blocks, smaps_pmd_blocks(&p));
		if (p.nr_huge_blocks == p.nr_blocks) {
			CHECK(p.huge_exact);
			test_split_detected(&p);
		} else {
			printf("SKIP THP checks: the host gave %u of %u 2 MiB pages (fragmented or THP off)\n",
			       p.nr_huge_blocks, p.nr_blocks);
			skip_reason = 1;
		}
	} else {
		printf("SKIP THP checks: pool backing is %s: %s\n", pool_backing__name(p.backing), p.note);
		skip_reason = 1;
	}
	pool__destroy(&p);

	test_add_drop();
	if (geteuid() == 0) {
		test_path_huge_never();
		test_path_too_small();
		test_fallback();
	}
	if (skip_reason)
		return SKIP;
	printf("test_pool: ok\n");
	return 0;
}
