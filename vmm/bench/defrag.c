/* defrag.c: `vmcompact bench defrag` and `bench gups`: defrag cost and payoff under a live guest. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/bench/defrag_baseline.h"
#include "vmm/bench/guest.h"
#include "vmm/bench/bench.h"
#include "vmm/json.h"
#include "vmm/util.h"

static const char bench_defrag__usage[] =
"Usage: vmcompact bench defrag [OPTIONS]\n"
"Boot a guest running GUPS on an aged pool, measure GUPS, defragment the guest's backing while\n"
"it runs (vCPUs paused per step), measure GUPS again. In the same run, time memcpy of the same\n"
"bytes (the physical limit) and Linux's MADV_COLLAPSE of the same amount of 4K-backed anonymous\n"
"memory (what a user would pick instead).\n"
"\n"
"Options:\n"
"  --mem SIZE        guest RAM (default 1G)\n"
"  --age FRACTION    share of 2 MiB regions scattered (default 0.9)\n"
"  --seed N          layout seed (default 7)\n"
"  --slack SIZE|N%   pool slack (default 6%)\n"
"  --cpus N          vCPUs running GUPS (default 1)\n"
BENCH_GUEST_USAGE_MEMSLOTS
"  --algo A          planned, linux or both (default both)\n"
"  --max-pause-us N  pause budget per defrag step (default 1000)\n"
"  --gups-ms MS      length of each GUPS measurement window (default 1000)\n"
"  --gups-windows N  GUPS is the median of N windows after a warm-up (default 5)\n"
"  --borrow B        auto (default), off or a size: 2 MiB blocks the planned defrag may borrow\n"
"  --no-linear       skip the linear-layout guest (the GUPS ceiling, gups_over_linear)\n"
"  --collapse-runs N MADV_COLLAPSE reference runs: the first is reported as cold, the fastest\n"
"                    as warm (default 3)\n"
"  --no-baseline     skip the memcpy and MADV_COLLAPSE references\n"
"  --json            machine-readable result on stdout\n"
"  --trace FILE      write the defrag engine's trace events (mm/trace.h) to FILE, one a line\n"
"\n"
"A scattered 1 GiB guest needs about 236k mappings: raise vm.max_map_count first\n"
"(scripts/setup.sh --raise-map-count); vmcompact refuses with the exact sysctl otherwise.\n";

static const char bench_gups__usage[] =
"Usage: vmcompact bench gups [OPTIONS]\n"
"Guest GUPS on a linear pool (--age 0) and on an aged one, same size and seed, no defrag;\n"
"also prints the mm/ metadata share of guest RAM.\n"
"\n"
"Options:\n"
"  --mem SIZE        guest RAM (default 1G)\n"
"  --age FRACTION    the aged layout (default 0.9)\n"
"  --seed N          layout seed (default 7)\n"
"  --slack SIZE|N%   pool slack (default 6%)\n"
"  --cpus N          vCPUs running GUPS (default 1)\n"
BENCH_GUEST_USAGE_MEMSLOTS
"  --gups-ms MS      measurement window; GUPS is the median of 3 (default 1000)\n"
"  --json            machine-readable result on stdout\n";

struct bench_opts {
	struct bench_guest guest;
	int algos;                 /* bit per enum defrag_algo */
	uint64_t max_pause_ns;
	uint64_t gups_ms;
	unsigned gups_windows;     /* GUPS = median of this many windows */
	uint64_t borrow_bytes;     /* defrag_request.borrow_bytes */
	unsigned collapse_runs;    /* MADV_COLLAPSE reference runs */
	bool linear;               /* also measure the linear layout (the ceiling) */
	bool baseline;
	bool json;
	const char *trace_path;    /* --trace FILE (bench defrag) */
	struct mm_trace *trace;    /* open while the defrags run */
};

/* One measured VM: layout, GUPS and KVM view before and after (defrag optional). */
struct bench_result {
	int rc;
	char err[1024];
	enum defrag_algo algo;
	bool defragged;
	struct mm_stat before, after;
	struct kvm_pages kvm_before, kvm_after;
	double gups_before, gups_after;
	struct defrag_stats st;
	uint64_t pause_vm_max_ns;
	int exit_code;
	uint64_t metadata_bytes;
};

enum { OPT_ALGO = BENCH_OPT_OWN, OPT_PAUSE, OPT_GUPS_MS, OPT_NO_BASELINE, OPT_JSON, OPT_TRACE, OPT_WINDOWS,
       OPT_BORROW, OPT_NO_LINEAR, OPT_COLLAPSE_RUNS };

static const struct option bench_longopts[] = {
	BENCH_GUEST_LONGOPTS,
	{ "algo", required_argument, NULL, OPT_ALGO },
	{ "max-pause-us", required_argument, NULL, OPT_PAUSE },
	{ "gups-ms", required_argument, NULL, OPT_GUPS_MS },
	{ "no-baseline", no_argument, NULL, OPT_NO_BASELINE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "trace", required_argument, NULL, OPT_TRACE },
	{ "gups-windows", required_argument, NULL, OPT_WINDOWS },
	{ "borrow", required_argument, NULL, OPT_BORROW },
	{ "no-linear", no_argument, NULL, OPT_NO_LINEAR },
	{ "collapse-runs", required_argument, NULL, OPT_COLLAPSE_RUNS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* One of this benchmark's own options (bench_opt_fn). */
static int bench__parse_opt(void *opts, int c, const char *arg)
{
	struct bench_opts *o = opts;
	uint64_t v;

	switch (c) {
	case OPT_ALGO:
		if (!strcmp(arg, "planned"))
			o->algos = 1 << DEFRAG_ALGO_PLANNED;
		else if (!strcmp(arg, "linux"))
			o->algos = 1 << DEFRAG_ALGO_LINUX;
		else if (!strcmp(arg, "both"))
			o->algos = (1 << DEFRAG_ALGO_PLANNED) | (1 << DEFRAG_ALGO_LINUX);
		else
			return -EINVAL;
		return 0;
	case OPT_PAUSE:
		if (util__parse_count(arg, &v) || v < 50 || v > 1000000)
			return -EINVAL;
		o->max_pause_ns = v * 1000;
		return 0;
	case OPT_GUPS_MS:
		if (util__parse_count(arg, &v) || v < 100 || v > 600000)
			return -EINVAL;
		o->gups_ms = v;
		return 0;
	case OPT_NO_BASELINE:
		o->baseline = false;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_TRACE:
		o->trace_path = arg;
		return 0;
	case OPT_WINDOWS:
		if (util__parse_count(arg, &v) || !v || v > 100)
			return -EINVAL;
		o->gups_windows = (unsigned)v;
		return 0;
	case OPT_BORROW:
		return defrag_borrow__parse(arg, &o->borrow_bytes);
	case OPT_NO_LINEAR:
		o->linear = false;
		return 0;
	case OPT_COLLAPSE_RUNS:
		if (util__parse_count(arg, &v) || !v || v > 20)
			return -EINVAL;
		o->collapse_runs = (unsigned)v;
		return 0;
	}
	return -EINVAL;
}

static void bench__defaults(struct bench_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->guest = (struct bench_guest){ .mem_bytes = 1ull << 30, .age = 0.9, .seed = 7, .slack = "6%", .cpus = 1 };
	o->algos = (1 << DEFRAG_ALGO_PLANNED) | (1 << DEFRAG_ALGO_LINUX);
	o->max_pause_ns = DEFRAG_MAX_PAUSE_NS_DEFAULT;
	o->gups_ms = 1000;
	o->gups_windows = 5;
	o->borrow_bytes = DEFRAG_BORROW_AUTO;
	o->collapse_runs = 3;
	o->linear = true;
	o->baseline = true;
}

static int bench__cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* GUPS as the median of o->gups_windows windows of o->gups_ms: one slow window (the host
 * preempting the vCPU) does not decide the figure. 0 if the guest ended. */
static double bench__median_gups(const struct bench_opts *o, struct run_ctx *ctx)
{
	double w[100];
	unsigned n = o->gups_windows ? o->gups_windows : 1;

	for (unsigned i = 0; i < n; i++)
		if ((w[i] = bench_vm__measure_gups(ctx, o->gups_ms)) <= 0)
			return 0;
	qsort(w, n, sizeof(w[0]), bench__cmp_double);
	return n % 2 ? w[n / 2] : (w[n / 2 - 1] + w[n / 2]) / 2;
}

/* Boot, warm up, measure GUPS; optionally defrag and measure again; stop. */
static void bench__one(const struct bench_opts *o, double age, int algo, struct bench_result *res)
{
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	struct defrag_request req;
	struct mm_step_ops ops;

	memset(res, 0, sizeof(*res));
	res->rc = -1;
	if (!ctx) {
		snprintf(res->err, sizeof(res->err), "out of memory");
		return;
	}
	struct bench_guest g = o->guest;

	g.age = age;
	if (bench_guest__run_options(&g, "gups:forever", NULL, &ctx->opts, res->err, sizeof(res->err)))
		goto out;
	if (bench_vm__boot(ctx, res->err, sizeof(res->err)))
		goto out;
	res->metadata_bytes = ctx->mem_start.metadata_bytes;
	/* Warm-up: the guest touches its working set, KVM builds its mappings. */
	if (!bench_vm__sleep(ctx, 1000))
		goto guest_ended;
	res->gups_before = bench__median_gups(o, ctx);
	mm__stat(&ctx->mm, &res->before);
	kvm_stats__read(&ctx->vm, &res->kvm_before);
	if (algo >= 0) {
		defrag_request__init(&req);
		req.mode = DEFRAG_FULL;
		req.algo = (enum defrag_algo)algo;
		req.max_pause_ns = o->max_pause_ns;
		req.borrow_bytes = o->borrow_bytes;
		run__step_ops(ctx, &ops);
		res->algo = (enum defrag_algo)algo;
		res->defragged = true;
		ctx->mm.trace = o->trace;
		if (mm__defrag(&ctx->mm, &req, &ops, &res->st) && res->st.error != -ECANCELED)
			fprintf(stderr, "vmcompact bench: defrag: %s\n", res->st.error_msg);
		ctx->mm.trace = NULL;
		/* Let the guest touch everything again so KVM rebuilds its entries, now 2 MiB. */
		if (!bench_vm__sleep(ctx, 1000))
			goto guest_ended;
		res->gups_after = bench__median_gups(o, ctx);
	}
	mm__stat(&ctx->mm, &res->after);
	kvm_stats__read(&ctx->vm, &res->kvm_after);
	res->pause_vm_max_ns = ctx->vm.pause.max_ns;
	res->exit_code = bench_vm__finish(ctx, 5000);
	res->rc = res->exit_code ? -1 : 0;
	if (res->exit_code)
		snprintf(res->err, sizeof(res->err), "guest exit status %d%s%s", res->exit_code,
			 ctx->vm.failed ? ": " : "", ctx->vm.failed ? ctx->vm.fail_msg : "");
	free(ctx);
	return;
guest_ended:
	snprintf(res->err, sizeof(res->err), "the guest ended early: %s",
		 ctx->vm.failed ? ctx->vm.fail_msg : "see its console output");
	bench_vm__finish(ctx, 1000);
out:
	free(ctx);
}

static double cov(const struct kvm_pages *k)
{
	return kvm_pages__coverage_2m(k);
}

static double of_achievable(const struct mm_stat *s)
{
	return s->regions_achievable ? (double)s->regions_backed_2m / s->regions_achievable : 0;
}

/* What a user would pick instead, measured in the same run. */
struct bench_baseline {
	double memcpy_s;
	double collapse_cold_s, collapse_warm_s;  /* first MADV_COLLAPSE run; the fastest one */
	uint64_t collapsed;                        /* bytes the fastest run collapsed */
	uint64_t mem_available;                    /* MemAvailable before the guests booted */
	char err[512], cerr[512];
};

static double bench__ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static struct json_object *bench__result_json(const struct bench_opts *o, const struct bench_result *r,
					      const struct bench_baseline *b, double gups_linear)
{
	struct json_object *j = json_object_new_object();
	double secs = r->st.wall_ns / 1e9;
	char buf[32];

	json__add_str(j, "algo", defrag_algo__name(r->algo));
	json__add(j, "ok", json_object_new_boolean(r->rc == 0));
	json__add(j, "error", r->rc ? json_object_new_string(r->err) : NULL);
	json__add(j, "defrag", mm_json__defrag_stats(&r->st));
	json__add(j, "defrag_seconds", json_object_new_double(secs));
	json__add(j, "defrag_gib_per_sec", json_object_new_double(
		bench__ratio((double)r->before.guest_bytes / (1 << 30), secs)));
	json__add_str(j, "borrow", defrag_borrow__name(o->borrow_bytes, buf, sizeof(buf)));
	json__add_str(j, "promote_path", r->st.promote_path ? r->st.promote_path : "remap");
	json__add_u64(j, "guest_bytes", r->before.guest_bytes);
	json__add_u64(j, "slack_bytes", r->before.slack_bytes);
	json__add_u64(j, "borrowed_peak_bytes", r->st.borrowed_peak_bytes);
	json__add_u64(j, "pool_rss_after_bytes", r->st.pool_rss_after_bytes);
	json__add(j, "pause_max_us", json_object_new_double(r->st.pause_max_ns / 1e3));
	json__add(j, "pause_p99_us", json_object_new_double(r->st.pause_p99_ns / 1e3));
	json__add(j, "backing_2m_before", json_object_new_double(r->before.backing_2m));
	json__add(j, "backing_2m_after", json_object_new_double(r->after.backing_2m));
	json__add(j, "backing_2m_achievable", json_object_new_double(r->after.backing_2m_achievable));
	json__add(j, "backing_2m_of_achievable_after", json_object_new_double(of_achievable(&r->after)));
	json__add(j, "kvm_before", mm_json__kvm(&r->kvm_before));
	json__add(j, "kvm_after", mm_json__kvm(&r->kvm_after));
	json__add(j, "gups_before", json_object_new_double(r->gups_before));
	json__add(j, "gups_after", json_object_new_double(r->gups_after));
	json__add(j, "gups_ratio", json_object_new_double(bench__ratio(r->gups_after, r->gups_before)));
	json__add(j, "gups_over_linear", json_object_new_double(bench__ratio(r->gups_after, gups_linear)));
	json__add(j, "defrag_over_memcpy", json_object_new_double(bench__ratio(secs, b->memcpy_s)));
	json__add(j, "defrag_over_madv_collapse", json_object_new_double(bench__ratio(secs, b->collapse_warm_s)));
	json__add(j, "defrag_over_madv_collapse_warm", json_object_new_double(bench__ratio(secs, b->collapse_warm_s)));
	json__add(j, "defrag_over_madv_collapse_cold", json_object_new_double(bench__ratio(secs, b->collapse_cold_s)));
	return j;
}

static void bench__print_row(const char *label, const struct bench_result *res, int n,
			     void (*cell)(const struct bench_result *, char *, size_t))
{
	printf("  %-34s", label);
	for (int i = 0; i < n; i++) {
		char buf[64];

		if (res[i].rc && !res[i].defragged)
			snprintf(buf, sizeof(buf), "-");
		else
			cell(&res[i], buf, sizeof(buf));
		printf(" %20s", buf);
	}
	printf("\n");
}

#define CELL(name, fmt, ...) \
	static void cell_##name(const struct bench_result *r, char *b, size_t n) { snprintf(b, n, fmt, __VA_ARGS__); }
CELL(secs, "%.3f", r->st.wall_ns / 1e9)
CELL(gibs, "%.2f", r->st.wall_ns ? (double)r->before.guest_bytes / (1 << 30) / (r->st.wall_ns / 1e9) : 0)
CELL(copies, "%.3f", r->st.copies_per_promoted_page)
CELL(copies_moved, "%.3f", r->st.copies_per_moved_page)
CELL(moves4k, "%llu", (unsigned long long)r->st.pages_moved_4k)
CELL(remaps2m, "%llu", (unsigned long long)r->st.remaps_2m)
CELL(regions, "%u+%u zc", r->st.regions_promoted, r->st.regions_zero_copy)
CELL(borrow, "%.0f / %.0f", r->st.borrowed_peak_bytes / 1048576.0, r->st.pool_rss_after_bytes / 1048576.0)
CELL(steps, "%llu", (unsigned long long)r->st.steps)
CELL(pause, "%.0f / %.0f", r->st.pause_max_ns / 1e3, r->st.pause_p99_ns / 1e3)
CELL(backing, "%.3f -> %.3f", r->before.backing_2m, r->after.backing_2m)
CELL(achiev, "%.3f (%.1f%%)", r->after.backing_2m_achievable, 100 * of_achievable(&r->after))
CELL(kvm, "%.3f -> %.3f", cov(&r->kvm_before), cov(&r->kvm_after))
CELL(p2m, "%llu -> %llu", (unsigned long long)r->kvm_before.pages_2m, (unsigned long long)r->kvm_after.pages_2m)
CELL(gups, "%.1f -> %.1f", r->gups_before / 1e6, r->gups_after / 1e6)
CELL(gups_ratio, "%.2fx", r->gups_before > 0 ? r->gups_after / r->gups_before : 0)
CELL(ns, "%.2f -> %.2f", r->gups_before > 0 ? 1e9 / r->gups_before : 0, r->gups_after > 0 ? 1e9 / r->gups_after : 0)
CELL(status, "%s", r->rc ? "FAILED" : "ok")

static uint64_t bench__mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

/* memcpy once; MADV_COLLAPSE o->collapse_runs times: the first run meets whatever the host
 * has ready (cold when it reclaimed its free huge pages), the fastest is the warm figure. */
static void bench__baseline(const struct bench_opts *o, struct bench_baseline *b)
{
	if (baseline__memcpy_4k(o->guest.mem_bytes, o->guest.seed, &b->memcpy_s, b->err, sizeof(b->err)))
		fprintf(stderr, "vmcompact bench defrag: %s\n", b->err);
	for (unsigned i = 0; i < o->collapse_runs; i++) {
		double secs = 0;
		uint64_t bytes = 0;

		if (baseline__madv_collapse(o->guest.mem_bytes, &secs, &bytes, b->cerr, sizeof(b->cerr))) {
			fprintf(stderr, "vmcompact bench defrag: %s\n", b->cerr);
			break;
		}
		if (i == 0)
			b->collapse_cold_s = secs;
		if (!b->collapse_warm_s || secs < b->collapse_warm_s) {
			b->collapse_warm_s = secs;
			b->collapsed = bytes;
		}
	}
}

static void bench__print_json(const struct bench_opts *o, const struct bench_result *res, int n,
			      const struct bench_baseline *b, const struct bench_result *lin)
{
	struct json_object *root = json_object_new_object(), *runs = json_object_new_array();

	json__add_u64(root, "mem_bytes", o->guest.mem_bytes);
	json__add(root, "age", json_object_new_double(o->guest.age));
	json__add_u64(root, "seed", o->guest.seed);
	json__add_str(root, "slack", o->guest.slack);
	json__add(root, "cpus", json_object_new_int((int)o->guest.cpus));
	json__add_u64(root, "mem_available_bytes", b->mem_available);
	json__add(root, "memcpy_seconds", json_object_new_double(b->memcpy_s));
	json__add(root, "madv_collapse_seconds", json_object_new_double(b->collapse_warm_s));
	json__add(root, "madv_collapse_warm_seconds", json_object_new_double(b->collapse_warm_s));
	json__add(root, "madv_collapse_cold_seconds", json_object_new_double(b->collapse_cold_s));
	json__add_u64(root, "madv_collapse_bytes", b->collapsed);
	json__add(root, "gups_linear", json_object_new_double(lin->gups_before));
	for (int i = 0; i < n; i++)
		json_object_array_add(runs, bench__result_json(o, &res[i], b, lin->gups_before));
	json__add(root, "runs", runs);
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void bench__print_table(const struct bench_opts *o, const struct bench_result *res, int n)
{
	printf("vmcompact bench defrag: %.2f GiB guest, age %.2f, seed %llu, slack %s (%llu MiB), %u vCPU GUPS\n",
	       (double)o->guest.mem_bytes / (1 << 30), o->guest.age, (unsigned long long)o->guest.seed, o->guest.slack,
	       n ? (unsigned long long)(res[0].before.slack_bytes >> 20) : 0ull, o->guest.cpus);
	printf("  %-34s", "");
	for (int i = 0; i < n; i++)
		printf(" %20s", defrag_algo__name(res[i].algo));
	printf("\n");
	bench__print_row("defrag seconds", res, n, cell_secs);
	bench__print_row("GiB/s (guest size / time)", res, n, cell_gibs);
	bench__print_row("copies per promoted page (<=1.1)", res, n, cell_copies);
	bench__print_row("copies per moved guest page", res, n, cell_copies_moved);
	bench__print_row("4 KiB moves", res, n, cell_moves4k);
	bench__print_row("2 MiB remaps", res, n, cell_remaps2m);
	bench__print_row("regions promoted + zero-copy", res, n, cell_regions);
	bench__print_row("borrowed peak MiB / pool RSS after", res, n, cell_borrow);
	bench__print_row("steps (vCPU pauses)", res, n, cell_steps);
	bench__print_row("pause max / p99 us (<=1000)", res, n, cell_pause);
	bench__print_row("backing_2m before -> after", res, n, cell_backing);
	bench__print_row("achievable (after/achievable)", res, n, cell_achiev);
	bench__print_row("KVM 2M coverage before -> after", res, n, cell_kvm);
	bench__print_row("KVM pages_2m before -> after", res, n, cell_p2m);
	bench__print_row("GUPS M/s before -> after", res, n, cell_gups);
	bench__print_row("ns/update before -> after", res, n, cell_ns);
	bench__print_row("GUPS after/before", res, n, cell_gups_ratio);
	bench__print_row("guest", res, n, cell_status);
}

static void bench__print_text(const struct bench_opts *o, const struct bench_result *res, int n,
			      const struct bench_baseline *b, const struct bench_result *lin)
{
	bench__print_table(o, res, n);
	if (lin->gups_before > 0)
		for (int i = 0; i < n; i++)
			printf("  %-8s GUPS after defrag / linear layout (same run): %.3f (target >= 0.97)\n",
			       defrag_algo__name(res[i].algo), bench__ratio(res[i].gups_after, lin->gups_before));
	if (!o->baseline)
		return;
	printf("  reference, same %.2f GiB in this run (MemAvailable %.1f GiB): memcpy of 4 KiB frames %.3f s",
	       (double)o->guest.mem_bytes / (1 << 30), b->mem_available / (double)(1 << 30), b->memcpy_s);
	if (b->collapse_warm_s > 0)
		printf(", MADV_COLLAPSE warm %.3f s / cold %.3f s (%llu MiB collapsed)\n", b->collapse_warm_s,
		       b->collapse_cold_s, (unsigned long long)(b->collapsed >> 20));
	else
		printf(", MADV_COLLAPSE unavailable: %s\n", b->cerr);
	for (int i = 0; i < n; i++) {
		double secs = res[i].st.wall_ns / 1e9;

		printf("  %-8s defrag/memcpy %.2fx, defrag/MADV_COLLAPSE warm %.2fx cold %.2fx (target <= 0.8x warm)\n",
		       defrag_algo__name(res[i].algo), bench__ratio(secs, b->memcpy_s),
		       bench__ratio(secs, b->collapse_warm_s), bench__ratio(secs, b->collapse_cold_s));
	}
}

/* Each selected algorithm on its own freshly booted aged guest; 1 if any failed. */
static int bench__runs(struct bench_opts *o, struct bench_result *res, int *n)
{
	int failed = 0;

	*n = 0;
	for (int algo = DEFRAG_ALGO_PLANNED; algo >= DEFRAG_ALGO_LINUX; algo--) {
		if (!(o->algos & (1 << algo)))
			continue;
		if (!o->json)
			fprintf(stderr, "bench defrag: %s: booting %llu MiB at age %.2f, measuring...\n",
				defrag_algo__name(algo), (unsigned long long)(o->guest.mem_bytes >> 20), o->guest.age);
		bench__one(o, o->guest.age, algo, &res[*n]);
		if (res[*n].rc) {
			fprintf(stderr, "vmcompact bench defrag: %s: %s\n", defrag_algo__name(algo), res[*n].err);
			failed = 1;
		}
		(*n)++;
	}
	return failed;
}

int bench_defrag__cmd(int argc, char **argv)
{
	struct mm_trace trace = { 0 };
	struct bench_baseline base = { 0 };
	struct bench_result res[2], lin = { 0 };
	struct bench_opts o;
	char err[512] = "";
	int n = 0, rc, failed;

	bench__defaults(&o);
	rc = bench__parse_args(argc, argv, "defrag", bench_longopts, bench_defrag__usage, &o.guest, bench__parse_opt, &o);
	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	if (o.trace_path) {
		if (mm_trace__open(&trace, o.trace_path, err, sizeof(err))) {
			fprintf(stderr, "vmcompact bench defrag: %s\n", err);
			return VMC_EXIT_USAGE;
		}
		o.trace = &trace;
	}
	base.mem_available = bench__mem_available();
	if (o.linear) {
		bench__one(&o, 0.0, -1, &lin);   /* the ceiling: the same guest laid out linearly */
		if (lin.rc)
			fprintf(stderr, "vmcompact bench defrag: linear layout: %s\n", lin.err);
	}
	failed = bench__runs(&o, res, &n);
	if (mm_trace__close(&trace))
		fprintf(stderr, "vmcompact bench defrag: writing the trace file failed\n");
	if (o.baseline)
		bench__baseline(&o, &base);
	if (o.json)
		bench__print_json(&o, res, n, &base, &lin);
	else
		bench__print_text(&o, res, n, &base, &lin);
	return failed ? 1 : 0;
}

int bench_gups__cmd(int argc, char **argv)
{
	struct bench_opts o;
	struct bench_result lin, aged;
	int rc;

	bench__defaults(&o);
	o.gups_windows = 3;
	rc = bench__parse_args(argc, argv, "gups", bench_longopts, bench_gups__usage, &o.guest, bench__parse_opt, &o);
	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	if (o.trace_path) {
		fprintf(stderr, "vmcompact bench gups: --trace: this benchmark runs no defrag (use bench defrag)\n");
		return VMC_EXIT_USAGE;
	}
	bench__one(&o, 0.0, -1, &lin);
	if (lin.rc)
		fprintf(stderr, "vmcompact bench gups: linear: %s\n", lin.err);
	bench__one(&o, o.guest.age, -1, &aged);
	if (aged.rc)
		fprintf(stderr, "vmcompact bench gups: aged: %s\n", aged.err);
	if (o.json) {
		struct json_object *root = json_object_new_object();

		json_object_object_add(root, "mem_bytes", json_object_new_uint64(o.guest.mem_bytes));
		json_object_object_add(root, "age", json_object_new_double(o.guest.age));
		json_object_object_add(root, "gups_linear", json_object_new_double(lin.gups_before));
		json_object_object_add(root, "gups_aged", json_object_new_double(aged.gups_before));
		json_object_object_add(root, "ns_per_update_linear", json_object_new_double(
			lin.gups_before > 0 ? 1e9 / lin.gups_before : 0));
		json_object_object_add(root, "ns_per_update_aged", json_object_new_double(
			aged.gups_before > 0 ? 1e9 / aged.gups_before : 0));
		json_object_object_add(root, "backing_2m_linear", json_object_new_double(lin.before.backing_2m));
		json_object_object_add(root, "backing_2m_aged", json_object_new_double(aged.before.backing_2m));
		json_object_object_add(root, "kvm_linear", mm_json__kvm(&lin.kvm_before));
		json_object_object_add(root, "kvm_aged", mm_json__kvm(&aged.kvm_before));
		json_object_object_add(root, "metadata_bytes", json_object_new_uint64(lin.metadata_bytes));
		json_object_object_add(root, "metadata_fraction", json_object_new_double(
			(double)lin.metadata_bytes / (double)o.guest.mem_bytes));
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("vmcompact bench gups: %.2f GiB guest, %u vCPU, seed %llu, %.1f s windows\n",
		       (double)o.guest.mem_bytes / (1 << 30), o.guest.cpus, (unsigned long long)o.guest.seed, o.gups_ms / 1e3);
		printf("  %-10s %12s %12s %12s %16s\n", "layout", "M updates/s", "ns/update", "backing_2m",
		       "KVM 2M coverage");
		printf("  %-10s %12.1f %12.2f %12.3f %16.3f\n", "linear", lin.gups_before / 1e6,
		       lin.gups_before > 0 ? 1e9 / lin.gups_before : 0, lin.before.backing_2m, cov(&lin.kvm_before));
		printf("  age %-6.2f %12.1f %12.2f %12.3f %16.3f\n", o.guest.age, aged.gups_before / 1e6,
		       aged.gups_before > 0 ? 1e9 / aged.gups_before : 0, aged.before.backing_2m, cov(&aged.kvm_before));
		if (lin.gups_before > 0 && aged.gups_before > 0)
			printf("  aged is %.2fx slower per update (a probe here measured 13.8 vs 9.5 ns at 1 GiB)\n",
			       lin.gups_before / aged.gups_before);
		printf("  mm/ metadata: %llu bytes = %.3f%% of guest RAM (target <= 0.5%%)\n",
		       (unsigned long long)lin.metadata_bytes, 100.0 * (double)lin.metadata_bytes / (double)o.guest.mem_bytes);
	}
	return lin.rc || aged.rc ? 1 : 0;
}
