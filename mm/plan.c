/* plan.c: the planned defrag (overview in plan.h): choose every region's target block, then run step 2. */
#include "mm/plan.h"
#include "mm/util.h"

#define AFFINITY_MIN 8 /* pages already in place that make a block r's natural target */

static void plan_free(struct plan *p)
{
	free(p->rstate);
	free(p->region_block);
	free(p->block_region);
	free(p->home);
	free(p->foreign);
	free(p->evict);
	fs_free(&p->spare);
	fs_free(&p->complete);
	fs_free(&p->chain);
}

static int plan_alloc(struct plan *p, struct defrag_engine *e)
{
	memset(p, 0, sizeof(*p));
	p->e = e;
	p->mm = e->mm;
	p->nr_regions = e->mm->map.nr_regions;
	p->nr_blocks = e->mm->buddy.nr_frames / MM_PAGEBLOCK_FRAMES;
	p->rstate = calloc(p->nr_regions + 1, 1);
	p->region_block = malloc((p->nr_regions + 1) * sizeof(uint32_t));
	p->block_region = malloc((p->nr_blocks + 1) * sizeof(uint32_t));
	p->home = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	p->foreign = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	p->evict = calloc(p->nr_blocks + 1, sizeof(uint16_t));
	if (!p->rstate || !p->region_block || !p->block_region || !p->home || !p->foreign ||
	    !p->evict)
		return -ENOMEM;
	memset(p->region_block, 0xff, (p->nr_regions + 1) * sizeof(uint32_t));
	memset(p->block_region, 0xff, (p->nr_blocks + 1) * sizeof(uint32_t));
	return 0;
}

struct affinity {
	uint32_t count, region, block;
};

static int cmp_affinity(const void *a, const void *b)
{
	const struct affinity *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return x->region < y->region ? -1 : x->region > y->region;
}

/*
 * The block r's pages already fill best at their offsets, and how many: the
 * blocks where pages sit in place, sorted, and the longest run of equal values.
 */
static uint32_t best_affinity(const struct mm *mm, uint32_t r, uint32_t *blk)
{
	uint32_t blocks[MM_PAGEBLOCK_FRAMES], n = 0, best = 0;
	gpfn_t g0 = r << MM_PAGEBLOCK_ORDER;

	for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
		frame_t f = gpamap__frame(&mm->map, g0 + i);

		if (f != FRAME_NONE && (f & (MM_PAGEBLOCK_FRAMES - 1)) == i)
			blocks[n++] = block_of(f);
	}
	if (n < AFFINITY_MIN)
		return 0;
	qsort(blocks, n, sizeof(blocks[0]), mm__cmp_u32);
	for (uint32_t i = 0, j; i < n; i = j) {
		for (j = i; j < n && blocks[j] == blocks[i]; j++)
			;
		if (j - i > best) {
			best = j - i;
			*blk = blocks[i];
		}
	}
	return best;
}

static int cmp_block_key(const void *a, const void *b, void *key)
{
	uint64_t x = ((const uint64_t *)key)[*(const uint32_t *)a];
	uint64_t y = ((const uint64_t *)key)[*(const uint32_t *)b];

	if (x != y)
		return x < y ? -1 : 1;
	return mm__cmp_u32(a, b);
}

static void assign(struct plan *p, uint32_t r, uint32_t blk)
{
	p->region_block[r] = blk;
	p->block_region[blk] = r;
	p->rstate[r] = RP_TARGET;
	p->targets_left++;
}

/* Scratch space of plan_targets, sized for every region and block. */
struct plan_scratch {
	uint32_t *cand, nr_cand;  /* regions to copy into a target block */
	struct affinity *aff;
	uint32_t *blocks;         /* clean blocks free for the taking, cheapest first */
	uint64_t *key;            /* per block: its sort key */
	uint8_t *eligible;        /* per block: clean (host huge, no unmovable frame, no in-place region) */
};

static void plan_scratch__free(struct plan_scratch *s)
{
	free(s->cand);
	free(s->aff);
	free(s->blocks);
	free(s->key);
	free(s->eligible);
}

static int plan_scratch__alloc(struct plan_scratch *s, const struct plan *p)
{
	memset(s, 0, sizeof(*s));
	s->cand = malloc((p->nr_regions + 1) * sizeof(*s->cand));
	s->aff = malloc((p->nr_regions + 1) * sizeof(*s->aff));
	s->blocks = malloc((p->nr_blocks + 1) * sizeof(*s->blocks));
	s->key = calloc(p->nr_blocks + 1, sizeof(*s->key));
	s->eligible = calloc(p->nr_blocks + 1, 1);
	if (!s->cand || !s->aff || !s->blocks || !s->key || !s->eligible) {
		plan_scratch__free(s);
		return -ENOMEM;
	}
	return 0;
}

/* Regions: done, skipped, promoted by a remap (up to max_regions), or candidates to copy. */
static void plan_classify_regions(struct plan *p, struct plan_scratch *s)
{
	struct mm *mm = p->mm;
	uint32_t limit = p->e->req->max_regions, budget = limit ? limit : UINT32_MAX;

	for (uint32_t r = 0; r < p->nr_regions; r++) {
		if (mm->region_huge_mapped[r] && defrag__region_in_place(mm, r)) {
			p->rstate[r] = RP_DONE;
		} else if (!defrag__region_full(mm, r)) {
			p->rstate[r] = RP_SKIP;
			p->e->st->regions_failed++;
		} else if (defrag__region_in_place(mm, r)) {
			if (budget) {
				p->rstate[r] = RP_ZERO;
				budget--;
			}
		} else {
			s->cand[s->nr_cand++] = r;
		}
		if (p->rstate[r] == RP_DONE || p->rstate[r] == RP_ZERO || defrag__region_in_place(mm, r))
			p->block_region[block_of(gpamap__frame(&mm->map, r << MM_PAGEBLOCK_ORDER))] = r;
	}
	/* All candidates are planned; execution stops after `limit` regions, the cheapest first. */
}

/* Clean blocks: host huge, no unmovable frame, not holding an in-place region. */
static void plan_mark_clean_blocks(struct plan *p, struct plan_scratch *s)
{
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		frame_t f0 = block_frame(blk);

		if (p->block_region[blk] != NO_REGION || !pool__block_is_huge(&p->mm->pool, f0) ||
		    defrag__block_has_unmovable(p->mm, blk))
			continue;
		s->eligible[blk] = 1;
	}
}

/* Affinity first: a block already holding many of r's pages in place. */
static void plan_assign_by_affinity(struct plan *p, struct plan_scratch *s)
{
	uint32_t nr_aff = 0;

	for (uint32_t i = 0; i < s->nr_cand; i++) {
		uint32_t blk = NO_BLOCK, n = best_affinity(p->mm, s->cand[i], &blk);

		if (n)
			s->aff[nr_aff++] = (struct affinity){ .count = n, .region = s->cand[i], .block = blk };
	}
	qsort(s->aff, nr_aff, sizeof(*s->aff), cmp_affinity);
	for (uint32_t i = 0; i < nr_aff; i++)
		if (s->eligible[s->aff[i].block] && p->block_region[s->aff[i].block] == NO_REGION &&
		    p->region_block[s->aff[i].region] == NO_BLOCK)
			assign(p, s->aff[i].region, s->aff[i].block);
}

/* The clean blocks no region has taken, fewest evictions first, then most free frames (the
 * fast path). Candidates count as targets here: their pages need no eviction. */
static uint32_t plan_sort_free_blocks(struct plan *p, struct plan_scratch *s)
{
	const struct gpamap *m = &p->mm->map;
	uint32_t nr_blocks = 0;

	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		const uint8_t *own = m->frame_owner + ((size_t)blk << MM_PAGEBLOCK_ORDER);
		uint32_t nr_free = 0, nr_evict = 0;

		if (!s->eligible[blk] || p->block_region[blk] != NO_REGION)
			continue;
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i++) {
			frame_t f = block_frame(blk) + i;

			if (own[i] == FRAME_FREE)
				nr_free++;
			else if (!holds_target_page(p, f))
				nr_evict++;
		}
		s->key[blk] = (uint64_t)nr_evict << 16 | (MM_PAGEBLOCK_FRAMES - nr_free);
		s->blocks[nr_blocks++] = blk;
	}
	qsort_r(s->blocks, nr_blocks, sizeof(*s->blocks), cmp_block_key, s->key);
	return nr_blocks;
}

/* Step 1 of the plan: classify regions and blocks, choose T(r). Holds mm->lock. */
static int plan_targets(struct plan *p)
{
	struct plan_scratch s;
	uint32_t nr_blocks;

	if (plan_scratch__alloc(&s, p))
		return -ENOMEM;
	plan_classify_regions(p, &s);
	plan_mark_clean_blocks(p, &s);
	plan_assign_by_affinity(p, &s);

	/* The other candidates are meant to get targets too (provisionally marked so for the
	 * eviction count below); pages of regions without one must be evicted. */
	for (uint32_t i = 0; i < s.nr_cand; i++)
		p->rstate[s.cand[i]] = RP_TARGET;
	nr_blocks = plan_sort_free_blocks(p, &s);
	for (uint32_t i = 0, b = 0; i < s.nr_cand; i++) {
		uint32_t r = s.cand[i];

		if (p->region_block[r] != NO_BLOCK)
			continue;
		if (b == nr_blocks) {
			p->rstate[r] = RP_SKIP;
			p->e->st->regions_failed++; /* no clean block left for it */
			continue;
		}
		assign(p, r, s.blocks[b++]);
	}
	plan_scratch__free(&s);
	return 0;
}

/* Step 2 of the plan: counters per target block, and the work lists. Holds mm->lock. */
static int plan_lists(struct plan *p)
{
	struct mm *mm = p->mm;
	int ret = 0;

	for (uint32_t blk = 0; blk < p->nr_blocks && !ret; blk++) {
		frame_t f0 = block_frame(blk);
		bool target = is_target(p, blk);

		for (frame_t f = f0; f < f0 + MM_PAGEBLOCK_FRAMES && !ret; f++) {
			enum frame_owner o = gpamap__owner(&mm->map, f);

			if (!target) {
				if (o == FRAME_FREE && buddy__frame_is_free(&mm->buddy, f))
					ret = fs_push(&p->spare, f);
				continue;
			}
			if (o == FRAME_FREE) {
				continue;
			} else if (is_home(p, f)) {
				p->home[blk]++;
			} else if (holds_target_page(p, f)) {
				p->foreign[blk]++;
			} else {
				p->evict[blk]++;
			}
		}
		if (!target || ret)
			continue;
		p->to_place += MM_PAGEBLOCK_FRAMES - p->home[blk];
		if (p->home[blk] == MM_PAGEBLOCK_FRAMES)
			ret = fs_push(&p->complete, blk);
	}
	return ret;
}
/*
 * Blocks to borrow: one per region to be copied, less the clean blocks that are wholly free
 * already. Every region then gets an empty target: copied whole, with no 4 KiB eviction.
 */
static uint32_t borrow_wanted(struct plan *p, uint64_t *saves_ns)
{
	struct mm *mm = p->mm;
	uint32_t regions = 0, free_blocks = 0, used_blocks = 0;
	uint64_t used_frames = 0;

	for (uint32_t r = 0; r < p->nr_regions; r++)
		regions += defrag__region_full(mm, r) && !defrag__region_in_place(mm, r);
	for (uint32_t blk = 0; blk < p->nr_blocks; blk++) {
		frame_t head;
		unsigned order;

		if (!pool__block_is_huge(&mm->pool, block_frame(blk)))
			continue;
		if (buddy__free_block_of(&mm->buddy, block_frame(blk), &head, &order) && order >= MM_PAGEBLOCK_ORDER) {
			free_blocks++;
		} else if (!defrag__block_has_unmovable(mm, blk)) {
			/* a target without borrowing: what is in it must be moved out first */
			used_blocks++;
			for (frame_t f = block_frame(blk); f < block_frame(blk) + MM_PAGEBLOCK_FRAMES; f++)
				used_frames += !buddy__frame_is_free(&mm->buddy, f);
		}
	}
	*saves_ns = used_blocks ? used_frames / used_blocks * p->e->est_move_ns : 0;
	if (p->e->req->max_regions && regions > p->e->req->max_regions)
		regions = p->e->req->max_regions;
	return regions > free_blocks ? regions - free_blocks : 0;
}

int plan__collapse(struct defrag_engine *e)
{
	struct plan p;
	uint64_t saves_ns;
	uint32_t want;
	uint64_t t;
	int ret, gret;

	ret = plan_alloc(&p, e);
	if (ret)
		goto out;
	p.cur_blk = p.park_blk = NO_BLOCK;
	if (e->req->borrow_bytes != DEFRAG_BORROW_OFF && e->mm->pool.nr_present < e->mm->pool.nr_blocks) {
		defrag__hold(e);
		want = borrow_wanted(&p, &saves_ns);
		defrag__release(e);
		t = mm__now_ns();
		ret = borrow__grow(e, want, saves_ns);
		e->st->borrow_ns = mm__now_ns() - t;
		if (ret)
			goto out;
	}
	t = mm__now_ns();
	defrag__hold(e);
	ret = plan_targets(&p);
	if (!ret)
		ret = plan_lists(&p);
	defrag__release(e);
	e->st->plan_ns = mm__now_ns() - t;
	if (ret)
		goto out;
	/* in pages to place (mm__defrag reports them as regions' worth of the work) */
	e->progress_done = 0;
	e->progress_total = p.to_place;
	for (uint32_t r = 0; r < p.nr_regions; r++)
		e->progress_total += p.rstate[r] == RP_ZERO ? MM_PAGEBLOCK_FRAMES : 0;
	if (e->req->max_regions && (uint64_t)e->req->max_regions * MM_PAGEBLOCK_FRAMES < e->progress_total)
		e->progress_total = (uint64_t)e->req->max_regions * MM_PAGEBLOCK_FRAMES;
	ret = plan__zero_copy_all(&p);
	if (!ret)
		ret = plan__execute_ordered(&p);
	/* Whatever happened, blocks left wholly free beyond the pool's size go back to the host. */
	t = mm__now_ns();
	gret = ret == -ECANCELED ? 0 : borrow__give_back(e);
	e->st->give_back_ns = mm__now_ns() - t;
	if (!ret)
		ret = gret;
	defrag__hold(e);
	/* Targets left incomplete by a cancel or an error are reported as failed (not those a
	 * max_regions limit left for the next run). */
	if (ret)
		for (uint32_t r = 0; r < p.nr_regions; r++)
			if (p.rstate[r] == RP_TARGET)
				e->st->regions_failed++;
out:
	if (ret == -ENOMEM)
		defrag__set_error(e, ret, "planned defrag: out of memory");
	plan_free(&p);
	return ret;
}
