/* window.h: the guest window: host mappings GPA -> pool frame that KVM's memslot points at. */
#ifndef VMC_MM_WINDOW_H
#define VMC_MM_WINDOW_H

#include "mm/gpamap.h"

struct window {
	uint8_t *base;      /* host VA of GPA 0, 2 MiB aligned so HVA and GPA agree in low 21 bits */
	uint64_t size;      /* guest RAM bytes */
	const int *block_fd;  /* the pool's per-block files (pool.block_fd): frame f is page f % 512
			       * of file block_fd[f / 512] */
	uint64_t nr_vmas;   /* mappings the window currently consists of (= gpamap runs) */
	/* --- private to window.c --- */
	uint32_t nr_gpfns;
	uint64_t *vma_start;     /* bit g: a mapping starts at gpfn g (nr_vmas = popcount) */
	uint8_t *reserve_base;   /* the PROT_NONE reservation, with guard gaps around base */
	uint64_t reserve_size;
	bool hugepage_advice;    /* madvise(MADV_HUGEPAGE) every mapping (default true); set it
				  * before map_all and leave it: mixed flags stop VMAs merging */
	uint64_t fake_max_map_count; /* tests: non-zero replaces vm.max_map_count in map_all */
	bool populate_remaps;    /* MAP_POPULATE on remaps (the guest's next touch faults less, the
				  * remap costs more: measured by bench_defrag_mm --populate-remaps) */
};

/* Reserve the window (PROT_NONE) without mapping anything. */
int window__create(struct window *w, uint64_t size, const int *block_fd, char *err, size_t errlen);
void window__destroy(struct window *w);

/* Map every backed GPA from the map, one mmap per run. Checks the VMA budget first. */
int window__map_all(struct window *w, const struct gpamap *m, char *err, size_t errlen);

/*
 * After gpamap__rebind(g): map gpfn g at its new frame. Keeps nr_vmas exact. 0 or -errno;
 * if the mmap fails (-ENOMEM: vm.max_map_count reached) the old mapping normally stays and
 * the caller should rebind g back. A region rebuilt in order by 4K remaps stays PTE-mapped
 * where it was already faulted: finish with window__remap_2m to get a PMD (and KVM 2M) entry.
 */
int window__remap_4k(struct window *w, const struct gpamap *m, gpfn_t g);
/* After the whole region was rebound in order onto one aligned block: one 2 MiB mapping.
 * 0, -EINVAL if the region is not in order on an aligned block, or -errno from mmap. */
int window__remap_2m(struct window *w, const struct gpamap *m, uint32_t region);

/* Mappings the window needs for map m (runs contiguous in GPA and frame within one pool block,
 * plus unbacked holes): what map_all checks. */
uint64_t window__vmas_needed(const struct gpamap *m);
/* Host VMAs inside the window, counted from /proc/self/maps (slow: tests, debugging). */
int64_t window__count_host_vmas(const struct window *w);

static inline void *window__gpa_ptr(const struct window *w, uint64_t gpa) { return w->base + gpa; }

/* --- VMA budget (vm.max_map_count) --- */
struct vma_budget {
	uint64_t max_map_count;  /* /proc/sys/vm/max_map_count */
	uint64_t in_use;         /* lines of /proc/self/maps */
};
#define VMA_BUDGET_HEADROOM 1000 /* mappings left for the rest of the process */

int vma_budget__read(struct vma_budget *vb);
/* 0 if `needed` more VMAs fit with headroom; else -ENOMEM and a message naming the
 * needed and available counts and the sysctl to raise. */
int vma_budget__check(uint64_t needed, char *err, size_t errlen);
/* The same against given figures (tests, or a caller that already read them). */
int vma_budget__check_with(const struct vma_budget *vb, uint64_t needed, uint64_t headroom,
			   char *err, size_t errlen);
/* VMAs still available under the budget: max_map_count - in_use - headroom, or 0. */
uint64_t vma_budget__available(const struct vma_budget *vb, uint64_t headroom);

#endif
