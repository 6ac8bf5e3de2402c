/* buddy.h: binary buddy allocator over pool frames, with pageblock migratetypes (Linux-style). */
#ifndef VMC_MM_BUDDY_H
#define VMC_MM_BUDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MM_PAGE_SHIFT 12
#define MM_PAGE_SIZE (1UL << MM_PAGE_SHIFT)
#define MM_MAX_ORDER 11 /* orders 0..10, like Linux's MAX_ORDER 11 */
#define MM_PAGEBLOCK_ORDER 9 /* 2 MiB */
#define MM_PAGEBLOCK_FRAMES (1U << MM_PAGEBLOCK_ORDER)
#define MM_HPAGE_ORDER MM_PAGEBLOCK_ORDER

typedef uint32_t frame_t;
#define FRAME_NONE UINT32_MAX

enum migratetype {
	MIGRATE_UNMOVABLE,
	MIGRATE_MOVABLE,
	MIGRATE_RECLAIMABLE,
	MIGRATE_TYPES
};

extern const char *const migratetype_names[MIGRATE_TYPES];

struct free_area {
	frame_t head[MIGRATE_TYPES]; /* doubly linked through buddy->next/prev */
	uint64_t nr_free;            /* free blocks of this order, all types */
	uint64_t nr_free_mt[MIGRATE_TYPES];
};

/*
 * Per-frame metadata is kept in flat arrays indexed by frame number: this keeps
 * the allocator at about 9 bytes per 4 KiB frame and makes every operation
 * O(MM_MAX_ORDER).
 */
struct buddy {
	uint32_t nr_frames;         /* need not be a multiple of any order */
	uint32_t nr_pageblocks;
	uint64_t nr_free_frames;
	struct free_area area[MM_MAX_ORDER];
	frame_t *next, *prev;       /* free-list links, valid for free block heads */
	uint8_t *frame_order;       /* BUDDY_FREE_HEAD | order for free heads, 0 otherwise */
	uint8_t *pageblock_mt;      /* enum migratetype per pageblock */
};

#define BUDDY_FREE_HEAD 0x80

/* All frames start free, every pageblock MIGRATE_MOVABLE. Returns 0 or -errno. */
int buddy__init(struct buddy *b, uint32_t nr_frames);
void buddy__exit(struct buddy *b);
/* Extend the frame space to nr_frames (> current): the new frames are allocated (not on any
 * free list, MIGRATE_MOVABLE pageblocks) until someone frees them. 0 or -ENOMEM. */
int buddy__grow(struct buddy *b, uint32_t nr_frames);

/* Allocate a block of 2^order frames, falling back to other types like __rmqueue_fallback. */
frame_t buddy__alloc(struct buddy *b, unsigned order, enum migratetype mt);
/* Free a block previously allocated with the same order; merges with free buddies. */
void buddy__free(struct buddy *b, frame_t f, unsigned order);

/* Take the specific free frame f (order 0) out of whatever free block holds it,
 * splitting that block. Returns 0, or -ENOENT if f is not free. */
int buddy__take(struct buddy *b, frame_t f);
/* Take a specific free, naturally aligned block of 2^order frames. 0 or -ENOENT. */
int buddy__take_block(struct buddy *b, frame_t f, unsigned order);

bool buddy__frame_is_free(const struct buddy *b, frame_t f);
/* Head frame and order of the free block that contains f; false if f is allocated. */
bool buddy__free_block_of(const struct buddy *b, frame_t f, frame_t *head, unsigned *order);

enum migratetype buddy__pageblock_mt(const struct buddy *b, frame_t f);
void buddy__set_pageblock_mt(struct buddy *b, frame_t f, enum migratetype mt);

/* Bytes of metadata held for nr_frames frames. */
size_t buddy__metadata_bytes(uint32_t nr_frames);

/* --- statistics in the kernel's formats (mm/vmstat.c) --- */

struct contig_page_info {
	uint64_t free_pages;
	uint64_t free_blocks_total;
	uint64_t free_blocks_suitable;
};

void buddy__contig_page_info(const struct buddy *b, unsigned order, struct contig_page_info *info);
/* __fragmentation_index(): -1000 (enough), 0..1000 (0 = lack of memory, 1000 = fragmentation). */
int fragmentation_index(const struct contig_page_info *info, unsigned order);
/* unusable_free_index(): 0..1000, share of free memory unusable for this order. */
int unusable_free_index(const struct contig_page_info *info, unsigned order);
/* extfrag_for_order(): 0..100, used for the proactive compaction score. */
unsigned extfrag_for_order(const struct buddy *b, unsigned order);
/* Proactive compaction fragmentation score (single zone): extfrag_for_order(HPAGE_ORDER). */
unsigned buddy__fragmentation_score(const struct buddy *b);

#define EXTFRAG_THRESHOLD_DEFAULT 500

/* Nr of pageblocks of each migratetype (pagetypeinfo's second table). */
void buddy__pageblock_counts(const struct buddy *b, uint64_t counts[MIGRATE_TYPES]);

/* Exhaustive consistency check (tests, debug). Returns 0 or a negative code and
 * writes a description into why. */
int buddy__check(const struct buddy *b, char *why, size_t whylen);

#endif
