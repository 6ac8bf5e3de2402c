/* window.h: the guest window: host mappings GPA -> pool frame that KVM's memslot points at. */
#ifndef VMC_MM_WINDOW_H
#define VMC_MM_WINDOW_H

#include "mm/gpamap.h"

struct window {
	uint8_t *base;      /* host VA of GPA 0, 2 MiB aligned so HVA and GPA agree in low 21 bits */
	uint64_t size;      /* guest RAM bytes */
	int pool_fd;
	uint64_t nr_vmas;   /* mappings the window currently consists of (= gpamap runs) */
};

/* Reserve the window (PROT_NONE) without mapping anything. */
int window__create(struct window *w, uint64_t size, int pool_fd, char *err, size_t errlen);
void window__destroy(struct window *w);

/* Map every backed GPA from the map, one mmap per run. Checks the VMA budget first. */
int window__map_all(struct window *w, const struct gpamap *m, char *err, size_t errlen);

/* After gpamap__rebind(g): map gpfn g at its new frame. Keeps nr_vmas exact. */
int window__remap_4k(struct window *w, const struct gpamap *m, gpfn_t g);
/* After the whole region was rebound in order onto one aligned block: one 2 MiB mapping. */
int window__remap_2m(struct window *w, const struct gpamap *m, uint32_t region);

static inline void *window__gpa_ptr(const struct window *w, uint64_t gpa) { return w->base + gpa; }

/* --- VMA budget (vm.max_map_count) --- */
struct vma_budget {
	uint64_t max_map_count;  /* /proc/sys/vm/max_map_count */
	uint64_t in_use;         /* lines of /proc/self/maps */
};
int vma_budget__read(struct vma_budget *vb);
/* 0 if `needed` more VMAs fit with headroom; else -ENOMEM and a message naming the
 * needed and available counts and the sysctl to raise. */
int vma_budget__check(uint64_t needed, char *err, size_t errlen);

#endif
