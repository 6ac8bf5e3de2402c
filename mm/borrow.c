/* borrow.c: the elastic pool under defrag: borrow whole 2 MiB blocks from the host, give back the blocks left free. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/internal.h"
#include "mm/util.h"

#define BLOCK_BYTES (1ULL << (MM_PAGE_SHIFT + MM_PAGEBLOCK_ORDER))
#define BORROW_MARGIN_MIN (256ULL << 20)  /* MemAvailable kept for the host, at least */
#define BORROW_MARGIN_SHARE 20            /* ... or 1/20 of MemTotal, whichever is more */
#define RESERVE_BLOCKS_MAX 4              /* free blocks kept pre-faulted after giving back */
#define RESERVE_PER_BLOCKS 64             /* ... at most one per this many pool blocks */
#define BORROW_BATCH 32                   /* blocks faulted in at a time (then the cost is judged) */

/* Blocks the request and the host allow borrowing now (beyond what is present). */
static uint32_t borrow_limit(struct defrag_engine *e)
{
	struct mm *mm = e->mm;
	uint64_t bytes = e->req->borrow_bytes, avail, margin, absent;
	struct vma_budget vb;

	absent = mm->pool.nr_blocks - mm->pool.nr_present;
	if (bytes == DEFRAG_BORROW_OFF || !absent)
		return 0;
	if (bytes == DEFRAG_BORROW_AUTO) {
		avail = mm->cfg.fake_mem_available ? mm->cfg.fake_mem_available : mm__meminfo_bytes("MemAvailable");
		margin = mm__meminfo_bytes("MemTotal") / BORROW_MARGIN_SHARE;
		if (margin < BORROW_MARGIN_MIN)
			margin = BORROW_MARGIN_MIN;
		bytes = avail > margin ? avail - margin : 0;
		if (!bytes)
			snprintf(e->st->borrow_note, sizeof(e->st->borrow_note),
				 "MemAvailable %" PRIu64 " MiB is within the %" PRIu64 " MiB safety margin",
				 avail >> 20, margin >> 20);
	}
	bytes /= BLOCK_BYTES;
	if (bytes > absent)
		bytes = absent;
	/* Each borrowed block is one more mapping in the direct map until it is given back. */
	if (!vma_budget__read(&vb) && bytes > vma_budget__available(&vb, VMA_BUDGET_HEADROOM)) {
		bytes = vma_budget__available(&vb, VMA_BUDGET_HEADROOM);
		snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "vm.max_map_count limits borrowing to %"
			 PRIu64 " blocks", bytes);
	}
	return (uint32_t)bytes;
}

/* Present block b, whose frames are ABSENT, joins the buddy allocator as a free block. */
static void block_join(struct mm *mm, uint32_t b)
{
	frame_t f0 = (frame_t)b << MM_PAGEBLOCK_ORDER;

	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		gpamap__set_owner(&mm->map, f0 + i, FRAME_FREE);
	buddy__free(&mm->buddy, f0, MM_PAGEBLOCK_ORDER);
}

/* Make up to n absent blocks present (files made and mapped, not faulted) under mm->lock;
 * their numbers in blocks[]. Returns how many, and a note if it stopped short. */
static uint32_t borrow_files(struct defrag_engine *e, uint32_t *blocks, uint32_t n)
{
	struct mm *mm = e->mm;
	uint32_t got = 0;
	char err[160];

	defrag__hold(e);
	for (uint32_t b = 0; b < mm->pool.nr_blocks && got < n; b++) {
		if (pool__block_present(&mm->pool, b))
			continue;
		if (mm__fault(mm, MM_FAULT_BORROW)) {
			snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "borrowing stopped after %u blocks: "
				 "injected failure", got);
			break;
		}
		if (pool__block_add(&mm->pool, b, false, err, sizeof(err))) {
			/* Not fatal: defrag goes on with what it has (4 KiB moves for the rest). */
			snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "borrowing stopped after %u blocks: %.48s",
				 got, err);
			break;
		}
		blocks[got++] = b;
	}
	defrag__release(e);
	return got;
}

/* Borrow up to n blocks now: made, faulted in in parallel, joined to the allocator. Returns
 * how many joined; *failed counts those whose fault-in failed. */
static uint32_t borrow_batch(struct defrag_engine *e, uint32_t *blocks, int *rc, uint32_t n, uint32_t *failed)
{
	struct mm *mm = e->mm;
	uint32_t got, joined = 0;

	/* Outside any pause and without mm->lock: the new blocks are in no allocator yet, so only
	 * this thread knows them while their host huge pages are faulted in, in parallel. */
	got = borrow_files(e, blocks, n);
	pool__populate_blocks(&mm->pool, blocks, got, 0, rc);
	defrag__hold(e);
	for (uint32_t i = 0; i < got; i++) {
		if (rc[i]) {
			pool__block_drop(&mm->pool, blocks[i]);
			(*failed)++;
			continue;
		}
		pool__refresh_block(&mm->pool, blocks[i]);
		block_join(mm, blocks[i]);
		e->blocks_borrowed++;
		joined++;
	}
	if (mm->pool.nr_present > e->present_peak)
		e->present_peak = mm->pool.nr_present;
	defrag__release(e);
	return joined;
}

int borrow__grow(struct defrag_engine *e, uint32_t want, uint64_t saves_ns)
{
	struct mm *mm = e->mm;
	uint32_t limit = borrow_limit(e), done = 0, failed = 0, *blocks;
	int *rc;

	e->st->borrow_limit_bytes = (uint64_t)limit * BLOCK_BYTES;
	if (want > limit) {
		if (!e->st->borrow_note[0] && e->req->borrow_bytes != DEFRAG_BORROW_OFF)
			snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "wanted %u blocks, allowed %u%s", want,
				 limit, mm->pool.nr_blocks - mm->pool.nr_present < want ? " (pool capacity)" : "");
		want = limit;
	}
	if (!want)
		return 0;
	blocks = malloc(BORROW_BATCH * sizeof(*blocks));
	rc = calloc(BORROW_BATCH, sizeof(*rc));
	while (blocks && rc && done < want && !defrag__cancelled(e)) {
		uint32_t n = want - done < BORROW_BATCH ? want - done : BORROW_BATCH, got;
		uint64_t t0 = mm__now_ns(), per;

		got = borrow_batch(e, blocks, rc, n, &failed);
		done += got;
		if (got < n)
			break;
		/* auto: a block is worth borrowing while it faults in faster than the 4 KiB moves it
		 * saves; a host handing out huge pages cold (ms each) may make it not worth it. */
		per = (mm__now_ns() - t0) / got;
		if (e->req->borrow_bytes == DEFRAG_BORROW_AUTO && saves_ns && per > saves_ns && done < want) {
			snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "slow host huge pages: %.1f ms/block > "
				 "%.1f ms saved; %u of %u", per / 1e6, saves_ns / 1e6, done % 100000, want % 100000);
			break;
		}
	}
	if (failed)
		snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "%u borrowed blocks not faulted in "
			 "(host memory short)", failed);
	free(blocks);
	free(rc);
	return 0;
}

/* --- giving back --- */

struct give_back {
	struct defrag_engine *e;
	uint32_t *cand;           /* blocks to empty and drop, fewest movable frames first */
	uint32_t nr_cand;
	uint8_t *dropping;        /* per block: a candidate */
	frame_t *spare;           /* free frames in blocks that stay */
	uint32_t nr_spare, next_spare;
	uint16_t *movable;        /* per block: movable ballast frames (sort key) */
};

static int cmp_movable(const void *a, const void *b, void *key)
{
	const uint16_t *mv = key;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (mv[x] != mv[y])
		return mv[x] < mv[y] ? -1 : 1;
	return x > y ? -1 : x < y; /* borrowed (high) blocks first: the pool's own stay in place */
}

/* A block that holds only free frames and movable ballast can be emptied and dropped. */
static bool block_droppable(const struct mm *mm, uint32_t b, uint16_t *movable)
{
	const uint8_t *own = mm->map.frame_owner + ((size_t)b << MM_PAGEBLOCK_ORDER);
	uint16_t n = 0;

	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		if (own[i] == FRAME_BALLAST_MOVABLE)
			n++;
		else if (own[i] != FRAME_FREE)
			return false;
	}
	*movable = n;
	return true;
}

/* Choose the candidates (under mm->lock): the droppable blocks with the least to move,
 * as many as take the pool back to target blocks; then the free frames left elsewhere. */
static int give_back_plan(struct give_back *g, uint32_t excess)
{
	struct mm *mm = g->e->mm;
	uint32_t nr_blocks = mm->pool.nr_blocks;

	g->cand = malloc(nr_blocks * sizeof(*g->cand));
	g->dropping = calloc(nr_blocks, 1);
	g->movable = calloc(nr_blocks, sizeof(*g->movable));
	if (!g->cand || !g->dropping || !g->movable)
		return -ENOMEM;
	for (uint32_t b = 0; b < nr_blocks; b++)
		if (pool__block_present(&mm->pool, b) && block_droppable(mm, b, &g->movable[b]))
			g->cand[g->nr_cand++] = b;
	qsort_r(g->cand, g->nr_cand, sizeof(*g->cand), cmp_movable, g->movable);
	if (g->nr_cand > excess)
		g->nr_cand = excess;
	for (uint32_t i = 0; i < g->nr_cand; i++)
		g->dropping[g->cand[i]] = 1;
	for (uint32_t b = 0; b < nr_blocks; b++) {
		frame_t f0 = (frame_t)b << MM_PAGEBLOCK_ORDER;

		if (!pool__block_present(&mm->pool, b) || g->dropping[b])
			continue;
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++) {
			if (!buddy__frame_is_free(&mm->buddy, f))
				continue;
			if (!(g->nr_spare & 1023)) {
				frame_t *v = realloc(g->spare, (g->nr_spare + 1024) * sizeof(*v));

				if (!v)
					return -ENOMEM;
				g->spare = v;
			}
			g->spare[g->nr_spare++] = f;
		}
	}
	return 0;
}

/* Move the movable ballast out of candidate block b into spare frames (in steps: the engine's
 * moves are only legal there). 0, -ENOSPC (no spare frame left) or -errno. */
static int empty_block(struct give_back *g, uint32_t b)
{
	struct defrag_engine *e = g->e;
	struct mm *mm = e->mm;
	frame_t f0 = (frame_t)b << MM_PAGEBLOCK_ORDER;
	int ret;

	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++) {
		frame_t dst = FRAME_NONE;

		if (gpamap__owner(&mm->map, f) != FRAME_BALLAST_MOVABLE)
			continue;
		ret = defrag__step_ensure(e, e->est_copy_ns * 2);
		if (ret)
			return ret;
		while (g->next_spare < g->nr_spare && dst == FRAME_NONE) {
			frame_t s = g->spare[g->next_spare++];

			if (buddy__frame_is_free(&mm->buddy, s) && !buddy__take(&mm->buddy, s))
				dst = s;
		}
		if (dst == FRAME_NONE)
			return -ENOSPC;
		ret = defrag__move(e, f, dst, 0);
		if (ret) {
			buddy__free(&mm->buddy, dst, 0);
			return ret;
		}
	}
	return 0;
}

/* Candidate b holds only free frames now: take it from the buddy allocator and drop it. */
static int drop_block(struct defrag_engine *e, uint32_t b)
{
	struct mm *mm = e->mm;
	frame_t f0 = (frame_t)b << MM_PAGEBLOCK_ORDER;

	if (mm__fault(mm, MM_FAULT_GIVE_BACK) || buddy__take_block(&mm->buddy, f0, MM_PAGEBLOCK_ORDER))
		return -EBUSY;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++)
		gpamap__set_owner(&mm->map, f0 + i, FRAME_ABSENT);
	pool__block_drop(&mm->pool, b);
	e->blocks_given_back++;
	return 0;
}

int borrow__give_back(struct defrag_engine *e)
{
	struct mm *mm = e->mm;
	struct give_back g = { .e = e };
	uint32_t start = mm->pool.nr_present_start, reserve, target, excess;
	int ret;

	reserve = start / RESERVE_PER_BLOCKS < RESERVE_BLOCKS_MAX ? start / RESERVE_PER_BLOCKS : RESERVE_BLOCKS_MAX;
	target = start + reserve;
	defrag__hold(e);
	excess = mm->pool.nr_present > target ? mm->pool.nr_present - target : 0;
	if (!excess) {
		ret = 0;
		goto out;
	}
	ret = give_back_plan(&g, excess);
	for (uint32_t i = 0; i < g.nr_cand && !ret; i++) {
		uint32_t b = g.cand[i];

		ret = empty_block(&g, b);
		if (!ret) {
			defrag__hold(e); /* inside a step already, or alone: no pause needed to drop */
			ret = drop_block(e, b);
		}
	}
	if (ret == -ENOSPC || ret == -EBUSY) {
		snprintf(e->st->borrow_note, sizeof(e->st->borrow_note), "gave back %u of %u blocks: %s",
			 e->blocks_given_back, excess, ret == -ENOSPC ? "no room left for the ballast" :
			 "a block could not be taken back");
		ret = 0;
	}
out:
	defrag__release(e);
	free(g.cand);
	free(g.dropping);
	free(g.spare);
	free(g.movable);
	return ret;
}
