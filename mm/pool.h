/* pool.h: the frame pool: one shmem file on a huge= tmpfs, mapped linearly as the VMM's direct map. */
#ifndef VMC_MM_POOL_H
#define VMC_MM_POOL_H

#include <limits.h>
#include "mm/buddy.h"

enum pool_backing {
	POOL_BACKING_THP,      /* shmem on tmpfs huge=always/advise: blocks are host 2 MiB pages */
	POOL_BACKING_HUGETLB,  /* file on a user-given hugetlbfs */
	POOL_BACKING_4K,       /* THP could not be had: every block is 4 KiB pages */
};

#define POOL_BACKING_COUNT (POOL_BACKING_4K + 1)
const char *pool_backing__name(enum pool_backing b);

struct pool_config {
	uint64_t size;          /* bytes, multiple of 2 MiB */
	const char *path;       /* NULL: private tmpfs mount; else a directory (tmpfs/hugetlbfs) */
	bool prefault;          /* touch every frame at start-up (default true) */
	unsigned prefault_threads; /* 0: one per online CPU (at most POOL_PREFAULT_THREADS_MAX) */
};

#define POOL_PREFAULT_THREADS_MAX 8

/* Copies one 4 KiB frame with non-temporal stores where the CPU has them; no fence. */
typedef void (*pool_copy_fn)(void *dst, const void *src);

struct pool {
	int fd;
	uint8_t *base;            /* direct map: frame f is base + f * 4096 */
	uint64_t size;
	uint32_t nr_frames;
	uint32_t nr_blocks;       /* 2 MiB blocks */
	enum pool_backing backing;
	char mount_dir[PATH_MAX]; /* where the private tmpfs was mounted; already detached and
				   * removed by pool__create (the fd keeps it alive), kept for messages */
	char note[1024];          /* what was tried for THP and how to fix it, for users */
	uint8_t *block_huge;      /* per 2 MiB block: 1 if the host backs it with one huge page */
	uint32_t nr_huge_blocks;
	bool huge_always;         /* the filesystem gives huge pages without MADV_HUGEPAGE (huge=always,
				   * force, hugetlbfs), so window mappings need no per-mapping madvise */
	bool huge_exact;          /* block_huge from pagemap+kpageflags (else a count from smaps) */
	uint64_t prefault_ns;     /* time pool__create spent prefaulting (0 if not asked) */
	unsigned prefault_threads;/* threads it used */
	uint64_t refresh_ns;      /* time the last pool__refresh_huge took */
	pool_copy_fn copy;        /* chosen at create by CPU features */
	const char *copy_impl;    /* "avx512", "avx2" or "sse2" */
};

int pool__create(struct pool *p, const struct pool_config *cfg, char *err, size_t errlen);
void pool__destroy(struct pool *p);
/* Fault the whole pool in (MADV_POPULATE_WRITE) on `threads` threads (0: one per CPU). */
int pool__prefault(struct pool *p, unsigned threads, char *err, size_t errlen);
/* Fault in the 2 MiB blocks b with sel[b] == value, through the direct map (so each becomes one
 * host huge page whatever maps it later). Safe while the guest runs. */
int pool__prefault_blocks(struct pool *p, const uint8_t *sel, uint8_t value, char *err, size_t errlen);
/* Re-read which blocks are host huge pages (pagemap + kpageflags, else smaps). 0 or -errno. */
int pool__refresh_huge(struct pool *p);

static inline void *pool__frame_ptr(const struct pool *p, frame_t f)
{
	return p->base + ((uint64_t)f << MM_PAGE_SHIFT);
}
static inline bool pool__block_is_huge(const struct pool *p, frame_t f)
{
	return p->block_huge[f >> MM_PAGEBLOCK_ORDER];
}

/* Copy one 4 KiB frame through the direct map (non-temporal where available), then fence. */
void pool__copy_frame(struct pool *p, frame_t dst, frame_t src);
/* Batch form: copy without fencing; call pool__copy_fence() once after the batch, before
 * anything else (the window remap, another thread) may look at the destination. */
void pool__copy_frame_nofence(struct pool *p, frame_t dst, frame_t src);
void pool__copy_fence(void);
/* Copy n consecutive frames [src, src + n) to [dst, dst + n), then fence. */
void pool__copy_frames(struct pool *p, frame_t dst, frame_t src, uint32_t n);

#endif
