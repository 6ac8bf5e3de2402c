/* test_fault.c: failures injected at each point of the move, promotion, borrow and give-back paths roll back; the next defrag completes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/defrag.h"
#include "tests/check.h"
#include "defrag_check.h"

#define MiB (1ULL << 20)

struct fault_case {
	const char *name;
	enum mm_fault_point point;
	uint32_t countdown;
	uint64_t borrow;
	bool fatal;        /* the defrag stops with an error (else it completes, with a note) */
};

static const struct fault_case cases[] = {
	{ "copy-4k", MM_FAULT_COPY, 40, DEFRAG_BORROW_OFF, true },
	{ "copy-region", MM_FAULT_COPY, 3, DEFRAG_BORROW_AUTO, true },
	{ "remap-4k", MM_FAULT_REMAP_4K, 60, DEFRAG_BORROW_OFF, true },
	{ "remap-2m", MM_FAULT_REMAP_2M, 3, DEFRAG_BORROW_AUTO, true },
	{ "borrow", MM_FAULT_BORROW, 2, DEFRAG_BORROW_AUTO, false },
	{ "give-back", MM_FAULT_GIVE_BACK, 1, DEFRAG_BORROW_AUTO, false },
};

static void create(struct dc_env *env, uint64_t seed)
{
	struct mm_config cfg = { .guest_bytes = 48 * MiB, .slack_bytes = 4 * MiB, .prefault = true,
				 .borrow_capacity_bytes = 48 * MiB, .aging = AGING_DEFAULTS };

	cfg.aging.age = 0.9;
	cfg.aging.seed = seed;
	dc_create_cfg(env, &cfg);
	dc_sign(env);
	dc_snapshot(env);
}

static int defrag(struct dc_env *env, uint64_t borrow, struct defrag_stats *st)
{
	struct defrag_request req;
	struct mm_step_ops ops;
	struct dc_ops o;
	int ret;

	defrag_request__init(&req);
	dc_ops_init(&o, &ops, &req, &env->mm);
	req.borrow_bytes = borrow;
	ret = mm__defrag(&env->mm, &req, &ops, st);
	CHECK_EQ(o.pauses, o.resumes);
	dc_verify_content(env);   /* every guest page intact, every ballast page once */
	dc_check_maps(env);       /* GPA map, reverse map, buddy allocator and window agree */
	CHECK_EQ((int64_t)env->mm.win.nr_vmas, window__count_host_vmas(&env->mm.win));
	return ret;
}

static void run_case(const struct fault_case *c, uint64_t seed)
{
	struct dc_env env;
	struct defrag_stats st;
	uint64_t start;
	int ret;

	tu_case = c->name;
	create(&env, seed);
	start = pool__present_bytes(&env.mm.pool);
	env.mm.fault_inject.countdown[c->point] = c->countdown;
	ret = defrag(&env, c->borrow, &st);
	dc_print(c->name, &st);
	CHECKF(env.mm.fault_inject.hits[c->point] == 1, "%s: injected %u times", c->name,
	       env.mm.fault_inject.hits[c->point]);
	if (c->fatal) {
		CHECKF(ret < 0 && st.error == ret && strstr(st.error_msg, "failed"), "%s: ret %d, %s", c->name, ret,
		       st.error_msg);
		CHECK(st.regions_backed_2m < env.mm.map.nr_regions);
	} else {
		CHECKF(ret == 0 && st.borrow_note[0], "%s: ret %d (%s), note '%s'", c->name, ret, st.error_msg,
		       st.borrow_note);
	}
	printf("%-12s injected: %s%s%s; backed %u/%u\n", c->name, ret ? st.error_msg : "completed",
	       st.borrow_note[0] ? "; " : "", st.borrow_note, st.regions_backed_2m, env.mm.map.nr_regions);
	/* The next defrag, with nothing injected, completes and leaves the pool at its size. */
	ret = defrag(&env, DEFRAG_BORROW_AUTO, &st);
	CHECKF(ret == 0 && st.error == 0, "%s: the next defrag: %s", c->name, st.error_msg);
	CHECK_EQ(st.regions_backed_2m, env.mm.map.nr_regions);
	CHECK(pool__present_bytes(&env.mm.pool) <= start + 2 * MiB);
	dc_destroy(&env);
}

int main(int argc, char **argv)
{
	tu_seed = tu_base_seed(argc, argv, 0xfa17);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], tu_seed + i);
	printf("test_fault: ok\n");
	return 0;
}
