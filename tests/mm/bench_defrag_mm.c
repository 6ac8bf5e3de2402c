/* bench_defrag_mm.c: the defrag engine alone (no KVM): each algorithm on the same aged pool, vs memcpy and MADV_COLLAPSE. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/defrag.h"
#include "mm/util.h"
#include "mm/view.h"
#include "vmm/bench/defrag_baseline.h"

#define SKIP 77

struct variant {
	const char *name;
	enum defrag_mode mode;
	enum defrag_algo algo;
	uint32_t flags;
	const char *what;
	uint64_t borrow;
};

static const struct variant variants[] = {
	{ "planned", DEFRAG_FULL, DEFRAG_ALGO_PLANNED, 0,
	  "planned, borrowing (auto): scattered regions copied whole into borrowed blocks", DEFRAG_BORROW_AUTO },
	{ "planned-noborrow", DEFRAG_FULL, DEFRAG_ALGO_PLANNED, 0,
	  "planned, --borrow off: region by region (fewest blockers first), each copied whole", 0 },
	{ "planned-4k", DEFRAG_FULL, DEFRAG_ALGO_PLANNED, DEFRAG_F_NO_FAST_PATH,
	  "planned, region by region, every page a 4 KiB move (no whole-region copy)", 0 },
	{ "linux", DEFRAG_FULL, DEFRAG_ALGO_LINUX, 0,
	  "Linux: compact_zone(order -1), then khugepaged collapse (+ order-9 direct compaction)", 0 },
	{ "linux-collapse", DEFRAG_COLLAPSE, DEFRAG_ALGO_LINUX, 0,
	  "Linux: khugepaged collapse only (direct compaction when out of blocks)", 0 },
	{ "planned-compact", DEFRAG_COMPACT, DEFRAG_ALGO_PLANNED, 0,
	  "planned full compaction: evacuate the cheapest pageblocks", 0 },
	{ "linux-compact", DEFRAG_COMPACT, DEFRAG_ALGO_LINUX, 0,
	  "Linux full compaction (compact_memory)", 0 },
};

static uint64_t borrow_mem_available(void)
{
	unsigned long long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return (uint64_t)kb << 10;
}

static int noop_pause(void *ctx)
{
	(void)ctx;
	return 0;
}

static void noop_resume(void *ctx)
{
	(void)ctx;
}

/* --memslot-model: a stand-in for the VMM's per-region memslots, each switch busy for a fixed time
 * (KVM_SET_USER_MEMORY_REGION delete + create measured 93-300 us per region on kvm_pvm). */
static int model_serve(void *ctx, uint32_t region, void *hva)
{
	const uint64_t *cost_ns = ctx;
	uint64_t t0 = mm__now_ns();

	(void)region;
	(void)hva;
	while (mm__now_ns() - t0 < *cost_ns)
		;
	return 0;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	switch (*end) {
	case 'k': case 'K': v *= 1024; break;
	case 'm': case 'M': v *= 1024 * 1024; break;
	case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
	default: break;
	}
	return (uint64_t)v;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* memcpy of n random 4 KiB frames to other random frames of the pool's direct map. */
static double memcpy_reference(struct mm *mm, uint64_t n, bool pool_copy)
{
	uint64_t x = 88172645463325252ULL;
	uint32_t nf = mm->pool.nr_frames;
	double t0 = now_s();

	for (uint64_t i = 0; i < n; i++) {
		frame_t a, b;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		a = (frame_t)(x % nf);
		b = (frame_t)((x >> 32) % nf);
		if (!pool__block_present(&mm->pool, a >> MM_PAGEBLOCK_ORDER) ||
		    !pool__block_present(&mm->pool, b >> MM_PAGEBLOCK_ORDER)) {
			i--; /* absent blocks (given back) are not mapped */
			continue;
		}
		if (pool_copy)
			pool__copy_frame_nofence(&mm->pool, a, b);
		else
			memcpy(pool__frame_ptr(&mm->pool, a), pool__frame_ptr(&mm->pool, b), MM_PAGE_SIZE);
	}
	if (pool_copy)
		pool__copy_fence();
	return now_s() - t0;
}

/* MADV_COLLAPSE of the guest's size of 4K anon memory: the first run (cold: fresh huge pages),
 * then the best of two more (warm), as a user would compare. */
static void madv_collapse_reference(uint64_t bytes, double *cold, double *warm)
{
	uint64_t collapsed = 0;
	char err[256];
	double t;

	*cold = *warm = 0;
	if (baseline__madv_collapse(bytes, cold, &collapsed, err, sizeof(err))) {
		printf("MADV_COLLAPSE reference: %s\n", err);
		return;
	}
	for (int i = 0; i < 2; i++)
		if (!baseline__madv_collapse(bytes, &t, &collapsed, err, sizeof(err)) && (!*warm || t < *warm))
			*warm = t;
	printf("MADV_COLLAPSE of %llu MiB of 4K anon: cold %.3f s, warm %.3f s (%llu MiB collapsed), MemAvailable %llu MiB\n",
	       (unsigned long long)(bytes >> 20), *cold, *warm, (unsigned long long)(collapsed >> 20),
	       (unsigned long long)(borrow_mem_available() >> 20));
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: bench_defrag_mm [--mem SIZE] [--slack SIZE] [--age A] [--seed S] [--pause-us N]\n"
		   "                       [--run NAME]... [--list] [--no-hugepage-advice] [--trace FILE]\n"
		   "                       [--memslot-model US]\n"
		   "Builds an aged pool (default 1G guest, 62M slack = 6 %%, age 0.9, seed 7) afresh for each run\n"
		   "and defragments it with no-op pause hooks: the engine's own cost, against MADV_COLLAPSE of\n"
		   "the same size (cold, then warm) measured first. Default runs: planned (borrowing),\n"
		   "planned-noborrow, planned-4k. --no-hugepage-advice is an experiment: the window's\n"
		   "remaps skip madvise(MADV_HUGEPAGE) (its VMA count model no longer holds then).\n"
		   "--trace FILE writes every run's trace events (mm/trace.h) to FILE, one a line.\n"
		   "--memslot-model US attaches a stand-in for the VMM's per-region memslots (promote path\n"
		   "memslot) whose every switch is busy for US microseconds: the pause without KVM's exits.\n");
}

#define NR_VARIANTS (sizeof(variants) / sizeof(variants[0]))

struct bench_opts {
	struct mm_config cfg;
	uint64_t pause_ns;
	uint64_t memslot_model_ns;      /* 0: no view attached, promote path remap */
	bool memslot_model, no_advice, populate;
	const char *trace_path;
	bool chosen[NR_VARIANTS];
};

/* Seconds the same work takes done plainly: memcpy and pool copy of the pages a run copied, and
 * MADV_COLLAPSE of the guest's size (cold, warm). */
struct reference_times {
	double memcpy_s, pool_copy_s, collapse_cold_s, collapse_warm_s;
};

/* -1: go on; else the exit code (--list, --help, bad usage). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = {
		{ "mem", required_argument, NULL, 'm' }, { "slack", required_argument, NULL, 's' },
		{ "age", required_argument, NULL, 'a' }, { "seed", required_argument, NULL, 'S' },
		{ "pause-us", required_argument, NULL, 'p' }, { "run", required_argument, NULL, 'r' },
		{ "list", no_argument, NULL, 'l' }, { "no-hugepage-advice", no_argument, NULL, 'A' },
		{ "trace", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "populate-remaps", no_argument, NULL, 'P' },
		{ "memslot-model", required_argument, NULL, 'M' }, { 0 },
	};
	struct aging_config ag = AGING_DEFAULTS;
	bool any = false;
	int c;

	*o = (struct bench_opts){ .cfg = { .guest_bytes = 1ULL << 30, .slack_bytes = 62ULL << 20, .prefault = true },
				  .pause_ns = DEFRAG_MAX_PAUSE_NS_DEFAULT };
	ag.age = 0.9;
	ag.seed = 7;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->cfg.guest_bytes = parse_size(optarg); break;
		case 's': o->cfg.slack_bytes = parse_size(optarg); break;
		case 'a': ag.age = strtod(optarg, NULL); break;
		case 'S': ag.seed = strtoull(optarg, NULL, 0); break;
		case 'p': o->pause_ns = strtoull(optarg, NULL, 0) * 1000; break;
		case 'r':
			for (size_t i = 0; i < NR_VARIANTS; i++)
				if (!strcmp(optarg, variants[i].name))
					o->chosen[i] = any = true;
			if (!any) {
				fprintf(stderr, "unknown run '%s' (see --list)\n", optarg);
				return 2;
			}
			break;
		case 'A': o->no_advice = true; break;
		case 'P': o->populate = true; break;
		case 'T': o->trace_path = optarg; break;
		case 'M':
			o->memslot_model = true;
			o->memslot_model_ns = strtoull(optarg, NULL, 0) * 1000;
			break;
		case 'l':
			for (size_t i = 0; i < NR_VARIANTS; i++)
				printf("%-16s %s\n", variants[i].name, variants[i].what);
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!any)
		for (size_t i = 0; i < 3; i++)
			o->chosen[i] = true;
	o->cfg.aging = ag;
	return -1;
}

/* The scattered guest needs about one VMA per scattered page: 0, or SKIP with the sysctl to run. */
static int check_map_count(const struct mm_config *cfg)
{
	uint64_t needed = (uint64_t)(cfg->aging.age * (double)(cfg->guest_bytes >> MM_PAGE_SHIFT)) + 1024;
	struct vma_budget vb;

	if (vma_budget__read(&vb) == 0 && needed + vb.in_use + VMA_BUDGET_HEADROOM > vb.max_map_count) {
		uint64_t want = ((needed + vb.in_use + VMA_BUDGET_HEADROOM) * 5 / 4 + 65535) & ~65535ULL;

		printf("SKIP: a %.2f-aged %llu MiB guest needs about %llu mappings, vm.max_map_count is %llu.\n"
		       "Run: sysctl -w vm.max_map_count=%llu\n",
		       cfg->aging.age, (unsigned long long)(cfg->guest_bytes >> 20), (unsigned long long)needed,
		       (unsigned long long)vb.max_map_count, (unsigned long long)want);
		return SKIP;
	}
	return 0;
}

/* What a run's time went on: wall, copy speed against memcpy, borrowing, pauses. */
static void print_run_time(const struct defrag_stats *st, const struct mm *mm, const struct mm_stat *after,
			   const struct reference_times *ref)
{
	double gib = (double)(st->pages_copied << MM_PAGE_SHIFT) / (double)(1ULL << 30);
	double t_memcpy = ref->memcpy_s, t_pool = ref->pool_copy_s;
	double collapse_cold = ref->collapse_cold_s, collapse_warm = ref->collapse_warm_s;

	printf("  wall %.3f s (plan %.1f ms), %.3f GiB copied = %.2f GiB/s; memcpy of the same %.3f s "
	       "(%.2f GiB/s), pool copy (%s) %.3f s\n",
	       st->wall_ns / 1e9, st->plan_ns / 1e6, gib, gib / (st->wall_ns / 1e9), t_memcpy,
	       t_memcpy > 0 ? gib / t_memcpy : 0, mm->pool.copy_impl, t_pool);
	printf("  defrag / warm MADV_COLLAPSE %.2f (cold %.2f); borrowed peak %llu MiB (limit %llu MiB), "
	       "given back %llu MiB, pool RSS after %llu MiB = guest + slack %+lld MiB; promote path %s%s%s\n",
	       collapse_warm > 0 ? st->wall_ns / 1e9 / collapse_warm : 0.0,
	       collapse_cold > 0 ? st->wall_ns / 1e9 / collapse_cold : 0.0,
	       (unsigned long long)(st->borrowed_peak_bytes >> 20), (unsigned long long)(st->borrow_limit_bytes >> 20),
	       (unsigned long long)(st->given_back_bytes >> 20), (unsigned long long)(st->pool_rss_after_bytes >> 20),
	       (long long)(st->pool_rss_after_bytes >> 20) - (long long)((after->guest_bytes + after->slack_bytes) >> 20),
	       st->promote_path ? st->promote_path : "?", st->borrow_note[0] ? "; " : "", st->borrow_note);
	printf("  borrowing %.3f s, giving back %.3f s (outside pauses but for ballast moves)\n",
	       st->borrow_ns / 1e9, st->give_back_ns / 1e9);
}

/* What a run did: copies, remaps, pauses, regions, Linux-style vmstat. */
static void print_run_work(const struct defrag_stats *st, const struct mm_stat *before, const struct mm_stat *after)
{
	printf("  copies %llu (guest %llu, of which whole-region %llu, temporary %llu; ballast %llu); "
	       "%llu guest pages moved\n",
	       (unsigned long long)st->pages_copied, (unsigned long long)st->copies_guest,
	       (unsigned long long)st->copies_bulk, (unsigned long long)st->copies_temp,
	       (unsigned long long)st->copies_ballast, (unsigned long long)st->guest_pages_moved);
	printf("  copies per promoted page %.3f, per moved guest page %.3f\n",
	       st->copies_per_promoted_page, st->copies_per_moved_page);
	printf("  4 KiB remaps %llu, 2 MiB remaps %llu, steps %llu, pause max %.0f us, p99 %.0f us, "
	       "total %.3f s\n",
	       (unsigned long long)st->pages_moved_4k, (unsigned long long)st->remaps_2m,
	       (unsigned long long)st->steps, st->pause_max_ns / 1e3, st->pause_p99_ns / 1e3,
	       st->pause_total_ns / 1e9);
	printf("  time in: guest copies %.3f s, 4 KiB remaps %.3f s (%.2f us each), 2 MiB remaps %.3f s "
	       "(%.0f us each), the rest %.3f s\n", st->copy_ns / 1e9, st->remap_4k_ns / 1e9,
	       st->pages_moved_4k ? st->remap_4k_ns / 1e3 / st->pages_moved_4k : 0.0, st->remap_2m_ns / 1e9,
	       st->remaps_2m ? st->remap_2m_ns / 1e3 / st->remaps_2m : 0.0,
	       (st->wall_ns - st->copy_ns - st->remap_4k_ns - st->remap_2m_ns) / 1e9);
	if (st->view_switches)
		printf("  memslot model: %llu switches (%llu demotions, %llu fallbacks), windows fixed after resume "
		       "%llu\n", (unsigned long long)st->view_switches, (unsigned long long)st->view_demotions,
		       (unsigned long long)st->view_fallbacks, (unsigned long long)st->window_fixes);
	printf("  pause histogram (us: steps):");
	for (int b = 0; b < DEFRAG_PAUSE_HIST; b++)
		if (st->pause_hist[b])
			printf(" %llu-%llu: %llu", (unsigned long long)(1ULL << b) / 1000,
			       (unsigned long long)(2ULL << b) / 1000, (unsigned long long)st->pause_hist[b]);
	printf("\n");
	printf("  regions: promoted %u (whole copy %u) + zero-copy %u, failed %u; backed 2M %u -> %u of %u "
	       "(achievable %u, blocked %u); VMAs %llu -> %llu\n",
	       st->regions_promoted, st->regions_fast_path, st->regions_zero_copy, st->regions_failed,
	       before->regions_backed_2m, after->regions_backed_2m, after->nr_regions, st->regions_achievable,
	       st->regions_blocked, (unsigned long long)before->vmas, (unsigned long long)after->vmas);
	printf("  vmstat: compact_stall %llu success %llu fail %llu, migrate_scanned %llu free_scanned %llu "
	       "isolated %llu, pgmigrate %llu, thp_collapse_alloc %llu failed %llu\n",
	       (unsigned long long)st->delta.compact_stall, (unsigned long long)st->delta.compact_success,
	       (unsigned long long)st->delta.compact_fail, (unsigned long long)st->delta.compact_migrate_scanned,
	       (unsigned long long)st->delta.compact_free_scanned, (unsigned long long)st->delta.compact_isolated,
	       (unsigned long long)st->delta.pgmigrate_success, (unsigned long long)st->delta.thp_collapse_alloc,
	       (unsigned long long)st->delta.thp_collapse_alloc_failed);
}

/* One variant on a freshly aged pool. 0, or SKIP when the pool cannot be made. */
static int run_variant(const struct variant *v, const struct bench_opts *o, struct mm_trace *trace,
		       struct reference_times ref)
{
	struct mm_step_ops ops = { .pause = noop_pause, .resume = noop_resume };
	/* attached for the whole run: the mm keeps a pointer to it */
	struct mm_view_ops view = { .ctx = (void *)&o->memslot_model_ns, .serve = model_serve };
	struct defrag_request req;
	struct defrag_stats st;
	struct mm_stat before, after;
	struct mm mm;
	char err[512];
	int ret;

	ret = mm__create(&mm, &o->cfg, err, sizeof(err));
	if (ret) {
		printf("SKIP: mm__create: %s\n", err);
		return SKIP;
	}
	mm__stat(&mm, &before);
	if (o->no_advice) /* experiment: window remaps without madvise(MADV_HUGEPAGE) */
		mm.win.hugepage_advice = false;
	mm.win.populate_remaps = o->populate; /* experiment: MAP_POPULATE on every remap */
	if (o->memslot_model) {
		if (mm__view_attach(&mm, &view, err, sizeof(err))) {
			printf("SKIP: memslot model: %s\n", err);
			mm__destroy(&mm);
			return SKIP;
		}
	}
	defrag_request__init(&req);
	req.mode = v->mode;
	req.algo = v->algo;
	req.order = -1;
	req.flags = v->flags;
	req.max_pause_ns = o->pause_ns;
	req.borrow_bytes = v->borrow;
	mm.trace = trace->file ? trace : NULL;
	ret = mm__defrag(&mm, &req, &ops, &st);
	mm.trace = NULL;
	if (o->memslot_model)
		mm__view_detach(&mm);
	mm__stat(&mm, &after);
	ref.memcpy_s = memcpy_reference(&mm, st.pages_copied, false);
	ref.pool_copy_s = memcpy_reference(&mm, st.pages_copied, true);
	printf("\n%s: %s%s%s\n", v->name, v->what, ret ? ": FAILED: " : "", ret ? st.error_msg : "");
	print_run_time(&st, &mm, &after, &ref);
	print_run_work(&st, &before, &after);
	fflush(stdout);
	mm__destroy(&mm);
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	struct mm_trace trace = { 0 };
	struct reference_times ref = { 0 };
	int ret;

	ret = parse_args(argc, argv, &o);
	if (ret >= 0)
		return ret;
	ret = check_map_count(&o.cfg);
	if (ret)
		return ret;

	o.cfg.borrow_capacity_bytes = o.cfg.guest_bytes;
	madv_collapse_reference(o.cfg.guest_bytes, &ref.collapse_cold_s, &ref.collapse_warm_s);
	printf("defrag engine, %llu MiB guest + %llu MiB slack, age %.2f, seed %llu, pause budget %llu us, "
	       "no-op pause hooks%s\n", (unsigned long long)(o.cfg.guest_bytes >> 20),
	       (unsigned long long)(o.cfg.slack_bytes >> 20), o.cfg.aging.age, (unsigned long long)o.cfg.aging.seed,
	       (unsigned long long)(o.pause_ns / 1000), o.no_advice ? ", no MADV_HUGEPAGE on remaps" : "");
	if (o.trace_path) {
		char terr[256];

		if (mm_trace__open(&trace, o.trace_path, terr, sizeof(terr))) {
			fprintf(stderr, "%s\n", terr);
			return 2;
		}
	}
	for (size_t i = 0; i < NR_VARIANTS; i++) {
		if (!o.chosen[i])
			continue;
		if (run_variant(&variants[i], &o, &trace, ref))
			return SKIP;
	}
	return mm_trace__close(&trace) ? 1 : 0;
}
