/* plan_execute.c: the planned collapse's step 2: clear and fill the target blocks, every move final but cycle breaks. */
#include "mm/plan.h"
#include "mm/util.h"

/* Frame f, which held a page that has just moved out, is free now: file it. */
static int frame_vacated(struct plan *p, frame_t f, bool was_foreign_target_page)
{
	uint32_t blk = block_of(f);

	if (!is_target(p, blk))
		return fs_push(&p->spare, f);
	if (was_foreign_target_page)
		p->foreign[blk]--;
	else
		p->evict[blk]--;
	return 0; /* blocks are picked by their blocker counts, free slots found by scanning */
}

/* Progress moves with the work: pages placed (regions promoted in place count 512). */
static void plan_progress(struct plan *p)
{
	p->e->progress_done = (uint64_t)p->e->st->regions_zero_copy * MM_PAGEBLOCK_FRAMES + p->placed;
}

static int page_placed(struct plan *p, uint32_t blk)
{
	p->home[blk]++;
	p->placed++;
	plan_progress(p);
	if (p->home[blk] == MM_PAGEBLOCK_FRAMES)
		return fs_push(&p->complete, blk);
	return 0;
}

/* The incomplete target block with the most blockers, other than the current one. */
static uint32_t pick_park_block(const struct plan *p)
{
	uint32_t best = NO_BLOCK, best_key = 0;

	for (uint32_t r = 0; r < p->nr_regions; r++) {
		uint32_t blk, key;

		if (p->rstate[r] != RP_TARGET || p->region_block[r] == p->cur_blk)
			continue;
		blk = p->region_block[r];
		key = p->foreign[blk] + p->evict[blk] + 1U;
		if (key > best_key &&
		    (uint32_t)p->home[blk] + p->foreign[blk] + p->evict[blk] < MM_PAGEBLOCK_FRAMES) {
			best_key = key;
			best = blk;
		}
	}
	return best;
}

/*
 * When no frame outside the targets is free: a free slot of the
 * target block that will be processed last (the most blockers). What lands there
 * becomes one more blocker of that block.
 */
static frame_t take_park_frame(struct plan *p)
{
	struct mm *mm = p->mm;

	for (int tries = 0; tries < 2; tries++) {
		if (p->park_blk != NO_BLOCK && is_target(p, p->park_blk) && p->park_blk != p->cur_blk) {
			for (frame_t f = p->park_next; f < block_frame(p->park_blk) + MM_PAGEBLOCK_FRAMES; f++) {
				if (!buddy__frame_is_free(&mm->buddy, f) || buddy__take(&mm->buddy, f))
					continue;
				p->park_next = f + 1;
				return f;
			}
		}
		p->park_blk = pick_park_block(p);
		if (p->park_blk == NO_BLOCK)
			break;
		p->park_next = block_frame(p->park_blk);
	}
	return FRAME_NONE;
}

/* A spare frame (free, outside target blocks), taken from the buddy allocator. */
static frame_t take_spare(struct plan *p)
{
	frame_t f;

	while (fs_pop(&p->spare, &f))
		if (!is_target(p, block_of(f)) && buddy__frame_is_free(&p->mm->buddy, f) &&
		    !buddy__take(&p->mm->buddy, f))
			return f;
	return take_park_frame(p);
}

/* Move the page in f out to a spare frame (*to, if not NULL). 0, -EAGAIN (no spare frame) or -errno. */
static int move_to_spare(struct plan *p, frame_t f, unsigned flags, frame_t *to)
{
	struct defrag_engine *e = p->e;
	frame_t t;
	int ret;

	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	t = take_spare(p);
	if (t == FRAME_NONE)
		return -EAGAIN;
	if (gpamap__owner(&p->mm->map, f) == FRAME_GUEST) {
		gpfn_t g = gpamap__gpfn(&p->mm->map, f);

		if (e->moved[g >> 6] >> (g & 63) & 1)
			flags |= MOVE_TEMP; /* moved before in this run: this copy is an extra one */
	}
	ret = defrag__move(e, f, t, flags);
	if (ret) {
		buddy__free(&p->mm->buddy, t, 0);
		return ret;
	}
	if (to)
		*to = t;
	if (is_target(p, block_of(t))) { /* parked in a later target block: a blocker there now */
		if (holds_target_page(p, t))
			p->foreign[block_of(t)]++;
		else
			p->evict[block_of(t)]++;
	}
	return 0;
}

/* Fill the free target slot s with the page that belongs there (a 4 KiB move). */
static int fill_slot(struct plan *p, frame_t s)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	uint32_t blk = block_of(s), r = p->block_region[blk];
	gpfn_t g;
	frame_t f;
	int ret;

	if (!is_target(p, blk) || !buddy__frame_is_free(&mm->buddy, s))
		return 0; /* stale: filled by the fast path, or the block is done */
	g = (r << MM_PAGEBLOCK_ORDER) + (s & (MM_PAGEBLOCK_FRAMES - 1));
	f = gpamap__frame(&mm->map, g);
	if (f == FRAME_NONE)
		return 0;
	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	if (buddy__take(&mm->buddy, s))
		return 0;
	ret = defrag__move(e, f, s, 0);
	if (ret) {
		buddy__free(&mm->buddy, s, 0);
		return ret;
	}
	ret = page_placed(p, blk);
	if (!ret)
		ret = frame_vacated(p, f, true);
	return ret;
}

/* All of the region's pages are in place in its block: one 2 MiB remap. */
static int complete_block(struct plan *p, uint32_t blk)
{
	struct defrag_engine *e = p->e;
	uint32_t r = p->block_region[blk];
	int ret;

	if (!is_target(p, blk) || p->home[blk] != MM_PAGEBLOCK_FRAMES)
		return 0;
	ret = defrag__step_ensure(e, e->est_remap_ns);
	if (ret)
		return ret;
	ret = defrag__promote_filled(e, r);
	if (ret)
		return ret;
	p->rstate[r] = RP_COMPLETE;
	p->targets_left--;
	return 0;
}

/*
 * The fast path: block blk holds only free frames, pages of its region in place
 * and frames to evict. Evict those, then copy the region whole into the block
 * with one 2 MiB remap. 0, -EAGAIN (not possible now) or -errno.
 */
static int fast_path(struct plan *p, uint32_t blk)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	uint32_t r = p->block_region[blk];
	frame_t f0 = block_frame(blk), old[MM_PAGEBLOCK_FRAMES];
	uint32_t nr_free = 0, copied = 0;
	uint64_t cost;
	int ret;

	if (!is_target(p, blk) || p->foreign[blk] || p->home[blk] == MM_PAGEBLOCK_FRAMES)
		return 0;
	cost = defrag__collapse_cost(e, r, MM_PAGEBLOCK_FRAMES - p->home[blk]);
	/* Over the pause budget, 4 KiB moves do it in small steps, at ~10x the total time. A block
	 * with nothing to evict (a borrowed one) is always filled whole: a copy of 2 MiB and one
	 * remap, 0.6-0.9 ms measured, is the shortest pause that switches a region at all. */
	if (p->evict[blk] && cost > e->work_budget_ns)
		return -EAGAIN;
	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && p->evict[blk]; f++) {
		if (gpamap__owner(&mm->map, f) == FRAME_FREE || is_home(p, f))
			continue;
		ret = move_to_spare(p, f, 0, NULL);
		if (ret)
			return ret;
		p->evict[blk]--;
	}
	ret = defrag__step_ensure(e, cost);
	if (ret)
		return ret;
	if (p->foreign[blk] || p->evict[blk])
		return 0; /* changed meanwhile */
	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
		nr_free += gpamap__owner(&mm->map, f) == FRAME_FREE;
	if (nr_free == MM_PAGEBLOCK_FRAMES) {
		if (buddy__take_block(&mm->buddy, f0, MM_PAGEBLOCK_ORDER))
			return -EIO;
	} else {
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_FREE && buddy__take(&mm->buddy, f))
				return -EIO;
	}
	ret = defrag__collapse_into(e, r, f0, old);
	if (ret) {
		/* Rolled back: the region's pages are where they were; give back the frames taken. */
		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES; f++)
			if (gpamap__owner(&mm->map, f) == FRAME_FREE && !buddy__frame_is_free(&mm->buddy, f))
				buddy__free(&mm->buddy, f, 0);
		return ret;
	}
	p->rstate[r] = RP_COMPLETE;
	p->targets_left--;
	e->st->regions_fast_path++;
	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		if (old[i] == FRAME_NONE)
			continue;
		copied++;
		ret = frame_vacated(p, old[i], true);
		if (ret)
			return ret;
	}
	p->home[blk] = MM_PAGEBLOCK_FRAMES;
	p->placed += copied;
	plan_progress(p);
	return 0;
}

int plan__zero_copy_all(struct plan *p)
{
	struct defrag_engine *e = p->e;
	int ret = 0;

	for (uint32_t r = 0; r < p->nr_regions && !ret; r++) {
		if (p->rstate[r] != RP_ZERO)
			continue;
		ret = defrag__step_ensure(e, e->est_remap_ns);
		if (!ret)
			ret = defrag__promote_in_place(e, r);
		if (!ret)
			p->rstate[r] = RP_COMPLETE;
		plan_progress(p);
	}
	return ret;
}

static int stuck(struct plan *p, const char *why)
{
	defrag__set_error(p->e, -ENOSPC, "planned defrag: %s with %u regions incomplete", why, p->targets_left);
	return -ENOSPC;
}

/* The incomplete target block with the fewest blockers, then the most pages in place. */
static uint32_t pick_block(const struct plan *p)
{
	uint32_t best = NO_BLOCK, best_key = UINT32_MAX;

	for (uint32_t r = 0; r < p->nr_regions; r++) {
		uint32_t blk, key;

		if (p->rstate[r] != RP_TARGET)
			continue;
		blk = p->region_block[r];
		key = (uint32_t)(p->foreign[blk] + p->evict[blk]) << 10 | (MM_PAGEBLOCK_FRAMES - p->home[blk]);
		if (key < best_key) {
			best_key = key;
			best = blk;
		}
	}
	return best;
}

/* Move the misplaced target page in frame f to its home slot h, which is free. */
static int move_home(struct plan *p, frame_t f, frame_t h)
{
	struct mm *mm = p->mm;
	struct defrag_engine *e = p->e;
	int ret;

	ret = defrag__step_ensure(e, e->est_move_ns);
	if (ret)
		return ret;
	if (buddy__take(&mm->buddy, h))
		return -EIO;
	ret = defrag__move(e, f, h, 0);
	if (ret) {
		buddy__free(&mm->buddy, h, 0);
		return ret;
	}
	ret = page_placed(p, block_of(h));
	if (!ret)
		ret = frame_vacated(p, f, true);
	return ret;
}

/*
 * Make frame f of the block being processed hold no blocker. Ballast or a page
 * without a target goes to a spare frame. A misplaced target page goes home; if
 * its home holds another misplaced page, that one goes home first, and so on
 * (a chain, executed from its end; every move is final). The chain ends at a free
 * home, or at one whose occupant can be evicted. It can only close into a cycle
 * at f itself: then the last page is parked on a spare frame and, once f's page
 * has left, comes home into f (one extra copy).
 */
static int clear_slot(struct plan *p, frame_t f)
{
	struct mm *mm = p->mm;
	frame_t cur = f, parked = FRAME_NONE, x;
	int ret;

	if (buddy__frame_is_free(&mm->buddy, f) || is_home(p, f))
		return 0;
	if (!holds_target_page(p, f)) {
		ret = move_to_spare(p, f, 0, NULL);
		return ret ? ret : frame_vacated(p, f, false);
	}
	p->chain.n = 0;
	for (;;) {
		frame_t h = home_of(p, cur);

		ret = fs_push(&p->chain, cur);
		if (ret)
			return ret;
		if (buddy__frame_is_free(&mm->buddy, h))
			break;
		if (h == f) { /* a cycle through f: park its last page */
			p->chain.n--;
			ret = move_to_spare(p, cur, MOVE_TEMP, &parked);
			if (!ret)
				ret = frame_vacated(p, cur, true);
			if (ret)
				return ret;
			break;
		}
		if (!holds_target_page(p, h)) { /* ballast or a target-less page: evict it */
			ret = move_to_spare(p, h, 0, NULL);
			if (!ret)
				ret = frame_vacated(p, h, false);
			if (ret)
				return ret;
			break;
		}
		cur = h;
	}
	while (fs_pop(&p->chain, &x)) {
		ret = move_home(p, x, home_of(p, x));
		if (ret)
			return ret;
	}
	return parked == FRAME_NONE ? 0 : move_home(p, parked, f);
}

/* Without the fast path: pull each missing page into its slot with a 4 KiB move. */
static int fill_block_4k(struct plan *p, uint32_t blk)
{
	int ret = 0;

	for (frame_t f = block_frame(blk); f < block_frame(blk) + MM_PAGEBLOCK_FRAMES && !ret; f++)
		if (is_target(p, blk) && buddy__frame_is_free(&p->mm->buddy, f))
			ret = fill_slot(p, f);
	return ret;
}

static int process_block(struct plan *p, uint32_t blk)
{
	struct defrag_engine *e = p->e;
	frame_t f0 = block_frame(blk);
	int ret = 0;

	for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && !ret; f++)
		ret = clear_slot(p, f);
	if (ret || !is_target(p, blk))
		return ret;
	if (e->req->flags & DEFRAG_F_NO_FAST_PATH)
		return fill_block_4k(p, blk); /* completion comes through p->complete */
	ret = fast_path(p, blk);
	return ret == -EAGAIN ? fill_block_4k(p, blk) : ret;
}

int plan__execute_ordered(struct plan *p)
{
	struct defrag_engine *e = p->e;
	uint32_t limit = e->req->max_regions;
	int ret = 0;

	while (!ret && p->targets_left) {
		frame_t x;
		uint32_t blk;

		if (limit && e->st->regions_promoted + e->st->regions_zero_copy >= limit)
			break;
		if (fs_pop(&p->complete, &x)) {
			ret = complete_block(p, x);
			continue;
		}
		blk = pick_block(p);
		if (blk == NO_BLOCK)
			break;
		p->cur_blk = blk;
		ret = process_block(p, blk);
		if (ret == -EAGAIN)
			ret = stuck(p, "no spare frame to evict into");
		plan_progress(p);
	}
	return ret;
}
