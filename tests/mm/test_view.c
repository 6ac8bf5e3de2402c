/* test_view.c: with a view attached (the VMM's per-region memslots, faked), promotions switch views under the pause, the guest never sees a stale page, windows are fixed after the resume, demotions and failed switches roll back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/defrag.h"
#include "tests/check.h"
#include "defrag_check.h"

#define MiB (1ULL << 20)
#define REGION (MM_PAGE_SIZE << MM_PAGEBLOCK_ORDER)

/* The fake VMM: one "memslot" per region, and a guest that reads and writes through them. */
struct fake_vm {
	struct dc_env env;
	struct dc_ops dc;
	uint8_t **slot;        /* region -> the HVA its memslot points at (NULL: none yet) */
	uint64_t *gen;         /* gpfn -> what the guest last wrote in word 1 */
	uint64_t serves, touches, steps_checked;
	uint64_t rng;
	bool attached;
};

static void *direct_hva(struct mm *mm, uint32_t r)
{
	return pool__frame_ptr(&mm->pool, gpamap__frame(&mm->map, (gpfn_t)r << MM_PAGEBLOCK_ORDER));
}

static int fake_serve(void *ctx, uint32_t r, void *hva)
{
	struct fake_vm *vm = ctx;
	struct mm *mm = &vm->env.mm;
	uint8_t *win = window__gpa_ptr(&mm->win, (uint64_t)r * REGION);

	CHECKF(pthread_mutex_trylock(&mm->lock) == EBUSY, "region %u switched without mm->lock", r);
	CHECKF(!vm->attached || vm->dc.paused, "region %u switched while the guest runs", r);
	CHECK(r < mm->map.nr_regions);
	if (hva != win)
		CHECKF(gpamap__region_in_order(&mm->map, r) && hva == direct_hva(mm, r),
		       "region %u served from %p, neither its window nor its block", r, hva);
	vm->slot[r] = hva;
	vm->serves++;
	return 0;
}

static uint64_t *guest_page(struct fake_vm *vm, gpfn_t g)
{
	uint8_t *s = vm->slot[g >> MM_PAGEBLOCK_ORDER];

	return (uint64_t *)(s + ((uint64_t)(g & (MM_PAGEBLOCK_FRAMES - 1)) << MM_PAGE_SHIFT));
}

/* What the guest sees through its memslots is every page it wrote, nothing else. */
static void check_guest_view(struct fake_vm *vm)
{
	struct mm *mm = &vm->env.mm;

	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++) {
		const uint64_t *w = guest_page(vm, g);

		CHECKF(w[0] == g && w[1] == vm->gen[g], "gpfn %#x through its memslot: %#llx/%#llx, want %#x/%#llx",
		       g, (unsigned long long)w[0], (unsigned long long)w[1], g, (unsigned long long)vm->gen[g]);
		CHECK(mm__view_hva(mm, (uint64_t)g << MM_PAGE_SHIFT) == (void *)w);
	}
	vm->steps_checked++;
}

/* The guest runs between steps: it writes a new generation into some pages. */
static void guest_runs(struct fake_vm *vm)
{
	struct mm *mm = &vm->env.mm;

	for (int i = 0; i < 64; i++) {
		gpfn_t g = (gpfn_t)(tu_splitmix64(&vm->rng) % mm->map.nr_gpfns);
		uint64_t *w = guest_page(vm, g);

		vm->gen[g] = tu_splitmix64(&vm->rng);
		w[1] = vm->gen[g];
		vm->touches++;
	}
}

static int fake_pause(void *ctx)
{
	struct fake_vm *vm = ctx;
	struct mm *mm = &vm->env.mm;

	/* The previous step's windows were fixed after its resume: every region not marked stale
	 * reads right through the window too. */
	for (uint32_t r = 0; mm->region_view && r < mm->map.nr_regions; r++) {
		if (mm->region_view[r] & MM_VIEW_WINDOW_STALE)
			continue;
		for (uint32_t i = 0; i < MM_PAGEBLOCK_FRAMES; i += 97) {
			gpfn_t g = (r << MM_PAGEBLOCK_ORDER) + i;
			const uint64_t *w = window__gpa_ptr(&mm->win, (uint64_t)g << MM_PAGE_SHIFT);

			CHECKF(w[0] == g && w[1] == vm->gen[g], "region %u (view %#x): window of gpfn %#x is stale",
			       r, mm->region_view[r], g);
		}
	}
	return dc_pause(&vm->dc);
}

static void fake_resume(void *ctx)
{
	struct fake_vm *vm = ctx;

	dc_resume(&vm->dc);
	check_guest_view(vm);
	guest_runs(vm);
}

static void vm_create(struct fake_vm *vm, uint64_t slack_mb, uint64_t seed)
{
	struct mm_config cfg = { .guest_bytes = 64 * MiB, .slack_bytes = slack_mb * MiB, .prefault = true,
				 .borrow_capacity_bytes = 64 * MiB, .aging = AGING_DEFAULTS };
	struct mm *mm;

	memset(vm, 0, sizeof(*vm));
	cfg.aging.age = 0.9;
	cfg.aging.seed = seed;
	dc_create_cfg(&vm->env, &cfg);
	mm = &vm->env.mm;
	vm->rng = seed;
	vm->slot = calloc(mm->map.nr_regions, sizeof(*vm->slot));
	vm->gen = calloc(mm->map.nr_gpfns, sizeof(*vm->gen));
	CHECK(vm->slot && vm->gen);
	dc_sign(&vm->env);
	dc_snapshot(&vm->env);
	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++)
		vm->gen[g] = dc_word(g, 1);
	vm->dc.mm = mm;
}

static struct mm_view_ops fake_view_ops(struct fake_vm *vm)
{
	return (struct mm_view_ops){ .ctx = vm, .serve = fake_serve };
}

static int run(struct fake_vm *vm, enum defrag_algo algo, uint64_t borrow, struct defrag_stats *st)
{
	struct defrag_request req;
	struct mm_step_ops ops = { .pause = fake_pause, .resume = fake_resume, .ctx = vm };
	struct dc_ops saved = vm->dc;
	int ret;

	defrag_request__init(&req);
	req.algo = algo;
	req.borrow_bytes = borrow;
	ret = mm__defrag(&vm->env.mm, &req, &ops, st);
	CHECK_EQ(vm->dc.pauses - saved.pauses, vm->dc.resumes - saved.resumes);
	check_guest_view(vm);
	return ret;
}

/* Undo the guest's writes, detach, and check everything through the window alone. */
static void vm_finish(struct fake_vm *vm)
{
	struct mm *mm = &vm->env.mm;

	for (gpfn_t g = 0; g < mm->map.nr_gpfns; g++)
		guest_page(vm, g)[1] = dc_word(g, 1);
	vm->attached = false;  /* the VM is gone: detaching switches without a pause */
	mm__view_detach(mm);
	CHECK(!mm__view_attached(mm) && !mm->region_view);
	dc_verify_content(&vm->env);
	dc_check_maps(&vm->env);
	free(vm->slot);
	free(vm->gen);
	dc_destroy(&vm->env);
}

static void attach(struct fake_vm *vm, struct mm_view_ops *ops)
{
	char err[256];
	struct mm *mm = &vm->env.mm;
	uint32_t direct = 0;

	*ops = fake_view_ops(vm);
	CHECKF(!mm__view_attach(mm, ops, err, sizeof(err)), "attach: %s", err);
	vm->attached = true;
	CHECK_EQ(vm->serves, mm->map.nr_regions);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++) {
		CHECK(vm->slot[r]);
		direct += !!(mm->region_view[r] & MM_VIEW_DIRECT);
		CHECK_EQ(!!(mm->region_view[r] & MM_VIEW_DIRECT), gpamap__region_in_order(&mm->map, r));
	}
	printf("  attached: %u of %u regions served from the direct map\n", direct, mm->map.nr_regions);
	check_guest_view(vm);
}

static void print_view(const char *what, const struct defrag_stats *st)
{
	dc_print(what, st);
	printf("  %-26s path %s: %llu switches (max %.0f us), %llu demotions, %llu fallbacks, %llu windows "
	       "fixed after resume (%.1f ms)\n", "", st->promote_path, (unsigned long long)st->view_switches,
	       st->view_switch_max_ns / 1e3, (unsigned long long)st->view_demotions,
	       (unsigned long long)st->view_fallbacks, (unsigned long long)st->window_fixes, st->window_fix_ns / 1e6);
}

/* Planned and Linux algorithms promote by switching views; re-aging demotes; the guest's
 * writes all survive. */
static void test_promote_and_demote(enum defrag_algo algo, uint64_t slack_mb, uint64_t borrow, uint64_t seed)
{
	struct fake_vm vm;
	struct mm_view_ops ops;
	struct defrag_stats st;
	struct mm *mm;
	uint64_t serves;

	vm_create(&vm, slack_mb, seed);
	mm = &vm.env.mm;
	attach(&vm, &ops);
	serves = vm.serves;
	CHECKF(run(&vm, algo, borrow, &st) == 0, "defrag: %s", st.error_msg);
	print_view(defrag_algo__name(algo), &st);
	CHECK(!strcmp(st.promote_path, "memslot"));
	CHECK_EQ(st.regions_backed_2m, mm->map.nr_regions);
	CHECK(st.view_switches > 0 && st.view_switches == vm.serves - serves);
	if (borrow == DEFRAG_BORROW_AUTO)
		CHECK(st.borrowed_peak_bytes > 0);
	CHECK_EQ(st.remaps_2m, 0);         /* no window remap under a pause */
	CHECK(st.window_fixes > 0);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		CHECKF(mm->region_view[r] == MM_VIEW_DIRECT, "region %u view %#x after the defrag", r,
		       mm->region_view[r]);
	CHECK_EQ(mm->win.nr_vmas, window__vmas_needed(&mm->map));

	/* Re-age: pages leave regions served from the direct map, which go back to the window. */
	CHECKF(mm__scatter(mm, 3000, seed + 1, &(struct mm_step_ops){ .pause = fake_pause, .resume = fake_resume,
		.ctx = &vm }, NULL, &st) == 0, "scatter: %s", st.error_msg);
	CHECK(st.view_demotions > 0);
	printf("  re-aged: %llu demotions\n", (unsigned long long)st.view_demotions);
	for (uint32_t r = 0; r < mm->map.nr_regions; r++)
		CHECK_EQ(!!(mm->region_view[r] & MM_VIEW_DIRECT), gpamap__region_in_order(&mm->map, r));
	check_guest_view(&vm);
	CHECKF(run(&vm, algo, borrow, &st) == 0, "second defrag: %s", st.error_msg);
	CHECK_EQ(st.regions_backed_2m, mm->map.nr_regions);
	printf("  %u steps checked, %llu guest writes\n", (unsigned)vm.steps_checked, (unsigned long long)vm.touches);
	vm_finish(&vm);
}

/* A failed switch falls back to the window remap; a failed demotion stops the move: no data lost. */
static void test_failed_switch(uint64_t seed)
{
	struct fake_vm vm;
	struct mm_view_ops ops;
	struct defrag_stats st;
	struct mm *mm;
	int ret;

	vm_create(&vm, 4, seed);
	mm = &vm.env.mm;
	attach(&vm, &ops);
	mm->fault_inject.countdown[MM_FAULT_VIEW] = 5;
	CHECKF(run(&vm, DEFRAG_ALGO_PLANNED, DEFRAG_BORROW_OFF, &st) == 0, "defrag: %s", st.error_msg);
	print_view("planned, switch 5 fails", &st);
	CHECK_EQ(mm->fault_inject.hits[MM_FAULT_VIEW], 1);
	CHECK_EQ(st.view_fallbacks, 1);
	CHECK_EQ(st.remaps_2m, 1);
	CHECK_EQ(st.regions_backed_2m, mm->map.nr_regions);

	mm->fault_inject.countdown[MM_FAULT_VIEW] = 2;
	ret = mm__scatter(mm, 3000, seed + 2, &(struct mm_step_ops){ .pause = fake_pause, .resume = fake_resume,
		.ctx = &vm }, NULL, &st);
	CHECKF(ret < 0 && strstr(st.error_msg, "back to the window failed"), "scatter: %d %s", ret, st.error_msg);
	printf("  demotion failure: %s\n", st.error_msg);
	check_guest_view(&vm);
	CHECKF(run(&vm, DEFRAG_ALGO_PLANNED, DEFRAG_BORROW_AUTO, &st) == 0, "next defrag: %s", st.error_msg);
	CHECK_EQ(st.regions_backed_2m, mm->map.nr_regions);
	vm_finish(&vm);
}

int main(int argc, char **argv)
{
	tu_seed = tu_base_seed(argc, argv, 0x5107);
	setvbuf(stdout, NULL, _IOLBF, 0);
	tu_case = "planned, borrow off";
	test_promote_and_demote(DEFRAG_ALGO_PLANNED, 4, DEFRAG_BORROW_OFF, tu_seed);
	tu_case = "planned, borrow auto";
	test_promote_and_demote(DEFRAG_ALGO_PLANNED, 4, DEFRAG_BORROW_AUTO, tu_seed + 10);
	tu_case = "linux";
	test_promote_and_demote(DEFRAG_ALGO_LINUX, 24, DEFRAG_BORROW_OFF, tu_seed + 20);
	tu_case = "failed switch";
	test_failed_switch(tu_seed + 30);
	printf("test_view: ok\n");
	return 0;
}
