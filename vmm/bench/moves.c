/* bench_moves.c: `vmcompact bench moves`: >= N page moves (re-aging + defrag rounds) under verify on every vCPU. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/bench/guest.h"
#include "vmm/bench/bench.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"

static const char bench_moves__usage[] =
"Usage: vmcompact bench moves [OPTIONS]\n"
"Boot a guest that runs the verify workload on every vCPU (every word of its memory signed\n"
"with its GPA and a generation, checked and rewritten each pass), defragment its aged layout,\n"
"then alternate re-aging (mm__scatter: random guest pages to random free frames) and defrag\n"
"rounds, all in steps with the vCPUs paused, until the engine has moved at least --moves\n"
"pages. Stop the guest, whose final sweep checks every page once more, and report the verify\n"
"errors (must be 0), passes per vCPU, pauses and 2 MiB backing.\n"
"\n"
"A move is one 4 KiB copy of a page into another frame, followed by the GPA map rebind and\n"
"the window remap that make the new frame the page's home, and the old frame freed: the\n"
"engine's pages_copied. Scatter moves, defrag 4 KiB moves, pages of whole-region copies\n"
"(one 2 MiB remap) and movable ballast evicted by defrag all count; each is listed.\n"
"\n"
"Options:\n"
"  --mem SIZE              guest RAM (default 256M: fits vm.max_map_count 65530 at --age 0.9)\n"
"  --cpus N                vCPUs, each running verify:forever on its slice (default 2)\n"
BENCH_GUEST_USAGE_MEMSLOTS
"  --age FRACTION          initial aged layout (default 0.9)\n"
"  --seed N                layout and scatter seed (default 7)\n"
"  --slack SIZE|N%         pool slack (default 6%)\n"
"  --moves N               stop once this many pages were moved (default 1000000)\n"
"  --scatter-per-round N   pages re-aged per round (default 20000; fewer when vm.max_map_count\n"
"                          leaves less than 3 mappings per page)\n"
"  --algo A                defrag algorithm: planned or linux (default planned)\n"
"  --max-pause-us N        pause budget per step (default 1000)\n"
"  --round-gap-ms N        let the guest run this long between rounds (default 50)\n"
"  --json                  machine-readable result on stdout\n"
"\n"
"Exit status: 0 when every page moved and the guest verified with 0 errors; 1 otherwise.\n";

struct moves_opts {
	struct bench_guest guest;
	uint64_t moves;
	uint64_t per_round;
	enum defrag_algo algo;
	uint64_t max_pause_ns;
	uint64_t gap_ms;
	bool json;
};

/* Every step's pause, measured around the engine's pause/resume hooks. */
struct pause_log {
	struct mm_step_ops inner;
	uint64_t t0_ns;
	uint64_t *ns;
	size_t n, cap;
	bool oom;
};

struct moves_vcpu {
	uint64_t passes_start, passes_end;
	struct vmc_hc_report final;
	uint64_t nr_reports;
};

struct moves_result {
	int rc;
	char err[1024];
	uint64_t moves, moves_scatter, moves_defrag;
	uint64_t defrag_4k, defrag_bulk, defrag_ballast, defrag_temp;
	uint64_t initial_defrag_moves;
	uint32_t rounds, rounds_below_achievable, rounds_capped;
	uint64_t engine_steps;
	uint64_t engine_pause_max_ns;
	uint64_t wall_ns, engine_ns;
	double backing_start, backing_final, backing_achievable, backing_min_after_scatter;
	uint32_t regions_final, achievable_final;
	uint64_t steps, pause_max_ns, pause_p99_ns, pause_p50_ns, pauses_over_budget;
	struct vm_pause_stats vm_pause; /* request -> every vCPU parked, over the whole run */
	struct moves_vcpu vcpu[VMC_MAX_VCPUS];
	uint32_t nr_vcpus;
	uint64_t verify_errors, verify_stale, min_passes_run;
	bool all_final;
	int exit_code;
	char guest_error[512];
};

enum { OPT_MOVES = BENCH_OPT_OWN, OPT_PER_ROUND, OPT_ALGO,
       OPT_PAUSE, OPT_GAP, OPT_JSON };

static const struct option moves_longopts[] = {
	BENCH_GUEST_LONGOPTS,
	{ "moves", required_argument, NULL, OPT_MOVES },
	{ "scatter-per-round", required_argument, NULL, OPT_PER_ROUND },
	{ "algo", required_argument, NULL, OPT_ALGO },
	{ "max-pause-us", required_argument, NULL, OPT_PAUSE },
	{ "round-gap-ms", required_argument, NULL, OPT_GAP },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void moves__defaults(struct moves_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->guest.mem_bytes = 256ull << 20;
	o->guest.cpus = 2;
	o->guest.age = 0.9;
	o->guest.seed = 7;
	strcpy(o->guest.slack, "6%");
	o->moves = 1000000;
	o->per_round = 20000;
	o->algo = DEFRAG_ALGO_PLANNED;
	o->max_pause_ns = DEFRAG_MAX_PAUSE_NS_DEFAULT;
	o->gap_ms = 50;
}

/* One of this benchmark's own options (bench_opt_fn). */
static int moves__parse_opt(void *opts, int c, const char *arg)
{
	struct moves_opts *o = opts;
	uint64_t v;

	switch (c) {
	case OPT_MOVES:
		if (util__parse_count(arg, &o->moves) || !o->moves)
			return -EINVAL;
		return 0;
	case OPT_PER_ROUND:
		if (util__parse_count(arg, &o->per_round) || !o->per_round)
			return -EINVAL;
		return 0;
	case OPT_ALGO:
		if (!strcmp(arg, "planned"))
			o->algo = DEFRAG_ALGO_PLANNED;
		else if (!strcmp(arg, "linux"))
			o->algo = DEFRAG_ALGO_LINUX;
		else
			return -EINVAL;
		return 0;
	case OPT_PAUSE:
		if (util__parse_count(arg, &v) || v < 50 || v > 1000000)
			return -EINVAL;
		o->max_pause_ns = v * 1000;
		return 0;
	case OPT_GAP:
		if (util__parse_count(arg, &o->gap_ms) || o->gap_ms > 60000)
			return -EINVAL;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	}
	return -EINVAL;
}

static int pause_log__pause(void *opaque)
{
	struct pause_log *pl = opaque;

	pl->t0_ns = util__now_ns();
	return pl->inner.pause(pl->inner.ctx);
}

static void pause_log__resume(void *opaque)
{
	struct pause_log *pl = opaque;
	uint64_t ns;

	pl->inner.resume(pl->inner.ctx);
	ns = util__now_ns() - pl->t0_ns;
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? 2 * pl->cap : 4096;
		uint64_t *p = realloc(pl->ns, cap * sizeof(*p));

		if (!p) {
			pl->oom = true;
			return;
		}
		pl->ns = p;
		pl->cap = cap;
	}
	pl->ns[pl->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
	return n ? sorted[(n * pct + 99) / 100 - 1] : 0;
}

/* The `run` options of a guest running verify:forever on every vCPU. */
static int moves__run_options(const struct moves_opts *o, struct run_options *ro, char *err, size_t errlen)
{
	return bench_guest__run_options(&o->guest, "verify:forever", NULL, ro, err, errlen);
}

/* Verify passes each vCPU has reported so far; false if none reported for stall_ns. */
static void moves__passes(struct run_ctx *ctx, uint64_t *passes, uint64_t *reports)
{
	for (uint32_t i = 0; i < ctx->vm.nr_vcpus; i++) {
		struct vmc_hc_report r;
		uint64_t nr;

		vcpu__get_report(&ctx->vm.vcpus[i], &r, &nr);
		passes[i] = r.passes;
		if (reports)
			*reports += nr;
	}
}

static void moves__account(struct moves_result *res, const struct defrag_stats *st, bool scatter)
{
	res->moves += st->pages_copied;
	if (scatter) {
		res->moves_scatter += st->pages_copied;
	} else {
		res->moves_defrag += st->pages_copied;
		res->defrag_4k += st->pages_moved_4k;
		res->defrag_bulk += st->copies_bulk;
		res->defrag_ballast += st->copies_ballast;
		res->defrag_temp += st->copies_temp;
	}
	res->engine_steps += st->steps;
	res->engine_ns += st->wall_ns;
	if (st->pause_max_ns > res->engine_pause_max_ns)
		res->engine_pause_max_ns = st->pause_max_ns;
}

/* The guest ended, stalled or already reports a verify error: say so in res->err. */
static bool moves__guest_trouble(struct run_ctx *ctx, struct moves_result *res, uint64_t *last_reports,
				 uint64_t *last_change_ns)
{
	uint64_t passes[VMC_MAX_VCPUS], reports = 0, now = util__now_ns(), errors;

	if (vm__all_exited(&ctx->vm)) {
		snprintf(res->err, sizeof(res->err), "the guest ended during the run: %s",
			 ctx->vm.failed ? ctx->vm.fail_msg : "see its console output");
		return true;
	}
	errors = bench_vm__verify_errors(ctx);
	if (errors) {
		snprintf(res->err, sizeof(res->err), "verify reported %llu errors during the run",
			 (unsigned long long)errors);
		return true;
	}
	moves__passes(ctx, passes, &reports);
	if (reports != *last_reports) {
		*last_reports = reports;
		*last_change_ns = now;
	} else if (now - *last_change_ns > 30000000000ull) {
		snprintf(res->err, sizeof(res->err), "the guest sent no report for 30 s: stalled");
		return true;
	}
	return false;
}

static int moves__fail(struct moves_result *res, const char *what, const struct defrag_stats *st)
{
	snprintf(res->err, sizeof(res->err), "%s failed: %s", what, st->error_msg[0] ? st->error_msg : strerror(-st->error));
	return -1;
}

/*
 * Pages to re-age this round: --scatter-per-round, but at most a third of the mappings
 * still available under vm.max_map_count (a scattered page can cost two, and the defrag
 * that follows needs some room while it works). 0 with res->err set if that is too few.
 */
static uint64_t moves__scatter_size(const struct moves_opts *o, struct moves_result *res)
{
	struct vma_budget vb;
	uint64_t avail, k = o->per_round;
	int ret = vma_budget__read(&vb);

	if (ret) {
		snprintf(res->err, sizeof(res->err), "reading the VMA budget: %s", strerror(-ret));
		return 0;
	}
	avail = vma_budget__available(&vb, VMA_BUDGET_HEADROOM);
	if (k > avail / 3)
		k = avail / 3;
	if (k < 64) {
		snprintf(res->err, sizeof(res->err), "only %llu mappings left under vm.max_map_count = %llu (%llu in use): "
			 "too few to re-age pages; raise it (scripts/setup.sh --raise-map-count)",
			 (unsigned long long)avail, (unsigned long long)vb.max_map_count, (unsigned long long)vb.in_use);
		return 0;
	}
	if (k < o->per_round)
		res->rounds_capped++;
	return k;
}

/* Stop gracefully (each vCPU ends with a sweep over its whole slice and a final report),
 * keep the final reports, tear the VM down. */
static void moves__stop(struct run_ctx *ctx, struct moves_result *res)
{
	run__request_stop(ctx);
	if (!run__wait_exited(ctx, 10000)) {
		fprintf(stderr, "vmcompact bench moves: guest did not stop within 10 s; force-stopping\n");
		vm__force_stop(&ctx->vm);
		run__wait_exited(ctx, 5000);
	}
	run__collect(ctx);
	res->all_final = true;
	res->min_passes_run = UINT64_MAX;
	res->verify_errors = res->verify_stale = 0;
	for (uint32_t i = 0; i < res->nr_vcpus; i++) {
		struct moves_vcpu *mv = &res->vcpu[i];
		uint64_t run_passes = mv->passes_end > mv->passes_start ? mv->passes_end - mv->passes_start : 0;

		vcpu__get_report(&ctx->vm.vcpus[i], &mv->final, &mv->nr_reports);
		res->verify_errors += mv->final.errors;
		res->verify_stale += mv->final.stale_words;
		res->all_final &= !!(mv->final.flags & VMC_REPORT_FINAL);
		if (run_passes < res->min_passes_run)
			res->min_passes_run = run_passes;
	}
	res->exit_code = ctx->exit_code;
	pthread_mutex_lock(&ctx->vm.lock);
	res->vm_pause = ctx->vm.pause;
	pthread_mutex_unlock(&ctx->vm.lock);
	if (ctx->vm.failed)
		snprintf(res->guest_error, sizeof(res->guest_error), "%s", ctx->vm.fail_msg);
	run__teardown(ctx);
}

/* One round: re-age k pages, defragment again. 0, or -1 with res->err set. */
static int moves__round(struct run_ctx *ctx, const struct moves_opts *o, const struct mm_step_ops *ops,
			const struct defrag_request *req, struct defrag_stats *st, struct moves_result *res,
			uint64_t *reports, uint64_t *last_change)
{
	uint32_t round = res->rounds + 1;
	uint64_t k, scatter_pause_max;
	struct mm_stat ms;

	if (moves__guest_trouble(ctx, res, reports, last_change))
		return -1;
	k = moves__scatter_size(o, res);
	if (!k)
		return -1;
	if (mm__scatter(&ctx->mm, k, o->guest.seed * 1000003ull + round, ops, req, st)) {
		moves__fail(res, "re-aging", st);
		return -1;
	}
	moves__account(res, st, true);
	scatter_pause_max = st->pause_max_ns;
	mm__stat(&ctx->mm, &ms);
	if (ms.backing_2m < res->backing_min_after_scatter)
		res->backing_min_after_scatter = ms.backing_2m;
	if (mm__defrag(&ctx->mm, req, ops, st)) {
		moves__fail(res, "defrag", st);
		return -1;
	}
	moves__account(res, st, false);
	res->rounds = round;
	res->rounds_below_achievable += st->regions_backed_2m < st->regions_achievable;
	if (!o->json)
		fprintf(stderr, "bench moves: round %u: scattered %llu, defrag moved %llu, total %llu moves, "
			"%u/%u regions backed 2M, pause max %.0f us (scatter) %.0f us (defrag)\n", round,
			(unsigned long long)k, (unsigned long long)st->pages_copied,
			(unsigned long long)res->moves, st->regions_backed_2m, st->regions_achievable,
			scatter_pause_max / 1e3, st->pause_max_ns / 1e3);
	if (o->gap_ms)
		bench_vm__sleep(ctx, o->gap_ms); /* a guest that ended is seen by moves__guest_trouble */
	return 0;
}

/* Pause percentiles and the verdict, once the guest has stopped. */
static void moves__verdict(const struct moves_opts *o, struct pause_log *pl, struct moves_result *res)
{
	if (pl->n) {
		qsort(pl->ns, pl->n, sizeof(uint64_t), cmp_u64);
		res->steps = pl->n;
		res->pause_max_ns = pl->ns[pl->n - 1];
		res->pause_p99_ns = percentile(pl->ns, pl->n, 99);
		res->pause_p50_ns = percentile(pl->ns, pl->n, 50);
		for (size_t i = 0; i < pl->n; i++)
			res->pauses_over_budget += pl->ns[i] > o->max_pause_ns;
	}
	if (res->verify_errors)
		snprintf(res->err, sizeof(res->err), "VERIFY FOUND %llu BAD WORDS (%llu stale = lost writes)",
			 (unsigned long long)res->verify_errors, (unsigned long long)res->verify_stale);
	else if (res->exit_code)
		snprintf(res->err, sizeof(res->err), "guest exit status %d%s%s", res->exit_code,
			 res->guest_error[0] ? ": " : "", res->guest_error);
	else if (!res->all_final)
		snprintf(res->err, sizeof(res->err), "a vCPU sent no final report");
	else if (res->min_passes_run == 0)
		snprintf(res->err, sizeof(res->err), "a vCPU completed no verify pass during the moves");
	else if (pl->oom)
		snprintf(res->err, sizeof(res->err), "out of memory recording pauses");
	else
		res->rc = 0;
}

/* Boot, initial defrag, rounds until o->moves, stop, final verify. */
static void moves__run(const struct moves_opts *o, struct moves_result *res)
{
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	struct defrag_stats *st = calloc(1, sizeof(*st));
	struct pause_log pl = { 0 };
	struct mm_step_ops ops;
	struct defrag_request req;
	struct mm_stat ms;
	uint64_t passes[VMC_MAX_VCPUS], reports = 0, last_change, t0;
	bool booted = false;

	memset(res, 0, sizeof(*res));
	res->rc = -1;
	res->backing_min_after_scatter = 1.0;
	if (!ctx || !st) {
		snprintf(res->err, sizeof(res->err), "out of memory");
		goto out;
	}
	if (moves__run_options(o, &ctx->opts, res->err, sizeof(res->err)))
		goto out;
	if (bench_vm__boot(ctx, res->err, sizeof(res->err)))
		goto out;
	booted = true;
	res->nr_vcpus = ctx->vm.nr_vcpus;
	res->backing_start = ctx->mem_start.backing_2m;
	run__step_ops(ctx, &pl.inner);
	ops.pause = pause_log__pause;
	ops.resume = pause_log__resume;
	ops.ctx = &pl;
	defrag_request__init(&req);
	req.mode = DEFRAG_FULL;
	req.algo = o->algo;
	req.max_pause_ns = o->max_pause_ns;

	/* Let every vCPU write its first generation, so the moves copy signed pages. */
	if (!bench_vm__sleep(ctx, 300)) {
		snprintf(res->err, sizeof(res->err), "the guest ended at start: %s",
			 ctx->vm.failed ? ctx->vm.fail_msg : "see its console output");
		goto out;
	}
	moves__passes(ctx, passes, &reports);
	for (uint32_t i = 0; i < res->nr_vcpus; i++)
		res->vcpu[i].passes_start = passes[i];
	last_change = util__now_ns();

	t0 = util__now_ns();
	/* The aged layout first: it also brings the window far below vm.max_map_count. */
	if (mm__defrag(&ctx->mm, &req, &ops, st)) {
		moves__fail(res, "initial defrag", st);
		goto out;
	}
	moves__account(res, st, false);
	res->initial_defrag_moves = st->pages_copied;
	if (!o->json)
		fprintf(stderr, "bench moves: initial defrag: %llu moves, backing_2m %.3f -> %u/%u regions\n",
			(unsigned long long)st->pages_copied, res->backing_start, st->regions_backed_2m,
			st->regions_achievable);

	while (res->moves < o->moves) {
		int r = moves__round(ctx, o, &ops, &req, st, res, &reports, &last_change);

		if (r < 0)
			goto out;
	}
	res->wall_ns = util__now_ns() - t0;
	if (moves__guest_trouble(ctx, res, &reports, &last_change))
		goto out;
	mm__stat(&ctx->mm, &ms);
	res->backing_final = ms.backing_2m;
	res->backing_achievable = ms.backing_2m_achievable;
	res->regions_final = ms.regions_backed_2m;
	res->achievable_final = ms.regions_achievable;
	moves__passes(ctx, passes, NULL);
	for (uint32_t i = 0; i < res->nr_vcpus; i++)
		res->vcpu[i].passes_end = passes[i];

	booted = false;
	moves__stop(ctx, res);

	moves__verdict(o, &pl, res);
out:
	if (booted) {
		/* Failed midway: still stop gracefully and keep what the guest found. */
		moves__stop(ctx, res);
		if (res->verify_errors)
			snprintf(res->err + strlen(res->err), sizeof(res->err) - strlen(res->err),
				 "; VERIFY FOUND %llu BAD WORDS", (unsigned long long)res->verify_errors);
	}
	free(pl.ns);
	free(st);
	free(ctx);
}

static struct json_object *moves__json(const struct moves_opts *o, const struct moves_result *r)
{
	struct json_object *j = json_object_new_object(), *vcpus = json_object_new_array();
	double secs = r->wall_ns / 1e9;

	json_object_object_add(j, "ok", json_object_new_boolean(r->rc == 0));
	json_object_object_add(j, "error", r->rc ? json_object_new_string(r->err) : NULL);
	json_object_object_add(j, "mem_bytes", json_object_new_uint64(o->guest.mem_bytes));
	json_object_object_add(j, "cpus", json_object_new_int((int)o->guest.cpus));
	json_object_object_add(j, "age", json_object_new_double(o->guest.age));
	json_object_object_add(j, "seed", json_object_new_uint64(o->guest.seed));
	json_object_object_add(j, "slack", json_object_new_string(o->guest.slack));
	json_object_object_add(j, "algo", json_object_new_string(defrag_algo__name(o->algo)));
	json_object_object_add(j, "max_pause_us", json_object_new_double(o->max_pause_ns / 1e3));
	json_object_object_add(j, "moves_target", json_object_new_uint64(o->moves));
	json_object_object_add(j, "scatter_per_round", json_object_new_uint64(o->per_round));
	json_object_object_add(j, "moves", json_object_new_uint64(r->moves));
	json_object_object_add(j, "moves_scatter", json_object_new_uint64(r->moves_scatter));
	json_object_object_add(j, "moves_defrag", json_object_new_uint64(r->moves_defrag));
	json_object_object_add(j, "moves_initial_defrag", json_object_new_uint64(r->initial_defrag_moves));
	json_object_object_add(j, "defrag_moves_4k", json_object_new_uint64(r->defrag_4k));
	json_object_object_add(j, "defrag_copies_bulk", json_object_new_uint64(r->defrag_bulk));
	json_object_object_add(j, "defrag_copies_ballast", json_object_new_uint64(r->defrag_ballast));
	json_object_object_add(j, "defrag_copies_temp", json_object_new_uint64(r->defrag_temp));
	json_object_object_add(j, "rounds", json_object_new_int((int)r->rounds));
	json_object_object_add(j, "rounds_below_achievable", json_object_new_int((int)r->rounds_below_achievable));
	json_object_object_add(j, "rounds_capped_by_vma_budget", json_object_new_int((int)r->rounds_capped));
	json_object_object_add(j, "wall_seconds", json_object_new_double(secs));
	json_object_object_add(j, "engine_seconds", json_object_new_double(r->engine_ns / 1e9));
	json_object_object_add(j, "moves_per_sec", json_object_new_double(secs > 0 ? (double)r->moves / secs : 0));
	json_object_object_add(j, "steps", json_object_new_uint64(r->steps));
	json_object_object_add(j, "engine_steps", json_object_new_uint64(r->engine_steps));
	json_object_object_add(j, "pause_max_us", json_object_new_double(r->pause_max_ns / 1e3));
	json_object_object_add(j, "pause_p99_us", json_object_new_double(r->pause_p99_ns / 1e3));
	json_object_object_add(j, "pause_p50_us", json_object_new_double(r->pause_p50_ns / 1e3));
	json_object_object_add(j, "pauses_over_budget", json_object_new_uint64(r->pauses_over_budget));
	json_object_object_add(j, "park_latency_max_us", json_object_new_double(r->vm_pause.max_ns / 1e3));
	json_object_object_add(j, "park_latency_mean_us", json_object_new_double(
		r->vm_pause.count ? r->vm_pause.total_ns / 1e3 / (double)r->vm_pause.count : 0));
	json_object_object_add(j, "backing_2m_start", json_object_new_double(r->backing_start));
	json_object_object_add(j, "backing_2m_min_after_scatter", json_object_new_double(r->backing_min_after_scatter));
	json_object_object_add(j, "backing_2m_final", json_object_new_double(r->backing_final));
	json_object_object_add(j, "backing_2m_achievable", json_object_new_double(r->backing_achievable));
	json_object_object_add(j, "verify_errors", json_object_new_uint64(r->verify_errors));
	json_object_object_add(j, "verify_stale_words", json_object_new_uint64(r->verify_stale));
	json_object_object_add(j, "min_passes_during_moves", json_object_new_uint64(
		r->min_passes_run == UINT64_MAX ? 0 : r->min_passes_run));
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		const struct moves_vcpu *v = &r->vcpu[i];
		struct json_object *vj = json_object_new_object();

		json_object_object_add(vj, "id", json_object_new_int((int)i));
		json_object_object_add(vj, "passes", json_object_new_uint64(v->final.passes));
		json_object_object_add(vj, "passes_during_moves", json_object_new_uint64(
			v->passes_end > v->passes_start ? v->passes_end - v->passes_start : 0));
		json_object_object_add(vj, "errors", json_object_new_uint64(v->final.errors));
		json_object_object_add(vj, "bad_pages", json_object_new_uint64(v->final.bad_pages));
		json_object_object_add(vj, "stale_words", json_object_new_uint64(v->final.stale_words));
		json_object_object_add(vj, "checked_words", json_object_new_uint64(v->final.checked_words));
		json_object_object_add(vj, "pages", json_object_new_uint64(v->final.pages));
		json_object_object_add(vj, "final", json_object_new_boolean(!!(v->final.flags & VMC_REPORT_FINAL)));
		json_object_array_add(vcpus, vj);
	}
	json_object_object_add(j, "vcpus", vcpus);
	json_object_object_add(j, "exit_status", json_object_new_int(r->exit_code));
	return j;
}

static void moves__print(const struct moves_opts *o, const struct moves_result *r)
{
	double secs = r->wall_ns / 1e9;

	printf("vmcompact bench moves: %llu MiB guest, %u vCPUs running verify, age %.2f, seed %llu, %s defrag\n",
	       (unsigned long long)(o->guest.mem_bytes >> 20), o->guest.cpus, o->guest.age, (unsigned long long)o->guest.seed,
	       defrag_algo__name(o->algo));
	printf("  page moves (4 KiB copy + remap)  %llu (target %llu): scatter %llu, defrag %llu "
	       "(initial %llu; 4K moves %llu, whole-region copies %llu, ballast %llu, temp %llu)\n",
	       (unsigned long long)r->moves, (unsigned long long)o->moves, (unsigned long long)r->moves_scatter,
	       (unsigned long long)r->moves_defrag, (unsigned long long)r->initial_defrag_moves,
	       (unsigned long long)r->defrag_4k, (unsigned long long)r->defrag_bulk,
	       (unsigned long long)r->defrag_ballast, (unsigned long long)r->defrag_temp);
	printf("  rounds (scatter %llu + defrag)    %u, %u ended below the achievable 2M backing, %u re-aged fewer "
	       "pages (vm.max_map_count)\n", (unsigned long long)o->per_round, r->rounds, r->rounds_below_achievable,
	       r->rounds_capped);
	printf("  wall time                        %.2f s (engine %.2f s), %.0f moves/s\n", secs, r->engine_ns / 1e9,
	       secs > 0 ? (double)r->moves / secs : 0);
	printf("  steps (vCPU pauses)              %llu, pause max %.0f us, p99 %.0f us, p50 %.0f us, "
	       "%llu over the %.0f us budget\n", (unsigned long long)r->steps, r->pause_max_ns / 1e3,
	       r->pause_p99_ns / 1e3, r->pause_p50_ns / 1e3, (unsigned long long)r->pauses_over_budget,
	       o->max_pause_ns / 1e3);
	printf("  of which stopping the vCPUs      max %.0f us, mean %.1f us (request -> every vCPU parked)\n",
	       r->vm_pause.max_ns / 1e3, r->vm_pause.count ? r->vm_pause.total_ns / 1e3 / (double)r->vm_pause.count : 0);
	printf("  backing_2m                       start %.3f, lowest after a scatter %.3f, final %.3f "
	       "(achievable %.3f)\n", r->backing_start, r->backing_min_after_scatter, r->backing_final,
	       r->backing_achievable);
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		const struct moves_vcpu *v = &r->vcpu[i];

		printf("  vCPU %-2u verify                   %llu passes during the moves, %llu in all, %llu words "
		       "checked, %llu errors%s\n", i,
		       (unsigned long long)(v->passes_end > v->passes_start ? v->passes_end - v->passes_start : 0),
		       (unsigned long long)v->final.passes, (unsigned long long)v->final.checked_words,
		       (unsigned long long)v->final.errors, v->final.flags & VMC_REPORT_FINAL ? "" : " (no final report)");
	}
	if (r->verify_errors)
		printf("  *** VERIFY ERRORS: %llu bad words (%llu stale = lost writes) ***\n",
		       (unsigned long long)r->verify_errors, (unsigned long long)r->verify_stale);
	else
		printf("  verify errors                    0\n");
	printf("  result                           %s%s%s\n", r->rc ? "FAILED" : "ok", r->rc ? ": " : "",
	       r->rc ? r->err : "");
}

int bench_moves__cmd(int argc, char **argv)
{
	struct moves_opts o;
	struct moves_result *res;
	int rc;

	moves__defaults(&o);
	rc = bench__parse_args(argc, argv, "moves", moves_longopts, bench_moves__usage, &o.guest, moves__parse_opt, &o);
	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	res = calloc(1, sizeof(*res));
	if (!res) {
		fprintf(stderr, "vmcompact bench moves: out of memory\n");
		return 1;
	}
	if (!o.json)
		fprintf(stderr, "bench moves: booting %llu MiB at age %.2f with verify on %u vCPUs, target %llu moves\n",
			(unsigned long long)(o.guest.mem_bytes >> 20), o.guest.age, o.guest.cpus, (unsigned long long)o.moves);
	moves__run(&o, res);
	if (res->rc)
		fprintf(stderr, "vmcompact bench moves: %s\n", res->err);
	if (o.json) {
		struct json_object *j = moves__json(&o, res);

		printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY));
		json_object_put(j);
	} else {
		moves__print(&o, res);
	}
	rc = res->rc ? 1 : 0;
	free(res);
	return rc;
}
