/* buddy.c: binary buddy allocator over pool frames with pageblock migratetypes, after mm/page_alloc.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/table.h"
#include "mm/buddy.h"

/*
 * Invariants (checked by buddy__check):
 *  - a free block is [h, h + 2^o) with h aligned to 2^o and h + 2^o <= nr_frames;
 *    frame_order[h] == BUDDY_FREE_HEAD | o and every other frame has frame_order 0;
 *  - a free block sits on area[o].head[pageblock_mt[h >> MM_PAGEBLOCK_ORDER]], i.e.
 *    on the list of its first pageblock's migratetype (blocks of order >= 9 too);
 *  - no two free buddies of equal order are left unmerged.
 */

const char *const migratetype_names[MIGRATE_TYPES] = {
	[MIGRATE_UNMOVABLE] = "Unmovable",
	[MIGRATE_MOVABLE] = "Movable",
	[MIGRATE_RECLAIMABLE] = "Reclaimable",
};

/* Like the kernel's fallbacks[] table (mm/page_alloc.c). */
static const enum migratetype fallbacks[MIGRATE_TYPES][MIGRATE_TYPES - 1] = {
	[MIGRATE_UNMOVABLE] = { MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE },
	[MIGRATE_MOVABLE] = { MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE },
	[MIGRATE_RECLAIMABLE] = { MIGRATE_UNMOVABLE, MIGRATE_MOVABLE },
};

static inline enum migratetype block_mt(const struct buddy *b, frame_t h)
{
	return (enum migratetype)b->pageblock_mt[h >> MM_PAGEBLOCK_ORDER];
}

static inline bool is_free_head(const struct buddy *b, frame_t f, unsigned order)
{
	return f < b->nr_frames && b->frame_order[f] == (BUDDY_FREE_HEAD | order);
}

static void list_add(struct buddy *b, frame_t h, unsigned order, enum migratetype mt)
{
	struct free_area *area = &b->area[order];
	frame_t first = area->head[mt];

	b->next[h] = first;
	b->prev[h] = FRAME_NONE;
	if (first != FRAME_NONE)
		b->prev[first] = h;
	area->head[mt] = h;
	area->nr_free++;
	area->nr_free_mt[mt]++;
}

static void list_del(struct buddy *b, frame_t h, unsigned order, enum migratetype mt)
{
	struct free_area *area = &b->area[order];
	frame_t n = b->next[h], p = b->prev[h];

	if (p == FRAME_NONE)
		area->head[mt] = n;
	else
		b->next[p] = n;
	if (n != FRAME_NONE)
		b->prev[n] = p;
	b->next[h] = b->prev[h] = FRAME_NONE;
	area->nr_free--;
	area->nr_free_mt[mt]--;
}

/* Put [h, h + 2^order) on its free list without merging (the caller knows it cannot merge). */
static void add_free_block(struct buddy *b, frame_t h, unsigned order)
{
	b->frame_order[h] = BUDDY_FREE_HEAD | order;
	list_add(b, h, order, block_mt(b, h));
	b->nr_free_frames += 1U << order;
}

static void del_free_block(struct buddy *b, frame_t h, unsigned order)
{
	list_del(b, h, order, block_mt(b, h));
	b->frame_order[h] = 0;
	b->nr_free_frames -= 1U << order;
}

/* expand(): keep the low 2^low frames of [h, h + 2^high), give the upper halves back. */
static void expand(struct buddy *b, frame_t h, unsigned low, unsigned high)
{
	while (high > low) {
		high--;
		add_free_block(b, h + (1U << high), high);
	}
}

size_t buddy__metadata_bytes(uint32_t nr_frames)
{
	size_t nr_pageblocks = ((size_t)nr_frames + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER;

	return sizeof(struct buddy) + (size_t)nr_frames * (2 * sizeof(frame_t) + 1) + nr_pageblocks;
}

int buddy__init(struct buddy *b, uint32_t nr_frames)
{
	uint32_t f;

	memset(b, 0, sizeof(*b));
	if (nr_frames == 0 || nr_frames == FRAME_NONE)
		return -EINVAL;
	b->nr_frames = nr_frames;
	b->nr_pageblocks = (uint32_t)(((uint64_t)nr_frames + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER);
	b->next = mm_table__alloc((size_t)nr_frames * sizeof(frame_t));
	b->prev = mm_table__alloc((size_t)nr_frames * sizeof(frame_t));
	b->frame_order = mm_table__alloc(nr_frames);
	b->pageblock_mt = malloc(b->nr_pageblocks);
	if (!b->next || !b->prev || !b->frame_order || !b->pageblock_mt)
		goto err_free;
	memset(b->next, 0xff, (size_t)nr_frames * sizeof(frame_t));
	memset(b->prev, 0xff, (size_t)nr_frames * sizeof(frame_t));
	memset(b->pageblock_mt, MIGRATE_MOVABLE, b->nr_pageblocks);
	for (unsigned o = 0; o < MM_MAX_ORDER; o++)
		for (int mt = 0; mt < MIGRATE_TYPES; mt++)
			b->area[o].head[mt] = FRAME_NONE;

	/*
	 * Free the maximal aligned blocks below nr_frames (the largest first, then one
	 * block per set bit of the remainder). They are added from the top down to the
	 * list heads so that each list ends up in ascending frame order, as boot-time
	 * __free_pages_core() does by adding to the tail: low frames are handed out first.
	 */
	for (f = nr_frames; f > 0;) {
		unsigned o = (unsigned)__builtin_ctz(f);

		if (o > MM_MAX_ORDER - 1)
			o = MM_MAX_ORDER - 1;
		f -= 1U << o;
		add_free_block(b, f, o);
	}
	return 0;

err_free:
	buddy__exit(b);
	return -ENOMEM;
}

int buddy__grow(struct buddy *b, uint32_t nr_frames)
{
	uint32_t old = b->nr_frames, pbs = (uint32_t)(((uint64_t)nr_frames + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER);
	frame_t *next, *prev;
	uint8_t *order, *mt;

	if (nr_frames <= old || nr_frames == FRAME_NONE)
		return nr_frames == old ? 0 : -EINVAL;
	next = mm_table__realloc(b->next, (size_t)nr_frames * sizeof(frame_t));
	if (next)
		b->next = next;
	prev = mm_table__realloc(b->prev, (size_t)nr_frames * sizeof(frame_t));
	if (prev)
		b->prev = prev;
	order = mm_table__realloc(b->frame_order, nr_frames);
	if (order)
		b->frame_order = order;
	mt = realloc(b->pageblock_mt, pbs);
	if (mt)
		b->pageblock_mt = mt;
	if (!next || !prev || !order || !mt)
		return -ENOMEM;
	memset(b->next + old, 0xff, (size_t)(nr_frames - old) * sizeof(frame_t));
	memset(b->prev + old, 0xff, (size_t)(nr_frames - old) * sizeof(frame_t));
	memset(b->frame_order + old, 0, nr_frames - old);
	memset(b->pageblock_mt + b->nr_pageblocks, MIGRATE_MOVABLE, pbs - b->nr_pageblocks);
	b->nr_frames = nr_frames;
	b->nr_pageblocks = pbs;
	return 0;
}

void buddy__exit(struct buddy *b)
{
	mm_table__free(b->next);
	mm_table__free(b->prev);
	mm_table__free(b->frame_order);
	free(b->pageblock_mt);
	memset(b, 0, sizeof(*b));
}

/* Move the free blocks headed inside pageblock pb from list `from` to list `to`
 * (move_freepages_block()). Blocks are skipped by their size, allocated frames one by one. */
static void move_freepages_block(struct buddy *b, uint32_t pb, enum migratetype from, enum migratetype to)
{
	frame_t f = pb << MM_PAGEBLOCK_ORDER;
	frame_t end = f + MM_PAGEBLOCK_FRAMES;

	if (end > b->nr_frames)
		end = b->nr_frames;
	while (f < end) {
		uint8_t fo = b->frame_order[f];

		if (fo & BUDDY_FREE_HEAD) {
			unsigned o = fo & ~BUDDY_FREE_HEAD;

			list_del(b, f, o, from);
			list_add(b, f, o, to);
			f += 1U << o;
		} else {
			f++;
		}
	}
}

enum migratetype buddy__pageblock_mt(const struct buddy *b, frame_t f)
{
	return block_mt(b, f);
}

void buddy__set_pageblock_mt(struct buddy *b, frame_t f, enum migratetype mt)
{
	uint32_t pb = f >> MM_PAGEBLOCK_ORDER;
	enum migratetype old = (enum migratetype)b->pageblock_mt[pb];

	if (old == mt || mt >= MIGRATE_TYPES)
		return;
	b->pageblock_mt[pb] = (uint8_t)mt;
	move_freepages_block(b, pb, old, mt);
}

void buddy__pageblock_counts(const struct buddy *b, uint64_t counts[MIGRATE_TYPES])
{
	for (int mt = 0; mt < MIGRATE_TYPES; mt++)
		counts[mt] = 0;
	for (uint32_t pb = 0; pb < b->nr_pageblocks; pb++)
		counts[b->pageblock_mt[pb]]++;
}

/* __rmqueue_smallest(): the smallest free block of type mt that is big enough. */
static frame_t rmqueue_smallest(struct buddy *b, unsigned order, enum migratetype mt)
{
	for (unsigned o = order; o < MM_MAX_ORDER; o++) {
		frame_t h = b->area[o].head[mt];

		if (h == FRAME_NONE)
			continue;
		del_free_block(b, h, o);
		expand(b, h, order, o);
		return h;
	}
	return FRAME_NONE;
}

/*
 * __rmqueue_fallback(), simplified: take the LARGEST free block of a fallback type
 * (searching types in fallbacks[] order at each order, from the top order down) to
 * keep mixing of types in pageblocks rare. If the block is of order >= pageblock_order/2
 * (can_steal_fallback()), claim its pageblock(s) for the requested type, moving the
 * pageblock's other free blocks over (steal_suitable_fallback() without its
 * free/compatible page counting); the remainder of the split then lands on the
 * requested type's lists. Otherwise the remainder stays with the fallback type.
 */
static frame_t rmqueue_fallback(struct buddy *b, unsigned order, enum migratetype mt)
{
	for (int o = MM_MAX_ORDER - 1; o >= (int)order; o--) {
		for (int i = 0; i < MIGRATE_TYPES - 1; i++) {
			frame_t h = b->area[o].head[fallbacks[mt][i]];

			if (h == FRAME_NONE)
				continue;
			del_free_block(b, h, (unsigned)o);
			if (o >= MM_PAGEBLOCK_ORDER / 2) { /* can_steal_fallback() */
				frame_t first = h & ~(MM_PAGEBLOCK_FRAMES - 1);
				frame_t last = h + (1U << o) - 1;

				for (frame_t pbf = first; pbf <= last && pbf < b->nr_frames;
				     pbf += MM_PAGEBLOCK_FRAMES)
					buddy__set_pageblock_mt(b, pbf, mt);
			}
			expand(b, h, order, (unsigned)o);
			return h;
		}
	}
	return FRAME_NONE;
}

frame_t buddy__alloc(struct buddy *b, unsigned order, enum migratetype mt)
{
	frame_t h;

	if (order >= MM_MAX_ORDER || mt >= MIGRATE_TYPES)
		return FRAME_NONE;
	h = rmqueue_smallest(b, order, mt);
	if (h == FRAME_NONE)
		h = rmqueue_fallback(b, order, mt);
	return h;
}

/* __free_one_page(): merge with the buddy while it is a free head of the same order. */
void buddy__free(struct buddy *b, frame_t f, unsigned order)
{
	if (order >= MM_MAX_ORDER || f >= b->nr_frames)
		return;
	while (order < MM_MAX_ORDER - 1) {
		frame_t buddy = f ^ (1U << order);

		if (!is_free_head(b, buddy, order))
			break;
		del_free_block(b, buddy, order);
		f &= buddy;
		order++;
	}
	add_free_block(b, f, order);
}

bool buddy__free_block_of(const struct buddy *b, frame_t f, frame_t *head, unsigned *order)
{
	if (f >= b->nr_frames)
		return false;
	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		frame_t h = f & ~((1U << o) - 1);

		if (b->frame_order[h] == (BUDDY_FREE_HEAD | o)) {
			if (head)
				*head = h;
			if (order)
				*order = o;
			return true;
		}
	}
	return false;
}

bool buddy__frame_is_free(const struct buddy *b, frame_t f)
{
	return buddy__free_block_of(b, f, NULL, NULL);
}

int buddy__take_block(struct buddy *b, frame_t f, unsigned order)
{
	frame_t h;
	unsigned o;

	if (order >= MM_MAX_ORDER || (f & ((1U << order) - 1)))
		return -EINVAL;
	if (!buddy__free_block_of(b, f, &h, &o) || o < order)
		return -ENOENT;
	del_free_block(b, h, o);
	/* Split down towards f, giving back the half that does not hold it. */
	while (o > order) {
		frame_t half = 1U << --o;

		if (f >= h + half) {
			add_free_block(b, h, o);
			h += half;
		} else {
			add_free_block(b, h + half, o);
		}
	}
	return 0;
}

int buddy__take(struct buddy *b, frame_t f)
{
	return buddy__take_block(b, f, 0);
}

/* --- statistics (mm/vmstat.c, mm/compaction.c) --- */

/* fill_contig_page_info() */
void buddy__contig_page_info(const struct buddy *b, unsigned suitable_order, struct contig_page_info *info)
{
	info->free_pages = 0;
	info->free_blocks_total = 0;
	info->free_blocks_suitable = 0;
	for (unsigned order = 0; order < MM_MAX_ORDER; order++) {
		uint64_t blocks = b->area[order].nr_free;

		info->free_blocks_total += blocks;
		info->free_pages += blocks << order;
		if (order >= suitable_order)
			info->free_blocks_suitable += blocks << (order - suitable_order);
	}
}

/* __fragmentation_index() */
int fragmentation_index(const struct contig_page_info *info, unsigned order)
{
	uint64_t requested = 1ULL << order;

	if (order >= MM_MAX_ORDER)
		return 0;
	if (!info->free_blocks_total)
		return 0;
	/* Fragmentation index only makes sense when a request would fail */
	if (info->free_blocks_suitable)
		return -1000;
	return 1000 - (int)((1000 + info->free_pages * 1000ULL / requested) / info->free_blocks_total);
}

/* unusable_free_index() */
int unusable_free_index(const struct contig_page_info *info, unsigned order)
{
	if (info->free_pages == 0)
		return 1000;
	return (int)((info->free_pages - (info->free_blocks_suitable << order)) * 1000ULL / info->free_pages);
}

/* extfrag_for_order() */
unsigned extfrag_for_order(const struct buddy *b, unsigned order)
{
	struct contig_page_info info;

	buddy__contig_page_info(b, order, &info);
	if (info.free_pages == 0)
		return 0;
	return (unsigned)((info.free_pages - (info.free_blocks_suitable << order)) * 100 / info.free_pages);
}

/* fragmentation_score_zone(): one zone, so fragmentation_score_node() weighs it by 1. */
unsigned buddy__fragmentation_score(const struct buddy *b)
{
	return extfrag_for_order(b, MM_HPAGE_ORDER);
}

/* --- consistency check --- */

#define CHECK_FAIL(...)                                   \
	do {                                              \
		if (why && whylen)                        \
			snprintf(why, whylen, __VA_ARGS__); \
		ret = -EINVAL;                            \
		goto out;                                 \
	} while (0)

int buddy__check(const struct buddy *b, char *why, size_t whylen)
{
	uint8_t *covered;
	uint64_t free_frames = 0, heads_listed = 0, heads_seen = 0;
	int ret = 0;

	if (b->nr_pageblocks != (uint32_t)(((uint64_t)b->nr_frames + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER)) {
		if (why && whylen)
			snprintf(why, whylen, "nr_pageblocks %u wrong for %u frames", b->nr_pageblocks, b->nr_frames);
		return -EINVAL;
	}
	covered = calloc(b->nr_frames, 1);
	if (!covered) {
		if (why && whylen)
			snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t pb = 0; pb < b->nr_pageblocks; pb++)
		if (b->pageblock_mt[pb] >= MIGRATE_TYPES)
			CHECK_FAIL("pageblock %u has migratetype %u", pb, b->pageblock_mt[pb]);

	for (unsigned o = 0; o < MM_MAX_ORDER; o++) {
		const struct free_area *area = &b->area[o];
		uint64_t sum = 0;

		for (int mt = 0; mt < MIGRATE_TYPES; mt++) {
			uint64_t n = 0;
			frame_t prev = FRAME_NONE;

			for (frame_t h = area->head[mt]; h != FRAME_NONE; prev = h, h = b->next[h]) {
				if (h >= b->nr_frames)
					CHECK_FAIL("order %u %s list: frame %u out of range", o, migratetype_names[mt], h);
				if (h & ((1U << o) - 1))
					CHECK_FAIL("order %u block %u not aligned", o, h);
				if ((uint64_t)h + (1U << o) > b->nr_frames)
					CHECK_FAIL("order %u block %u crosses nr_frames %u", o, h, b->nr_frames);
				if (b->frame_order[h] != (BUDDY_FREE_HEAD | o))
					CHECK_FAIL("order %u block %u has frame_order 0x%x", o, h, b->frame_order[h]);
				if (b->prev[h] != prev)
					CHECK_FAIL("order %u block %u: prev %u, expected %u", o, h, b->prev[h], prev);
				if (block_mt(b, h) != (enum migratetype)mt)
					CHECK_FAIL("order %u block %u on %s list but its pageblock is %s", o, h,
						   migratetype_names[mt], migratetype_names[block_mt(b, h)]);
				for (frame_t i = h; i < h + (1U << o); i++) {
					if (covered[i])
						CHECK_FAIL("frame %u in two free blocks (order %u block %u)", i, o, h);
					covered[i] = 1;
				}
				if (o < MM_MAX_ORDER - 1 && is_free_head(b, h ^ (1U << o), o))
					CHECK_FAIL("order %u blocks %u and %u are free buddies, not merged", o, h,
						   h ^ (1U << o));
				if (++n > b->nr_frames)
					CHECK_FAIL("order %u %s list loops", o, migratetype_names[mt]);
			}
			if (n != area->nr_free_mt[mt])
				CHECK_FAIL("order %u %s: %llu on list, nr_free_mt %llu", o, migratetype_names[mt],
					   (unsigned long long)n, (unsigned long long)area->nr_free_mt[mt]);
			sum += n;
			free_frames += n << o;
		}
		if (sum != area->nr_free)
			CHECK_FAIL("order %u: %llu on lists, nr_free %llu", o, (unsigned long long)sum,
				   (unsigned long long)area->nr_free);
		heads_listed += sum;
	}
	if (free_frames != b->nr_free_frames)
		CHECK_FAIL("free frames on lists %llu, nr_free_frames %llu", (unsigned long long)free_frames,
			   (unsigned long long)b->nr_free_frames);
	for (frame_t f = 0; f < b->nr_frames; f++) {
		uint8_t fo = b->frame_order[f];

		if (fo & BUDDY_FREE_HEAD)
			heads_seen++;
		else if (fo)
			CHECK_FAIL("frame %u has stray frame_order 0x%x", f, fo);
	}
	if (heads_seen != heads_listed)
		CHECK_FAIL("%llu frames marked free heads, %llu on lists", (unsigned long long)heads_seen,
			   (unsigned long long)heads_listed);
out:
	free(covered);
	return ret;
}
