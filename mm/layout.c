/* layout.c: export a pool layout from a live mm and replay it into a fresh buddy allocator and GPA map. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mm/layout.h"
#include "mm/mm.h"
#include "mm/util.h"

int mm_layout__alloc(struct mm_layout *l, uint32_t nr_gpfns, uint32_t nr_frames)
{
	memset(l, 0, sizeof(*l));
	l->nr_gpfns = nr_gpfns;
	l->nr_frames = nr_frames;
	l->nr_pageblocks = nr_frames / MM_PAGEBLOCK_FRAMES;
	l->frame_tag = malloc(((size_t)nr_frames + 1) * sizeof(*l->frame_tag));
	l->pageblock_mt = calloc((size_t)l->nr_pageblocks + 1, 1);
	if (!l->frame_tag || !l->pageblock_mt) {
		mm_layout__free(l);
		return -ENOMEM;
	}
	return 0;
}

void mm_layout__free(struct mm_layout *l)
{
	free(l->frame_tag);
	free(l->pageblock_mt);
	memset(l, 0, sizeof(*l));
}

int mm_layout__export(const struct mm *mm, struct mm_layout *l, char *err, size_t errlen)
{
	const struct gpamap *m = &mm->map;
	int ret = mm_layout__alloc(l, m->nr_gpfns, m->nr_frames);

	if (ret) {
		mm__set_msg(err, errlen, "layout: out of memory for %u frames", m->nr_frames);
		return ret;
	}
	for (frame_t f = 0; f < m->nr_frames; f++) {
		switch (gpamap__owner(m, f)) {
		case FRAME_FREE: l->frame_tag[f] = MM_LAYOUT_FREE; break;
		case FRAME_GUEST: l->frame_tag[f] = gpamap__gpfn(m, f); break;
		case FRAME_BALLAST_MOVABLE: l->frame_tag[f] = MM_LAYOUT_MOVABLE; break;
		case FRAME_BALLAST_UNMOVABLE: l->frame_tag[f] = MM_LAYOUT_UNMOVABLE; break;
		case FRAME_ABSENT: l->frame_tag[f] = MM_LAYOUT_ABSENT; break;
		default:
			mm__set_msg(err, errlen, "layout: frame %u is in transit (a defrag step is running)", f);
			mm_layout__free(l);
			return -EBUSY;
		}
	}
	for (uint32_t pb = 0; pb < l->nr_pageblocks; pb++)
		l->pageblock_mt[pb] = (uint8_t)buddy__pageblock_mt(&mm->buddy, pb << MM_PAGEBLOCK_ORDER);
	return 0;
}

int mm_layout__check(const struct mm_layout *l, char *err, size_t errlen)
{
	uint8_t *seen;
	int ret = 0;

	if (l->nr_gpfns % MM_PAGEBLOCK_FRAMES || l->nr_frames % MM_PAGEBLOCK_FRAMES || l->nr_frames < l->nr_gpfns ||
	    l->nr_pageblocks != l->nr_frames / MM_PAGEBLOCK_FRAMES) {
		mm__set_msg(err, errlen, "layout: %u guest pages over %u frames is not a 2 MiB geometry",
			    l->nr_gpfns, l->nr_frames);
		return -EINVAL;
	}
	seen = calloc((size_t)l->nr_gpfns / 8 + 1, 1);
	if (!seen)
		return -ENOMEM;
	for (frame_t f = 0; f < l->nr_frames && !ret; f++) {
		uint32_t t = l->frame_tag[f];

		if (t == MM_LAYOUT_FREE || t == MM_LAYOUT_MOVABLE || t == MM_LAYOUT_UNMOVABLE)
			continue;
		if (t == MM_LAYOUT_ABSENT) {
			if (l->frame_tag[f & ~(frame_t)(MM_PAGEBLOCK_FRAMES - 1)] != MM_LAYOUT_ABSENT) {
				mm__set_msg(err, errlen, "layout: frame %u is absent, its block is not", f);
				ret = -EINVAL;
			}
			continue;
		}
		if (t >= l->nr_gpfns || (seen[t / 8] >> (t % 8) & 1)) {
			mm__set_msg(err, errlen, "layout: frame %u holds %s guest page %u", f,
				    t >= l->nr_gpfns ? "nonexistent" : "an already placed", t);
			ret = -EINVAL;
		}
		if (!ret)
			seen[t / 8] |= (uint8_t)(1u << (t % 8));
	}
	for (gpfn_t g = 0; g < l->nr_gpfns && !ret; g++)
		if (!(seen[g / 8] >> (g % 8) & 1)) {
			mm__set_msg(err, errlen, "layout: guest page %u has no frame", g);
			ret = -EINVAL;
		}
	for (uint32_t pb = 0; pb < l->nr_pageblocks && !ret; pb++)
		if (l->pageblock_mt[pb] >= MIGRATE_TYPES) {
			mm__set_msg(err, errlen, "layout: pageblock %u has migratetype %u", pb, l->pageblock_mt[pb]);
			ret = -EINVAL;
		}
	free(seen);
	return ret;
}

/* Take the owned frames from the buddy allocator in ascending order, whole blocks where full. */
static int layout__take(struct buddy *b, const struct mm_layout *l)
{
	for (uint32_t pb = 0; pb < l->nr_pageblocks; pb++) {
		frame_t f0 = pb << MM_PAGEBLOCK_ORDER;
		uint32_t owned = 0;

		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			owned += l->frame_tag[f] != MM_LAYOUT_FREE;
		if (owned == MM_PAGEBLOCK_FRAMES) {
			if (buddy__take_block(b, f0, MM_PAGEBLOCK_ORDER))
				return -EIO;
			continue;
		}
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (l->frame_tag[f] != MM_LAYOUT_FREE && buddy__take(b, f))
				return -EIO;
	}
	return 0;
}

int mm_layout__place(struct buddy *b, struct gpamap *m, const struct mm_layout *l, char *err, size_t errlen)
{
	int ret = mm_layout__check(l, err, errlen);

	if (ret)
		return ret;
	if (l->nr_gpfns != m->nr_gpfns || l->nr_frames != m->nr_frames || b->nr_frames != m->nr_frames ||
	    b->nr_free_frames != b->nr_frames || m->nr_owned[FRAME_FREE] != m->nr_frames) {
		mm__set_msg(err, errlen, "layout: a layout of %u pages over %u frames needs a fresh buddy allocator "
			    "and GPA map of that size (have %u pages over %u frames)", l->nr_gpfns, l->nr_frames,
			    m->nr_gpfns, m->nr_frames);
		return -EINVAL;
	}
	for (frame_t f = 0; f < l->nr_frames; f++) {
		uint32_t t = l->frame_tag[f];

		if (t == MM_LAYOUT_MOVABLE)
			gpamap__set_owner(m, f, FRAME_BALLAST_MOVABLE);
		else if (t == MM_LAYOUT_UNMOVABLE)
			gpamap__set_owner(m, f, FRAME_BALLAST_UNMOVABLE);
		else if (t == MM_LAYOUT_ABSENT)
			gpamap__set_owner(m, f, FRAME_ABSENT);
		else if (t != MM_LAYOUT_FREE)
			gpamap__bind(m, t, f);
	}
	if (layout__take(b, l)) {
		mm__set_msg(err, errlen, "layout: the buddy allocator refused a frame it should have had free");
		return -EIO;
	}
	for (uint32_t pb = 0; pb < l->nr_pageblocks; pb++)
		buddy__set_pageblock_mt(b, pb << MM_PAGEBLOCK_ORDER, (enum migratetype)l->pageblock_mt[pb]);
	return 0;
}
