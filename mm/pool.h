/* pool.h: the frame pool: one file per 2 MiB block on a huge= tmpfs (or hugetlbfs), the blocks mapped side by side as the VMM's direct map. */
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
#define POOL_BLOCK_SIZE (1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER))
const char *pool_backing__name(enum pool_backing b);

struct pool_config {
	uint64_t size;          /* bytes present at start, multiple of 2 MiB */
	uint64_t capacity;      /* bytes of frame space, >= size (0: size): blocks beyond size start
				 * absent and can be added later (pool__block_add: borrowing) */
	const char *path;       /* NULL: private tmpfs mount; else a directory (tmpfs/hugetlbfs) */
	bool prefault;          /* touch every frame at start-up (default true) */
	unsigned prefault_threads; /* 0: one per online CPU (at most POOL_PREFAULT_THREADS_MAX) */
};

#define POOL_PREFAULT_THREADS_MAX 8

/* Copies one 4 KiB frame with non-temporal stores where the CPU has them; no fence. */
typedef void (*pool_copy_fn)(void *dst, const void *src);

struct pool {
	int dir_fd;               /* directory the block files are made in (O_TMPFILE); -1: memfds */
	int *block_fd;            /* per 2 MiB block: its own file, -1 while the block is absent */
	uint8_t *block_present;   /* per block: 1 if it has a file, mapped in the direct map */
	uint32_t nr_present;      /* blocks present */
	uint32_t nr_present_start;/* blocks present at create: [0, nr_present_start) */
	uint32_t files_made;      /* block files created so far (names for the non-O_TMPFILE path) */
	uint8_t *base;            /* direct map: frame f is base + f * 4096 (absent blocks PROT_NONE) */
	uint64_t size;            /* bytes of frame space (capacity) */
	uint32_t nr_frames;       /* frames of frame space */
	uint32_t nr_blocks;       /* 2 MiB blocks of frame space */
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
/* Append to p->note (what was tried for THP, for users), keeping what is there. */
void pool__note_add(struct pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Bytes of the pool's blocks that are present (its resident size once faulted in). */
static inline uint64_t pool__present_bytes(const struct pool *p)
{
	return (uint64_t)p->nr_present << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER);
}
static inline bool pool__block_present(const struct pool *p, uint32_t b)
{
	return b < p->nr_blocks && p->block_present[b];
}
/* Make absent block b present: a new file, mapped at its place in the direct map; with fault,
 * faulted in and checked for being one host huge page. 0 or -errno (message in err). */
int pool__block_add(struct pool *p, uint32_t b, bool fault, char *err, size_t errlen);
/* Fault in present blocks blocks[0..n) on up to `threads` threads (0: one per CPU); rc[i] = 0 or
 * -errno per block. Then pool__refresh_block each. */
void pool__populate_blocks(struct pool *p, const uint32_t *blocks, uint32_t n, unsigned threads, int *rc);
/* Give present block b back to the host: its direct-map range becomes PROT_NONE and its file
 * is closed (its memory freed once nothing maps it). The caller makes sure nothing does. */
void pool__block_drop(struct pool *p, uint32_t b);
/* Re-read whether present block b is a host huge page. */
void pool__refresh_block(struct pool *p, uint32_t b);
/* Free bytes of the filesystem holding the pool (statfs), or -errno. */
int64_t pool__fs_free_bytes(const struct pool *p);
/* Fault the present blocks in (MADV_POPULATE_WRITE) on `threads` threads (0: one per CPU). */
int pool__prefault(struct pool *p, unsigned threads, char *err, size_t errlen);
/* Fault in the 2 MiB blocks b with sel[b] == value, through the direct map (so each becomes one
 * host huge page whatever maps it later). Safe while the guest runs. */
int pool__prefault_blocks(struct pool *p, const uint8_t *sel, uint8_t value, char *err, size_t errlen);
/* pool_huge.c: re-read which blocks are host huge pages (pagemap + kpageflags, else smaps). 0 or -errno. */
int pool__refresh_huge(struct pool *p);

static inline void *pool__frame_ptr(const struct pool *p, frame_t f)
{
	return p->base + ((uint64_t)f << MM_PAGE_SHIFT);
}
static inline bool pool__block_is_huge(const struct pool *p, frame_t f)
{
	return p->block_huge[f >> MM_PAGEBLOCK_ORDER];
}

/* pool_copy.c: choose p->copy by CPU features (VMC_POOL_COPY=avx512|avx2|sse2|memcpy forces one). */
void pool__select_copy(struct pool *p);
/* Copy one 4 KiB frame through the direct map (non-temporal where available), then fence. */
void pool__copy_frame(struct pool *p, frame_t dst, frame_t src);
/* Batch form: copy without fencing; call pool__copy_fence() once after the batch, before
 * anything else (the window remap, another thread) may look at the destination. */
void pool__copy_frame_nofence(struct pool *p, frame_t dst, frame_t src);
void pool__copy_fence(void);
/* Copy n consecutive frames [src, src + n) to [dst, dst + n), then fence. */
void pool__copy_frames(struct pool *p, frame_t dst, frame_t src, uint32_t n);

#endif
