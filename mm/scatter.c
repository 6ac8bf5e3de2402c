/* scatter.c: re-aging: move random guest pages to random free frames through the defrag engine's steps. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mm/internal.h"
#include "mm/util.h"

/*
 * A long-running host undoes defragmentation: the guest's pages get migrated (NUMA
 * balancing, compaction on behalf of others, memory hotplug) and land wherever the
 * page allocator had a free frame. mm__scatter does that on purpose, seeded, with the
 * same stop-the-world steps and the same move primitive as the defrag engine, so that
 * defrag and re-aging rounds can alternate under a live guest (bench moves).
 *
 * Destination frames are taken as the page allocator would place a movable page: a
 * free frame in a MIGRATE_MOVABLE pageblock, falling back to any free frame. Guest
 * pages never land in unmovable pageblocks while a movable one has room, so the
 * achievable 2 MiB coverage (set by where unmovable ballast sits) is not changed.
 */

#define SCATTER_PROBES 256  /* random probes for a free frame before walking the pool */

/* Uniform in [0, n) (Lemire's multiply-shift; the bias is below 2^-32 for n < 2^32). */
static uint32_t scatter__below(uint64_t *x, uint32_t n)
{
	return (uint32_t)(((unsigned __int128)mm__splitmix64(x) * n) >> 64);
}

static bool scatter__dst_ok(const struct mm *mm, frame_t f, bool any_mt)
{
	return buddy__frame_is_free(&mm->buddy, f) &&
	       (any_mt || buddy__pageblock_mt(&mm->buddy, f) == MIGRATE_MOVABLE);
}

/* A random free frame, preferably in a movable pageblock; FRAME_NONE if none is free. */
static frame_t scatter__pick_free(const struct mm *mm, uint64_t *rng)
{
	uint32_t n = mm->buddy.nr_frames, start;

	if (!mm->buddy.nr_free_frames)
		return FRAME_NONE;
	for (unsigned i = 0; i < SCATTER_PROBES; i++) {
		frame_t f = scatter__below(rng, n);

		if (scatter__dst_ok(mm, f, false))
			return f;
	}
	/* Free frames are rare: walk from a random start, movable pageblocks first. */
	start = scatter__below(rng, n);
	for (int any_mt = 0; any_mt < 2; any_mt++)
		for (uint32_t k = 0; k < n; k++) {
			frame_t f = (start + k) % n;

			if (scatter__dst_ok(mm, f, any_mt))
				return f;
		}
	return FRAME_NONE;
}

/* A random backed guest page; GPFN_NONE if none is backed. */
static gpfn_t scatter__pick_page(const struct mm *mm, uint64_t *rng)
{
	uint32_t n = mm->map.nr_gpfns;
	gpfn_t g = scatter__below(rng, n);

	for (uint32_t k = 0; k < n; k++, g = g + 1 == n ? 0 : g + 1)
		if (gpamap__frame(&mm->map, g) != FRAME_NONE)
			return g;
	return GPFN_NONE;
}

/* The most mappings nr_moves single-page moves can add to the window. */
static uint64_t scatter__vmas_added(const struct mm *mm, uint64_t nr_moves)
{
	uint64_t most = mm->map.nr_gpfns > mm->win.nr_vmas ? mm->map.nr_gpfns - mm->win.nr_vmas : 0;

	return nr_moves > most / 2 ? most : 2 * nr_moves;
}

int mm__scatter(struct mm *mm, uint64_t nr_moves, uint64_t seed, const struct mm_step_ops *ops,
		const struct defrag_request *req_or_null, struct defrag_stats *st)
{
	struct defrag_request defaults;
	const struct defrag_request *req = req_or_null;
	struct defrag_engine e;
	uint64_t rng = seed, i, vmas;
	char why[sizeof(st->error_msg) - 16];
	int ret;

	if (!req) {
		defrag_request__init(&defaults);
		req = &defaults;
	}
	ret = defrag_engine__init(&e, mm, req, ops, st);
	if (ret)
		return ret;
	st->compact_result = COMPACT_SKIPPED;
	defrag__progress(&e, 0, nr_moves);

	/* Each move can add two mappings (a page in the middle of a run splits it in three). */
	pthread_mutex_lock(&mm->lock);
	vmas = scatter__vmas_added(mm, nr_moves);
	pthread_mutex_unlock(&mm->lock);
	ret = vma_budget__check(vmas, why, sizeof(why));
	if (ret) {
		defrag__set_error(&e, ret, "scatter: %s", why);
		goto out;
	}

	for (i = 0; i < nr_moves; i++) {
		frame_t src, dst;
		gpfn_t g;

		ret = defrag__step_ensure(&e, e.est_move_ns);
		if (ret)
			break;
		g = scatter__pick_page(mm, &rng);
		dst = scatter__pick_free(mm, &rng);
		if (g == GPFN_NONE || dst == FRAME_NONE) {
			ret = -ENOMEM;
			defrag__set_error(&e, ret, "scatter: %s", g == GPFN_NONE ? "no guest page is backed"
										: "no free frame left in the pool");
			break;
		}
		src = gpamap__frame(&mm->map, g);
		ret = buddy__take(&mm->buddy, dst);
		if (ret) {
			defrag__set_error(&e, -EIO, "scatter: free frame %u could not be taken (%d)", dst, ret);
			ret = -EIO;
			break;
		}
		/* Moves the page, splits a 2 MiB-mapped region, frees src (see defrag__move). */
		ret = defrag__move(&e, src, dst, 0);
		if (ret) {
			buddy__free(&mm->buddy, dst, 0); /* defrag__move left dst taken and FRAME_FREE */
			break;
		}
		defrag__progress(&e, i + 1, nr_moves);
	}
	if (ret == -ECANCELED && !st->error)
		defrag__set_error(&e, ret, "cancelled");
out:
	defrag_engine__exit(&e);
	return ret;
}
