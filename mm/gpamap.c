/* gpamap.c: guest-physical page -> pool frame map, its reverse map and per-frame owners. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/table.h"
#include "mm/gpamap.h"

const char *const frame_owner_names[FRAME_OWNERS] = {
	[FRAME_FREE] = "free",
	[FRAME_GUEST] = "guest",
	[FRAME_BALLAST_MOVABLE] = "ballast_movable",
	[FRAME_BALLAST_UNMOVABLE] = "ballast_unmovable",
	[FRAME_ISOLATED] = "isolated",
	[FRAME_ABSENT] = "absent",
};

size_t gpamap__metadata_bytes(uint32_t nr_gpfns, uint32_t nr_frames)
{
	return sizeof(struct gpamap) + (size_t)nr_gpfns * sizeof(frame_t) +
	       (size_t)nr_frames * (sizeof(gpfn_t) + sizeof(uint8_t));
}

int gpamap__init(struct gpamap *m, uint32_t nr_gpfns, uint32_t nr_frames)
{
	memset(m, 0, sizeof(*m));
	if (nr_gpfns == GPFN_NONE || nr_frames == FRAME_NONE)
		return -EINVAL;
	m->nr_gpfns = nr_gpfns;
	m->nr_frames = nr_frames;
	m->nr_regions = (uint32_t)(((uint64_t)nr_gpfns + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER);
	m->gpfn_frame = mm_table__alloc((size_t)nr_gpfns * sizeof(frame_t) + 1);
	m->frame_gpfn = mm_table__alloc((size_t)nr_frames * sizeof(gpfn_t) + 1);
	m->frame_owner = mm_table__alloc((size_t)nr_frames + 1);
	if (!m->gpfn_frame || !m->frame_gpfn || !m->frame_owner) {
		gpamap__exit(m);
		return -ENOMEM;
	}
	memset(m->gpfn_frame, 0xff, (size_t)nr_gpfns * sizeof(frame_t));
	memset(m->frame_gpfn, 0xff, (size_t)nr_frames * sizeof(gpfn_t));
	m->nr_owned[FRAME_FREE] = nr_frames;
	return 0;
}

int gpamap__grow(struct gpamap *m, uint32_t nr_frames)
{
	gpfn_t *fg;
	uint8_t *fo;

	if (nr_frames <= m->nr_frames || nr_frames == FRAME_NONE)
		return nr_frames == m->nr_frames ? 0 : -EINVAL;
	fg = mm_table__realloc(m->frame_gpfn, (size_t)nr_frames * sizeof(gpfn_t) + 1);
	if (fg)
		m->frame_gpfn = fg;
	fo = mm_table__realloc(m->frame_owner, (size_t)nr_frames + 1);
	if (fo)
		m->frame_owner = fo;
	if (!fg || !fo)
		return -ENOMEM;
	memset(m->frame_gpfn + m->nr_frames, 0xff, (size_t)(nr_frames - m->nr_frames) * sizeof(gpfn_t));
	memset(m->frame_owner + m->nr_frames, FRAME_ABSENT, (size_t)(nr_frames - m->nr_frames));
	m->frame_owner[nr_frames] = 0; /* the sentinel, as calloc left it */
	m->nr_owned[FRAME_ABSENT] += nr_frames - m->nr_frames;
	m->nr_frames = nr_frames;
	return 0;
}

void gpamap__exit(struct gpamap *m)
{
	mm_table__free(m->gpfn_frame);
	mm_table__free(m->frame_gpfn);
	mm_table__free(m->frame_owner);
	memset(m, 0, sizeof(*m));
}

static void set_owner_raw(struct gpamap *m, frame_t f, enum frame_owner o)
{
	m->nr_owned[m->frame_owner[f]]--;
	m->frame_owner[f] = (uint8_t)o;
	m->nr_owned[o]++;
}

/* Drop the binding of guest frame f (if any); f keeps its owner byte for the caller to set. */
static void unbind_frame(struct gpamap *m, frame_t f)
{
	gpfn_t g = m->frame_gpfn[f];

	if (g != GPFN_NONE) {
		if (m->gpfn_frame[g] == f)
			m->gpfn_frame[g] = FRAME_NONE;
		m->frame_gpfn[f] = GPFN_NONE;
	}
}

/*
 * Bind g to f. Meant for an unowned f and an unbacked g; to keep the map
 * consistent whatever the caller does, a frame g was bound to becomes FRAME_FREE
 * (as in gpamap__rebind) and a guest frame f of another gpfn unbinds that gpfn.
 */
void gpamap__bind(struct gpamap *m, gpfn_t g, frame_t f)
{
	frame_t old = m->gpfn_frame[g];

	if (old == f)
		return;
	if (old != FRAME_NONE) {
		unbind_frame(m, old);
		set_owner_raw(m, old, FRAME_FREE);
	}
	unbind_frame(m, f);
	set_owner_raw(m, f, FRAME_GUEST);
	m->gpfn_frame[g] = f;
	m->frame_gpfn[f] = g;
}

frame_t gpamap__rebind(struct gpamap *m, gpfn_t g, frame_t new_frame)
{
	frame_t old = m->gpfn_frame[g];

	gpamap__bind(m, g, new_frame);
	return old;
}

frame_t gpamap__unbind(struct gpamap *m, gpfn_t g)
{
	frame_t old = m->gpfn_frame[g];

	if (old != FRAME_NONE) {
		unbind_frame(m, old);
		set_owner_raw(m, old, FRAME_FREE);
	}
	return old;
}

void gpamap__set_owner(struct gpamap *m, frame_t f, enum frame_owner o)
{
	if (o >= FRAME_OWNERS)
		return;
	if (o != FRAME_GUEST)
		unbind_frame(m, f);
	set_owner_raw(m, f, o);
}

bool gpamap__region_in_order(const struct gpamap *m, uint32_t region)
{
	uint64_t start = (uint64_t)region << MM_PAGEBLOCK_ORDER;
	frame_t base;

	if (start + MM_PAGEBLOCK_FRAMES > m->nr_gpfns)
		return false;
	base = m->gpfn_frame[start];
	if (base == FRAME_NONE || (base & (MM_PAGEBLOCK_FRAMES - 1)))
		return false;
	for (uint32_t i = 1; i < MM_PAGEBLOCK_FRAMES; i++)
		if (m->gpfn_frame[start + i] != base + i)
			return false;
	return true;
}

uint32_t gpamap__count_in_order(const struct gpamap *m)
{
	uint32_t n = 0;

	for (uint32_t r = 0; r < m->nr_regions; r++)
		n += gpamap__region_in_order(m, r);
	return n;
}

uint64_t gpamap__count_runs_range(const struct gpamap *m, gpfn_t g, uint32_t n)
{
	uint64_t runs = 0;
	uint64_t end = (uint64_t)g + n;
	frame_t prev = FRAME_NONE;

	if (end > m->nr_gpfns)
		end = m->nr_gpfns;
	for (uint64_t i = g; i < end; i++) {
		frame_t f = m->gpfn_frame[i];

		if (f != FRAME_NONE && (prev == FRAME_NONE || f != prev + 1))
			runs++;
		prev = f;
	}
	return runs;
}

uint64_t gpamap__count_runs(const struct gpamap *m)
{
	return gpamap__count_runs_range(m, 0, m->nr_gpfns);
}

#define CHECK_FAIL(...)                                   \
	do {                                              \
		if (why && whylen)                        \
			snprintf(why, whylen, __VA_ARGS__); \
		return -EINVAL;                           \
	} while (0)

int gpamap__check(const struct gpamap *m, char *why, size_t whylen)
{
	uint64_t owned[FRAME_OWNERS] = { 0 };
	uint64_t bound = 0;

	if (m->nr_regions != (uint32_t)(((uint64_t)m->nr_gpfns + MM_PAGEBLOCK_FRAMES - 1) >> MM_PAGEBLOCK_ORDER))
		CHECK_FAIL("nr_regions %u wrong for %u gpfns", m->nr_regions, m->nr_gpfns);
	for (gpfn_t g = 0; g < m->nr_gpfns; g++) {
		frame_t f = m->gpfn_frame[g];

		if (f == FRAME_NONE)
			continue;
		if (f >= m->nr_frames)
			CHECK_FAIL("gpfn %#x -> frame %u out of range", g, f);
		if (m->frame_owner[f] != FRAME_GUEST)
			CHECK_FAIL("gpfn %#x -> frame %u owned by %u", g, f, m->frame_owner[f]);
		if (m->frame_gpfn[f] != g)
			CHECK_FAIL("gpfn %#x -> frame %u -> gpfn %#x", g, f, m->frame_gpfn[f]);
		bound++;
	}
	for (frame_t f = 0; f < m->nr_frames; f++) {
		uint8_t o = m->frame_owner[f];
		gpfn_t g = m->frame_gpfn[f];

		if (o >= FRAME_OWNERS)
			CHECK_FAIL("frame %u has owner %u", f, o);
		owned[o]++;
		if (o == FRAME_GUEST) {
			if (g == GPFN_NONE || g >= m->nr_gpfns)
				CHECK_FAIL("guest frame %u has gpfn %#x", f, g);
			if (m->gpfn_frame[g] != f)
				CHECK_FAIL("frame %u -> gpfn %#x -> frame %u", f, g, m->gpfn_frame[g]);
		} else if (g != GPFN_NONE) {
			CHECK_FAIL("%s frame %u has gpfn %#x", frame_owner_names[o], f, g);
		}
	}
	for (int o = 0; o < FRAME_OWNERS; o++)
		if (owned[o] != m->nr_owned[o])
			CHECK_FAIL("%llu %s frames, nr_owned says %llu", (unsigned long long)owned[o],
				   frame_owner_names[o], (unsigned long long)m->nr_owned[o]);
	if (bound != owned[FRAME_GUEST])
		CHECK_FAIL("%llu gpfns bound but %llu guest frames", (unsigned long long)bound,
			   (unsigned long long)owned[FRAME_GUEST]);
	return 0;
}
