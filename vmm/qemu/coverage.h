/* coverage.h: how much of a QEMU RAM block is on 2 MiB host pages: smaps totals and a per-region map from pagemap + kpageflags. */
#ifndef VMC_VMM_QEMU_COVERAGE_H
#define VMC_VMM_QEMU_COVERAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define REGION_2M (2ULL << 20)
#define REGION_PAGES 512

/* smaps totals over the VMAs inside [start, end). */
struct smaps_cover {
	uint64_t size, rss;
	uint64_t huge;            /* AnonHugePages + ShmemPmdMapped + FilePmdMapped + *_Hugetlb */
	uint64_t hugetlb;         /* Shared_Hugetlb + Private_Hugetlb */
	uint64_t kernel_page_size;
	unsigned vmas;
};
/* Sum an smaps stream over [start, end); 0 or -ENOENT when no VMA lies there. */
int smaps_cover__parse(FILE *smaps, uint64_t start, uint64_t end, struct smaps_cover *c);
int smaps_cover__read(pid_t pid, uint64_t start, uint64_t end, struct smaps_cover *c,
		      char *err, size_t errlen);
double smaps_cover__share(const struct smaps_cover *c);   /* huge / size */

enum region_state {
	REGION_EMPTY,      /* no page present */
	REGION_SMALL,      /* present on 4 KiB pages or small folios */
	REGION_HUGE,       /* one aligned, physically contiguous 2 MiB (THP or hugetlb) */
	REGION_UNKNOWN,    /* present, but PFNs are hidden (not root) */
};
extern const char region_state_chars[];   /* ".4HU" */

/* Open pagemap and kpageflags once, read many regions. */
struct page_scanner {
	int pagemap_fd, kpageflags_fd;
	bool pfns_visible;
	uint64_t buf[REGION_PAGES];
};
int page_scanner__open(struct page_scanner *s, pid_t pid, char *err, size_t errlen);
/* One 2 MiB-aligned region at host address va in the target. */
int page_scanner__region(struct page_scanner *s, uint64_t va, enum region_state *state,
			 unsigned *present);
void page_scanner__close(struct page_scanner *s);

/*
 * The pure classifier: pagemap entries of one region and the kpageflags of its
 * first page (flags_valid false when kpageflags could not be read).
 */
enum region_state region__classify(const uint64_t *pagemap, unsigned n, uint64_t first_flags,
				   bool flags_valid, unsigned *present);

/* Per-region map of [start, end): the 2 MiB-aligned regions inside it. */
struct region_map {
	uint64_t first;           /* address of region 0 */
	size_t nr;
	uint8_t *state;           /* enum region_state per region */
	uint16_t *present;        /* present 4 KiB pages per region */
	size_t count[4];          /* regions per state */
	bool pfns_visible;
};
int region_map__scan(pid_t pid, uint64_t start, uint64_t end, struct region_map *m,
		     char *err, size_t errlen);
/* The map as text: one char per region (region_state_chars), width per line. */
void region_map__print(const struct region_map *m, FILE *f, unsigned width);
void region_map__free(struct region_map *m);

#endif
