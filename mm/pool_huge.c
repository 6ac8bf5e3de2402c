/* pool_huge.c: which pool blocks the host backs with one huge page: pagemap + kpageflags, else a guess from smaps. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/pool.h"
#include "mm/util.h"

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_COMPOUND_HEAD 15
#define KPF_COMPOUND_TAIL 16
#define KPF_HUGE 17
#define KPF_THP 22
#define PM_PRESENT (1ULL << 63)
#define PM_PFN_MASK ((1ULL << 55) - 1)

#define REFRESH_CHUNK_BLOCKS 64

static bool block_is_huge(int kpf_fd, uint64_t e0, uint64_t e256, int *eperm)
{
	uint64_t pfn0 = e0 & PM_PFN_MASK, pfn256 = e256 & PM_PFN_MASK, fl0, fl256;
	const uint64_t huge = (1ULL << KPF_THP) | (1ULL << KPF_HUGE);

	if (!(e0 & PM_PRESENT) || !(e256 & PM_PRESENT))
		return false;
	if (pfn0 == 0) {
		*eperm = 1; /* PFNs hidden: no CAP_SYS_ADMIN */
		return false;
	}
	if (pfn0 & (MM_PAGEBLOCK_FRAMES - 1) || pfn256 != pfn0 + MM_PAGEBLOCK_FRAMES / 2)
		return false;
	if (pread(kpf_fd, &fl0, sizeof(fl0), (off_t)(pfn0 * sizeof(uint64_t))) != sizeof(fl0) ||
	    pread(kpf_fd, &fl256, sizeof(fl256), (off_t)(pfn256 * sizeof(uint64_t))) != sizeof(fl256))
		return false;
	/*
	 * Page 0 heads a folio (or is a tail of an even larger one) and page 256 is a
	 * tail: folios are naturally aligned, so the folio holding page 0 covers at least
	 * the whole 2 MiB block, and its PFNs are 512-aligned: the host can PMD-map it.
	 */
	return (fl0 & huge) && (fl256 & huge) && (fl256 & (1ULL << KPF_COMPOUND_TAIL)) &&
	       (fl0 & ((1ULL << KPF_COMPOUND_HEAD) | (1ULL << KPF_COMPOUND_TAIL)));
}

static int refresh_from_kpageflags(struct pool *p)
{
	const size_t per_chunk = (size_t)REFRESH_CHUNK_BLOCKS * MM_PAGEBLOCK_FRAMES;
	uint64_t *pm = NULL;
	int pm_fd, kpf_fd, eperm = 0, ret = 0;

	pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0)
		return -errno;
	kpf_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (kpf_fd < 0) {
		ret = -errno;
		goto out;
	}
	pm = malloc(per_chunk * sizeof(uint64_t));
	if (!pm) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t blk = 0; blk < p->nr_blocks; blk += REFRESH_CHUNK_BLOCKS) {
		uint32_t n = p->nr_blocks - blk < REFRESH_CHUNK_BLOCKS ? p->nr_blocks - blk : REFRESH_CHUNK_BLOCKS;
		size_t bytes = (size_t)n * MM_PAGEBLOCK_FRAMES * sizeof(uint64_t);
		uint64_t vpn = ((uintptr_t)p->base >> MM_PAGE_SHIFT) + (uint64_t)blk * MM_PAGEBLOCK_FRAMES;

		if (pread(pm_fd, pm, bytes, (off_t)(vpn * sizeof(uint64_t))) != (ssize_t)bytes) {
			ret = -EIO;
			goto out;
		}
		for (uint32_t i = 0; i < n; i++) {
			const uint64_t *e = pm + (size_t)i * MM_PAGEBLOCK_FRAMES;

			p->block_huge[blk + i] = block_is_huge(kpf_fd, e[0], e[MM_PAGEBLOCK_FRAMES / 2], &eperm);
			if (eperm) {
				ret = -EPERM;
				goto out;
			}
		}
	}
out:
	free(pm);
	if (kpf_fd >= 0)
		close(kpf_fd);
	close(pm_fd);
	return ret;
}

/* Fallback: /proc/self/smaps gives only a count of PMD-mapped (or hugetlb) kB in the direct map. */
static int refresh_from_smaps(struct pool *p)
{
	uintptr_t lo = (uintptr_t)p->base, hi = lo + p->size;
	char line[512];
	bool inside = false;
	uint64_t kb = 0, n;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, v;

		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = start >= lo && end <= hi;
			continue;
		}
		if (!inside)
			continue;
		if (sscanf(line, "ShmemPmdMapped: %lu kB", &v) == 1 || sscanf(line, "FilePmdMapped: %lu kB", &v) == 1 ||
		    sscanf(line, "Shared_Hugetlb: %lu kB", &v) == 1 || sscanf(line, "Private_Hugetlb: %lu kB", &v) == 1)
			kb += v;
	}
	fclose(f);
	n = kb / (POOL_BLOCK_SIZE >> 10);
	if (n > p->nr_blocks)
		n = p->nr_blocks;
	memset(p->block_huge, 0, p->nr_blocks);
	for (uint32_t b = 0; b < p->nr_blocks && n; b++)
		if (p->block_present[b]) {
			p->block_huge[b] = 1;
			n--;
		}
	return 0;
}

int pool__refresh_huge(struct pool *p)
{
	uint64_t t0 = mm__now_ns();
	uint32_t n = 0;
	int ret;

	ret = refresh_from_kpageflags(p);
	p->huge_exact = ret == 0;
	if (ret < 0) {
		int why = ret;

		ret = refresh_from_smaps(p);
		if (!strstr(p->note, "optimistically"))
			pool__note_add(p, "%s/proc/self/pagemap+/proc/kpageflags unreadable (%s): which blocks are huge "
				    "is guessed from the smaps PMD-mapped count, marking the first blocks "
				    "optimistically", p->note[0] ? "; " : "", strerror(-why));
	}
	for (uint32_t b = 0; b < p->nr_blocks; b++)
		n += p->block_huge[b];
	p->nr_huge_blocks = n;
	p->refresh_ns = mm__now_ns() - t0;
	return ret;
}

void pool__refresh_block(struct pool *p, uint32_t b)
{
	uint64_t vpn = ((uintptr_t)p->base >> MM_PAGE_SHIFT) + (uint64_t)b * MM_PAGEBLOCK_FRAMES, e0, e256;
	bool huge = false;
	int eperm = 0, pm_fd, kpf_fd;

	if (!pool__block_present(p, b))
		return;
	if (!p->huge_exact) {
		huge = p->backing != POOL_BACKING_4K; /* the optimistic guess, as refresh_from_smaps */
	} else {
		pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		kpf_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
		if (pm_fd >= 0 && kpf_fd >= 0 &&
		    pread(pm_fd, &e0, sizeof(e0), (off_t)(vpn * sizeof(uint64_t))) == sizeof(e0) &&
		    pread(pm_fd, &e256, sizeof(e256), (off_t)((vpn + MM_PAGEBLOCK_FRAMES / 2) * sizeof(uint64_t))) ==
			    sizeof(e256))
			huge = block_is_huge(kpf_fd, e0, e256, &eperm);
		if (pm_fd >= 0)
			close(pm_fd);
		if (kpf_fd >= 0)
			close(kpf_fd);
	}
	p->nr_huge_blocks += (uint32_t)huge - p->block_huge[b];
	p->block_huge[b] = huge;
}
