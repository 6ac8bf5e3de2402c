/* defrag_baseline.c: memcpy and MADV_COLLAPSE reference measurements for bench defrag. */
#include "vmm/bench/defrag_baseline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#include "mm/util.h"

#define PAGE 4096UL
#define HPAGE (2UL << 20)

static void shuffle(uint32_t *v, uint32_t n, uint64_t *seed)
{
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = mm__splitmix64(seed) % (i + 1);
		uint32_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

int baseline__memcpy_4k(size_t bytes, uint64_t seed, double *secs, char *err, size_t errlen)
{
	uint32_t n = bytes / PAGE;
	uint32_t *src_order = NULL, *dst_order = NULL;
	uint8_t *src = MAP_FAILED, *dst = MAP_FAILED;
	int ret = -ENOMEM;

	src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	dst = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	src_order = malloc(sizeof(*src_order) * n);
	dst_order = malloc(sizeof(*dst_order) * n);
	if (src == MAP_FAILED || dst == MAP_FAILED || !src_order || !dst_order) {
		snprintf(err, errlen, "memcpy baseline: cannot allocate 2 x %zu bytes", bytes);
		goto out;
	}
	memset(src, 0x5a, bytes);
	memset(dst, 0, bytes);
	for (uint32_t i = 0; i < n; i++)
		src_order[i] = dst_order[i] = i;
	shuffle(src_order, n, &seed);

	double t0 = (mm__now_ns() / 1e9);
	for (uint32_t i = 0; i < n; i++)
		memcpy(dst + (size_t)dst_order[i] * PAGE, src + (size_t)src_order[i] * PAGE, PAGE);
	*secs = (mm__now_ns() / 1e9) - t0;
	ret = 0;
out:
	free(src_order);
	free(dst_order);
	if (src != MAP_FAILED)
		munmap(src, bytes);
	if (dst != MAP_FAILED)
		munmap(dst, bytes);
	return ret;
}

static uint64_t anon_huge_bytes(void)
{
	FILE *f = fopen("/proc/self/smaps_rollup", "r");
	char line[256];
	uint64_t kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %lu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

int baseline__madv_collapse(size_t bytes, double *secs, uint64_t *collapsed_bytes, char *err,
			    size_t errlen)
{
	size_t len = bytes + HPAGE;
	uint8_t *raw, *p;
	int ret = 0;

	raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		snprintf(err, errlen, "MADV_COLLAPSE baseline: mmap %zu bytes: %s", len, strerror(errno));
		return -errno;
	}
	p = (uint8_t *)(((uintptr_t)raw + HPAGE - 1) & ~(HPAGE - 1));
	/* Fault in with 4 KiB pages only, then allow THP again so MADV_COLLAPSE may act. */
	if (madvise(p, bytes, MADV_NOHUGEPAGE) != 0) {
		ret = -errno;
		snprintf(err, errlen, "MADV_COLLAPSE baseline: MADV_NOHUGEPAGE: %s", strerror(errno));
		goto out;
	}
	for (size_t off = 0; off < bytes; off += PAGE)
		p[off] = (uint8_t)(off >> 12);
	if (madvise(p, bytes, MADV_HUGEPAGE) != 0) {
		ret = -errno;
		snprintf(err, errlen, "MADV_COLLAPSE baseline: MADV_HUGEPAGE: %s", strerror(errno));
		goto out;
	}
	uint64_t before = anon_huge_bytes();
	double t0 = (mm__now_ns() / 1e9);
	if (madvise(p, bytes, MADV_COLLAPSE) != 0) {
		ret = -errno;
		snprintf(err, errlen, "MADV_COLLAPSE baseline: madvise(MADV_COLLAPSE) failed: %s%s",
			 strerror(errno), errno == EINVAL ? " (needs Linux 6.1+)" : "");
		goto out;
	}
	*secs = (mm__now_ns() / 1e9) - t0;
	*collapsed_bytes = anon_huge_bytes() - before;
out:
	munmap(raw, len);
	return ret;
}
