/* defrag_check.h: shared by the defrag engine tests: aged pools, page signatures and map checks. */
#ifndef VMC_TESTS_MM_DEFRAG_CHECK_H
#define VMC_TESTS_MM_DEFRAG_CHECK_H

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "mm/internal.h"
#include "tests/check.h"

#define DC_SKIP 77
#define DC_BALLAST_TAG (1ULL << 62)
#define DC_WORDS (MM_PAGE_SIZE / sizeof(uint64_t))

/* A test pool: the mm, and where everything was when it was signed. */
struct dc_env {
	struct mm mm;
	frame_t *frame0;     /* gpfn -> frame at the last snapshot */
	frame_t *ballast_at; /* ballast page (by the frame it was signed in) -> frame at the last snapshot */
	uint64_t nr_ballast; /* ballast frames signed */
	uint64_t *seen;      /* scratch bitmap over frames */
};

/* Word k of the page with identity id (a gpfn, or DC_BALLAST_TAG | original frame). */
static inline uint64_t dc_word(uint64_t id, uint32_t k)
{
	uint64_t z = (id << 9 | k) * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;

	z ^= z >> 29;
	return k == 0 ? id : z; /* word 0 names the page, so a moved ballast page can be found */
}

static inline void dc_fill(void *page, uint64_t id)
{
	uint64_t *w = page;

	for (uint32_t k = 0; k < DC_WORDS; k++)
		w[k] = dc_word(id, k);
}

static inline bool dc_page_ok(const void *page, uint64_t id)
{
	const uint64_t *w = page;

	for (uint32_t k = 0; k < DC_WORDS; k++)
		if (w[k] != dc_word(id, k))
			return false;
	return true;
}

/*
 * Build a pool from cfg on the private huge tmpfs, with the scratch arrays the checks use.
 * Exits with DC_SKIP when that is not possible here (not root, no THP for shmem), as the other
 * mm tests do; with cfg->prefault every present block must be a host huge page.
 */
static inline void dc_create_cfg(struct dc_env *env, const struct mm_config *cfg)
{
	char err[512];

	memset(env, 0, sizeof(*env));
	if (mm__create(&env->mm, cfg, err, sizeof(err))) {
		printf("SKIP: mm__create: %s\n", err);
		exit(DC_SKIP);
	}
	if (env->mm.pool.backing != POOL_BACKING_THP ||
	    (cfg->prefault && env->mm.pool.nr_huge_blocks != env->mm.pool.nr_present)) {
		printf("SKIP: the pool is not all host huge pages (%u of %u blocks; %s)\n",
		       env->mm.pool.nr_huge_blocks, env->mm.pool.nr_present, env->mm.pool.note);
		mm__destroy(&env->mm);
		exit(DC_SKIP);
	}
	env->frame0 = malloc(env->mm.map.nr_gpfns * sizeof(frame_t));
	env->ballast_at = malloc(env->mm.map.nr_frames * sizeof(frame_t));
	env->seen = calloc(env->mm.map.nr_frames / 64 + 1, sizeof(uint64_t));
	CHECK(env->frame0 && env->ballast_at && env->seen);
}

/* An aged pool of guest_mb + slack_mb, prefaulted. */
static inline void dc_create_aged(struct dc_env *env, uint64_t guest_mb, uint64_t slack_mb,
				  const struct aging_config *ag)
{
	struct mm_config cfg = { .guest_bytes = guest_mb << 20, .slack_bytes = slack_mb << 20, .prefault = true,
				 .aging = *ag };

	dc_create_cfg(env, &cfg);
}

/* The default aging (half the slack is ballast, a quarter of that unmovable) at `age`. */
static inline void dc_create(struct dc_env *env, uint64_t guest_mb, uint64_t slack_mb, double age,
			     uint64_t seed)
{
	struct aging_config ag = AGING_DEFAULTS;

	ag.age = age;
	ag.seed = seed;
	dc_create_aged(env, guest_mb, slack_mb, &ag);
}

static inline void dc_destroy(struct dc_env *env)
{
	free(env->frame0);
	free(env->ballast_at);
	free(env->seen);
	mm__destroy(&env->mm);
}

/* Sign every guest page through the window and every ballast frame through the direct map. */
static inline void dc_sign(struct dc_env *env)
{
	struct mm *mm = &env->mm;

	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++) {
		env->frame0[g] = gpamap__frame(&mm->map, g);
		dc_fill(window__gpa_ptr(&mm->win, (uint64_t)g << MM_PAGE_SHIFT), g);
	}
	env->nr_ballast = 0;
	for (frame_t f = 0; f < mm->map.nr_frames; f++) {
		enum frame_owner o = gpamap__owner(&mm->map, f);

		if (o == FRAME_BALLAST_MOVABLE || o == FRAME_BALLAST_UNMOVABLE) {
			dc_fill(pool__frame_ptr(&mm->pool, f), DC_BALLAST_TAG | f);
			env->ballast_at[f] = f;
			env->nr_ballast++;
		}
	}
}

/* Where everything is now becomes the reference for dc_guest_moved and the ballast count. */
static inline void dc_snapshot(struct dc_env *env)
{
	struct mm *mm = &env->mm;

	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++)
		env->frame0[g] = gpamap__frame(&mm->map, g);
	for (frame_t f = 0; f < mm->map.nr_frames; f++) {
		enum frame_owner o = gpamap__owner(&mm->map, f);
		const uint64_t *w = pool__frame_ptr(&mm->pool, f);

		if (o == FRAME_BALLAST_MOVABLE || o == FRAME_BALLAST_UNMOVABLE)
			env->ballast_at[(frame_t)(w[0] & 0xffffffffULL)] = f;
	}
}

/* Every guest page reads back intact through the window; every ballast page exists once,
 * intact, unmovable ones where they were. Returns the ballast pages moved since the snapshot. */
static inline uint64_t dc_verify_content(struct dc_env *env)
{
	struct mm *mm = &env->mm;
	uint64_t nr = 0, moved = 0;

	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++)
		CHECKF(dc_page_ok(window__gpa_ptr(&mm->win, (uint64_t)g << MM_PAGE_SHIFT), g),
		       "guest page %#x (frame %u, was %u) lost its content", g, gpamap__frame(&mm->map, g),
		       env->frame0[g]);
	memset(env->seen, 0, (mm->map.nr_frames / 64 + 1) * sizeof(uint64_t));
	for (frame_t f = 0; f < mm->map.nr_frames; f++) {
		enum frame_owner o = gpamap__owner(&mm->map, f);
		const uint64_t *w = pool__frame_ptr(&mm->pool, f);
		frame_t orig;

		if (o != FRAME_BALLAST_MOVABLE && o != FRAME_BALLAST_UNMOVABLE)
			continue;
		CHECKF((w[0] & ~0xffffffffULL) == DC_BALLAST_TAG, "ballast frame %u holds %#llx", f,
		       (unsigned long long)w[0]);
		orig = (frame_t)(w[0] & 0xffffffffULL);
		CHECKF(orig < mm->map.nr_frames && !(env->seen[orig / 64] >> (orig % 64) & 1),
		       "ballast page of frame %u found twice (now in %u)", orig, f);
		env->seen[orig / 64] |= 1ULL << (orig % 64);
		CHECKF(dc_page_ok(w, w[0]), "ballast page of frame %u (now %u) corrupted", orig, f);
		if (o == FRAME_BALLAST_UNMOVABLE)
			CHECKF(orig == f, "unmovable ballast moved from %u to %u", orig, f);
		moved += env->ballast_at[orig] != f;
		nr++;
	}
	CHECK_EQ(nr, env->nr_ballast);
	return moved;
}

/* Guest pages whose frame changed since signing. */
static inline uint64_t dc_guest_moved(const struct dc_env *env)
{
	uint64_t n = 0;

	for (gpfn_t g = 0; g < env->mm.map.nr_gpfns; g++)
		n += gpamap__frame(&env->mm.map, g) != env->frame0[g];
	return n;
}

/* Maps, allocator and window agree with one another and with the kernel. */
static inline void dc_check_maps(struct dc_env *env)
{
	struct mm *mm = &env->mm;
	char why[256];
	int64_t host_vmas;

	CHECKF(!gpamap__check(&mm->map, why, sizeof(why)), "gpamap: %s", why);
	CHECKF(!buddy__check(&mm->buddy, why, sizeof(why)), "buddy: %s", why);
	CHECK_EQ(mm->map.nr_owned[FRAME_ISOLATED], 0);
	CHECK_EQ(mm->buddy.nr_free_frames, mm->map.nr_owned[FRAME_FREE]);
	for (frame_t f = 0; f < mm->map.nr_frames; f++)
		CHECKF((gpamap__owner(&mm->map, f) == FRAME_FREE) == buddy__frame_is_free(&mm->buddy, f),
		       "frame %u: owner %s, buddy free %d", f, frame_owner_names[gpamap__owner(&mm->map, f)],
		       buddy__frame_is_free(&mm->buddy, f));
	CHECK_EQ(mm->win.nr_vmas, window__vmas_needed(&mm->map));
	host_vmas = window__count_host_vmas(&mm->win);
	CHECKF(host_vmas == (int64_t)mm->win.nr_vmas, "window: %lld host VMAs, nr_vmas %llu",
	       (long long)host_vmas, (unsigned long long)mm->win.nr_vmas);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		if (mm->region_huge_mapped[r])
			CHECKF(gpamap__region_in_order(&mm->map, r), "region %u marked 2 MiB-mapped, not in order", r);
}

/* Free blocks of order >= o, counted in order-o units. */
static inline uint64_t dc_free_blocks(const struct mm *mm, unsigned o)
{
	uint64_t n = 0;

	for (unsigned k = o; k < MM_MAX_ORDER; k++)
		n += mm->buddy.area[k].nr_free << (k - o);
	return n;
}

static inline uint32_t dc_backed_2m(struct mm *mm)
{
	struct mm_stat st;

	mm__stat(mm, &st);
	return st.regions_backed_2m;
}

/* Step hooks that count, and check the engine never pauses while holding mm->lock. */
struct dc_ops {
	struct mm *mm;
	uint64_t pauses, resumes;
	bool paused;
	uint64_t cancel_after_steps; /* 0: never */
	volatile int cancel;
	uint64_t progress_calls, last_done, last_total;
};

static inline int dc_pause(void *ctx)
{
	struct dc_ops *o = ctx;

	CHECK(!o->paused);
	CHECK(pthread_mutex_trylock(&o->mm->lock) == 0);
	pthread_mutex_unlock(&o->mm->lock);
	o->paused = true;
	o->pauses++;
	return 0;
}

static inline void dc_resume(void *ctx)
{
	struct dc_ops *o = ctx;

	CHECK(o->paused);
	CHECK(pthread_mutex_trylock(&o->mm->lock) == 0);
	pthread_mutex_unlock(&o->mm->lock);
	o->paused = false;
	o->resumes++;
	if (o->cancel_after_steps && o->resumes >= o->cancel_after_steps)
		o->cancel = 1;
}

static inline void dc_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct dc_ops *o = ctx;

	o->progress_calls++;
	o->last_done = done;
	o->last_total = total;
}

static inline void dc_ops_init(struct dc_ops *o, struct mm_step_ops *ops, struct defrag_request *req,
			       struct mm *mm)
{
	memset(o, 0, sizeof(*o));
	o->mm = mm;
	ops->pause = dc_pause;
	ops->resume = dc_resume;
	ops->ctx = o;
	req->cancel = &o->cancel;
	req->progress = dc_progress;
	req->progress_ctx = o;
}

static inline void dc_print(const char *what, const struct defrag_stats *st)
{
	printf("  %-26s %-15s %7.1f ms, %7llu copies (guest %llu ballast %llu temp %llu), %6llu 4K, "
	       "promoted %u+%u zero (fast %u) failed %u, backed %u/%u achievable, %.3f copies/promoted "
	       "page, %llu steps, pause max %.0f us p99 %.0f us\n",
	       what, compact_result__name(st->compact_result), st->wall_ns / 1e6,
	       (unsigned long long)st->pages_copied, (unsigned long long)st->copies_guest,
	       (unsigned long long)st->copies_ballast, (unsigned long long)st->copies_temp,
	       (unsigned long long)st->pages_moved_4k, st->regions_promoted, st->regions_zero_copy,
	       st->regions_fast_path, st->regions_failed, st->regions_backed_2m, st->regions_achievable,
	       st->copies_per_promoted_page, (unsigned long long)st->steps, st->pause_max_ns / 1e3,
	       st->pause_p99_ns / 1e3);
}

#endif
