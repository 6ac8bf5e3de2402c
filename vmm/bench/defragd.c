/* bench_defragd.c: `vmcompact bench defragd`: what the background defragmenter costs a running guest, and what it gives back. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "vmm/bench/guest.h"
#include "vmm/bench/bench.h"
#include "vmm/defragd.h"
#include "vmm/util.h"

static const char bench_defragd__usage[] =
"Usage: vmcompact bench defragd [OPTIONS]\n"
"The same aged guest (vCPUs running GUPS) twice for the same wall-clock window: once with\n"
"the background defragmenter off, once with `--defrag auto` (defragd started by the control\n"
"server, default budgets). Reports guest GUPS over the whole window and while defragd was\n"
"compacting, the loss in %, defragd's counters, its vCPU pauses and the final backing_2m.\n"
"\n"
"Options:\n"
"  --mem SIZE          guest RAM (default 256M)\n"
"  --age FRACTION      share of 2 MiB regions scattered (default 0.9)\n"
"  --seed N            layout seed (default 7)\n"
"  --slack SIZE|N%     pool slack (default 6%)\n"
"  --cpus N            vCPUs running GUPS (default 1)\n"
BENCH_GUEST_USAGE_MEMSLOTS
"  --seconds S         length of each window, from boot (default 10)\n"
"  --proactiveness N   defragd's proactiveness (default 100)\n"
"  --max-mbps N        defragd's copy-rate budget in MB/s, 0 = unlimited (default: defragd's, 6)\n"
"  --max-pause-us N    defragd's pause budget per step (default: defragd's, 1000)\n"
"  --json              machine-readable result on stdout\n";

struct bd_opts {
	struct bench_guest guest;
	uint64_t window_ms;
	unsigned proactiveness;
	int64_t max_mbps;          /* <0: defragd's default */
	int64_t max_pause_us;      /* <0: defragd's default */
	bool json;
};

#define BD_SAMPLE_MS 100       /* the guest reports every 100 ms of its own time */
#define BD_POLL_MS 5           /* defragd / job polling: no chunk can finish unseen */

/* One window: the guest's GUPS counters every BD_SAMPLE_MS, and (defragd on) what it did. */
struct bd_run {
	bool defragd;
	int rc;
	char err[1024];
	struct gups_sample *samples;
	double *t;                 /* seconds from the window start */
	size_t nr, cap;
	double t_converged;        /* defragd stopped compacting (idle or backoff after work); <0: never */
	struct mm_stat start, end;
	struct kvm_pages kvm_end;
	struct defragd_policy policy;
	struct defragd_counters cnt;
	enum defragd_state state;
	/* defragd's chunks, each collected when it finished */
	uint64_t chunks, steps, pause_total_ns, pause_max_ns, pause_p99_max_ns, copied;
	uint64_t last_chunk_id;
	struct vm_pause_stats vm_pause;
	uint64_t tsc_khz;
	uint32_t nr_vcpus;
	int exit_code;
};

enum { OPT_SECONDS = BENCH_OPT_OWN, OPT_PROACTIVE,
       OPT_MBPS, OPT_PAUSE, OPT_JSON };

static const struct option bd_longopts[] = {
	BENCH_GUEST_LONGOPTS,
	{ "seconds", required_argument, NULL, OPT_SECONDS },
	{ "proactiveness", required_argument, NULL, OPT_PROACTIVE },
	{ "max-mbps", required_argument, NULL, OPT_MBPS },
	{ "max-pause-us", required_argument, NULL, OPT_PAUSE },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* One of this benchmark's own options (bench_opt_fn). */
static int bd__parse_opt(void *opts, int c, const char *arg)
{
	struct bd_opts *o = opts;
	uint64_t v;

	switch (c) {
	case OPT_SECONDS:
		if (util__parse_duration_ms(arg, &v) || v < 1000 || v > 3600000)
			return -EINVAL;
		o->window_ms = v;
		return 0;
	case OPT_PROACTIVE:
		if (util__parse_count(arg, &v) || v > 100)
			return -EINVAL;
		o->proactiveness = (unsigned)v;
		return 0;
	case OPT_MBPS:
		if (util__parse_count(arg, &v) || v > DEFRAGD_MBPS_MAX)
			return -EINVAL;
		o->max_mbps = (int64_t)v;
		return 0;
	case OPT_PAUSE:
		if (util__parse_count(arg, &v) || v < DEFRAGD_PAUSE_US_MIN || v > DEFRAGD_PAUSE_US_MAX)
			return -EINVAL;
		o->max_pause_us = (int64_t)v;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	}
	return -EINVAL;
}

static void bd__defaults(struct bd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->guest = (struct bench_guest){ .mem_bytes = 256ull << 20, .age = 0.9, .seed = 7, .slack = "6%", .cpus = 1 };
	o->window_ms = 10000;
	o->proactiveness = 100;
	o->max_mbps = -1;
	o->max_pause_us = -1;
}

/* `run --workload gups:forever` with this layout; --defrag auto for the defragd window. */
static int bd__run_options(const struct bd_opts *o, bool defragd, struct run_options *ro, char *err,
			   size_t errlen)
{
	const char *const extra[] = { "--defrag", defragd ? "auto" : "off", NULL };

	if (bench_guest__run_options(&o->guest, "gups:forever", extra, ro, err, errlen))
		return -EINVAL;
	ro->proactiveness = (int)o->proactiveness;
	if (o->max_pause_us >= 0)
		ro->defrag_req.max_pause_ns = (uint64_t)o->max_pause_us * 1000;
	ro->json = true; /* guest console to stderr */
	return 0;
}

static void bd__record(struct bd_run *r, struct run_ctx *ctx, double t)
{
	if (r->nr == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct gups_sample *s = realloc(r->samples, cap * sizeof(*s));
		double *tt = s ? realloc(r->t, cap * sizeof(*tt)) : NULL;

		if (s)
			r->samples = s;
		if (!s || !tt)
			return;
		r->t = tt;
		r->cap = cap;
	}
	bench_vm__sample(ctx, &r->samples[r->nr]);
	r->t[r->nr++] = t;
}

/* Take a defragd chunk's stats once it has finished. */
static void bd__collect_chunk(struct bd_run *r, struct run_ctx *ctx)
{
	struct defrag_job_info info;

	defrag_job__snapshot(&ctx->host.job, &info);
	if (!info.id || info.id == r->last_chunk_id || info.state == DEFRAG_JOB_RUNNING || !info.has_result)
		return;
	r->last_chunk_id = info.id;
	if (info.origin != DEFRAG_ORIGIN_AUTO)
		return;
	r->chunks++;
	r->steps += info.stats.steps;
	r->copied += info.stats.pages_copied;
	r->pause_total_ns += info.stats.pause_total_ns;
	if (info.stats.pause_max_ns > r->pause_max_ns)
		r->pause_max_ns = info.stats.pause_max_ns;
	if (info.stats.pause_p99_ns > r->pause_p99_max_ns)
		r->pause_p99_max_ns = info.stats.pause_p99_ns;
}

/* Boot, sample GUPS for the window (and watch defragd), stop. */
static void bd__one(const struct bd_opts *o, bool defragd, struct bd_run *r)
{
	struct run_ctx *ctx = calloc(1, sizeof(*ctx));
	uint64_t t0, now, next_sample, end;
	char perr[256];

	memset(r, 0, sizeof(*r));
	r->defragd = defragd;
	r->rc = -1;
	r->t_converged = -1;
	if (!ctx) {
		snprintf(r->err, sizeof(r->err), "out of memory");
		return;
	}
	if (bd__run_options(o, defragd, &ctx->opts, r->err, sizeof(r->err)))
		goto out;
	if (bench_vm__boot(ctx, r->err, sizeof(r->err)))
		goto out;
	t0 = util__now_ns();
	if (!ctx->host.defrag_started) {
		snprintf(r->err, sizeof(r->err), "the VM has no defragd");
		bench_vm__finish(ctx, 1000);
		goto out;
	}
	r->start = ctx->mem_start;
	if (defragd && o->max_mbps >= 0) {
		struct defragd_policy p;

		defragd__snapshot(&ctx->host.defragd, &p, NULL, NULL);
		p.max_mbps = (uint32_t)o->max_mbps;
		if (defragd__set_policy(&ctx->host.defragd, &p, perr, sizeof(perr)))
			fprintf(stderr, "vmcompact bench defragd: %s\n", perr);
	}

	next_sample = t0;
	end = t0 + o->window_ms * 1000000ull;
	for (now = t0; now < end; now = util__now_ns()) {
		if (now >= next_sample) {
			bd__record(r, ctx, (double)(now - t0) / 1e9);
			next_sample += BD_SAMPLE_MS * 1000000ull;
		}
		if (defragd) {
			struct defragd_counters c;
			enum defragd_state st;

			bd__collect_chunk(r, ctx);
			defragd__snapshot(&ctx->host.defragd, NULL, &c, &st);
			if (r->t_converged < 0 && c.rounds && st != DEFRAGD_COMPACTING &&
			    !defrag_job__running(&ctx->host.job))
				r->t_converged = (double)(now - t0) / 1e9;
		}
		if (vm__all_exited(&ctx->vm)) {
			snprintf(r->err, sizeof(r->err), "the guest ended early: %s",
				 ctx->vm.failed ? ctx->vm.fail_msg : "see its console output");
			bench_vm__finish(ctx, 1000);
			goto out;
		}
		usleep(BD_POLL_MS * 1000);
	}
	bd__record(r, ctx, (double)(util__now_ns() - t0) / 1e9);
	if (defragd)
		bd__collect_chunk(r, ctx);
	defragd__snapshot(&ctx->host.defragd, &r->policy, &r->cnt, &r->state);
	mm__stat(&ctx->mm, &r->end);
	kvm_stats__read(&ctx->vm, &r->kvm_end);
	r->vm_pause = ctx->vm.pause;
	r->tsc_khz = ctx->vm.tsc_khz;
	r->nr_vcpus = ctx->vm.nr_vcpus;
	r->exit_code = bench_vm__finish(ctx, 5000);
	r->rc = r->exit_code ? -1 : 0;
	if (r->exit_code)
		snprintf(r->err, sizeof(r->err), "guest exit status %d%s%s", r->exit_code,
			 ctx->vm.failed ? ": " : "", ctx->vm.failed ? ctx->vm.fail_msg : "");
out:
	free(ctx);
}

/* Index of the last sample taken at or before t (0 if none). */
static size_t bd__at(const struct bd_run *r, double t)
{
	size_t i = 0;

	while (i + 1 < r->nr && r->t[i + 1] <= t + 1e-9)
		i++;
	return i;
}

/*
 * Guest updates/s between window times ta and tb, summed over vCPUs, each from its own
 * reports (updates and guest TSC; the TSC runs on while the vCPU is paused, so pauses
 * count as lost time). 0 without two distinct reports.
 */
static double bd__gups(const struct bd_run *r, double ta, double tb)
{
	double hz = (double)r->tsc_khz * 1000.0, sum = 0;
	size_t a, b;

	if (r->nr < 2 || hz <= 0)
		return 0;
	a = bd__at(r, ta);
	b = bd__at(r, tb);
	if (b <= a)
		return 0;
	for (uint32_t i = 0; i < r->nr_vcpus; i++) {
		uint64_t du = r->samples[b].updates[i] - r->samples[a].updates[i];
		uint64_t dc = r->samples[b].cycles[i] - r->samples[a].cycles[i];

		if (dc)
			sum += (double)du / ((double)dc / hz);
	}
	return sum;
}

static double loss_pct(double base, double with)
{
	return base > 0 ? 100.0 * (1.0 - with / base) : 0;
}

static void bd__free(struct bd_run *r)
{
	free(r->samples);
	free(r->t);
}

/* The figures compared between the two windows. */
struct bd_cmp {
	double window_s;           /* shorter of the two windows */
	double active_s;           /* defragd's compacting phase: window start -> converged */
	double gups_off, gups_on;            /* whole window */
	double gups_off_active, gups_on_active; /* [0, active_s] in both windows */
	double gups_off_after, gups_on_after;   /* [active_s, window_s] */
	double loss_window_pct, loss_active_pct, gain_after_pct;
	double pause_share_active; /* share of the active phase the vCPUs spent paused by defragd */
};

static void bd__compare(const struct bd_run *off, const struct bd_run *on, struct bd_cmp *c)
{
	double w_off = off->nr ? off->t[off->nr - 1] : 0, w_on = on->nr ? on->t[on->nr - 1] : 0;

	memset(c, 0, sizeof(*c));
	c->window_s = w_off < w_on ? w_off : w_on;
	c->active_s = on->t_converged >= 0 && on->t_converged < c->window_s ? on->t_converged : c->window_s;
	c->gups_off = bd__gups(off, 0, c->window_s);
	c->gups_on = bd__gups(on, 0, c->window_s);
	c->gups_off_active = bd__gups(off, 0, c->active_s);
	c->gups_on_active = bd__gups(on, 0, c->active_s);
	c->gups_off_after = bd__gups(off, c->active_s, c->window_s);
	c->gups_on_after = bd__gups(on, c->active_s, c->window_s);
	c->loss_window_pct = loss_pct(c->gups_off, c->gups_on);
	c->loss_active_pct = loss_pct(c->gups_off_active, c->gups_on_active);
	c->gain_after_pct = -loss_pct(c->gups_off_after, c->gups_on_after);
	c->pause_share_active = c->active_s > 0 ? (double)on->pause_total_ns / 1e9 / c->active_s : 0;
}

static struct json_object *bd__series_json(const struct bd_run *r, double window_s)
{
	struct json_object *a = json_object_new_array();

	for (double t = 0; t + 1.0 <= window_s + 1e-6; t += 1.0)
		json_object_array_add(a, json_object_new_double(bd__gups(r, t, t + 1.0)));
	return a;
}

static struct json_object *bd__run_json(const struct bd_run *r, double window_s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "defragd", json_object_new_boolean(r->defragd));
	json_object_object_add(o, "gups_per_second", bd__series_json(r, window_s));
	json_object_object_add(o, "backing_2m_start", json_object_new_double(r->start.backing_2m));
	json_object_object_add(o, "backing_2m_end", json_object_new_double(r->end.backing_2m));
	json_object_object_add(o, "backing_2m_achievable", json_object_new_double(r->end.backing_2m_achievable));
	json_object_object_add(o, "kvm_end", mm_json__kvm(&r->kvm_end));
	json_object_object_add(o, "vm_pauses", json_object_new_uint64(r->vm_pause.count));
	json_object_object_add(o, "vm_pause_latency_max_us", json_object_new_double(r->vm_pause.max_ns / 1e3));
	if (r->defragd) {
		struct json_object *c = json_object_new_object();

		json_object_object_add(o, "converged_s", r->t_converged >= 0 ?
				       json_object_new_double(r->t_converged) : NULL);
		json_object_object_add(o, "state_end", json_object_new_string(defragd_state_names[r->state]));
		json_object_object_add(c, "wakeups", json_object_new_uint64(r->cnt.wakeups));
		json_object_object_add(c, "rounds", json_object_new_uint64(r->cnt.rounds));
		json_object_object_add(c, "regions_promoted", json_object_new_uint64(r->cnt.regions_promoted));
		json_object_object_add(c, "pages_copied", json_object_new_uint64(r->cnt.pages_copied));
		json_object_object_add(c, "backoffs", json_object_new_uint64(r->cnt.backoffs));
		json_object_object_add(c, "busy_skips", json_object_new_uint64(r->cnt.busy_skips));
		json_object_object_add(c, "failures", json_object_new_uint64(r->cnt.failures));
		json_object_object_add(c, "last_score", json_object_new_uint64(r->cnt.last_score));
		json_object_object_add(o, "counters", c);
		json_object_object_add(o, "chunks", json_object_new_uint64(r->chunks));
		json_object_object_add(o, "steps", json_object_new_uint64(r->steps));
		json_object_object_add(o, "pause_total_ms", json_object_new_double(r->pause_total_ns / 1e6));
		json_object_object_add(o, "pause_max_us", json_object_new_double(r->pause_max_ns / 1e3));
		json_object_object_add(o, "pause_p99_us", json_object_new_double(r->pause_p99_max_ns / 1e3));
	}
	return o;
}

static void bd__print_json(const struct bd_opts *o, const struct bd_run *off, const struct bd_run *on,
			   const struct bd_cmp *c)
{
	struct json_object *root = json_object_new_object(), *pol = json_object_new_object();

	json_object_object_add(root, "mem_bytes", json_object_new_uint64(o->guest.mem_bytes));
	json_object_object_add(root, "age", json_object_new_double(o->guest.age));
	json_object_object_add(root, "seed", json_object_new_uint64(o->guest.seed));
	json_object_object_add(root, "slack", json_object_new_string(o->guest.slack));
	json_object_object_add(root, "cpus", json_object_new_int((int)o->guest.cpus));
	json_object_object_add(pol, "proactiveness", json_object_new_uint64(on->policy.proactiveness));
	json_object_object_add(pol, "interval_ms", json_object_new_uint64(on->policy.interval_ms));
	json_object_object_add(pol, "max_pause_us", json_object_new_uint64(on->policy.max_pause_us));
	json_object_object_add(pol, "max_mbps", json_object_new_uint64(on->policy.max_mbps));
	json_object_object_add(pol, "backoff_ms", json_object_new_uint64(on->policy.backoff_ms));
	json_object_object_add(pol, "regions_per_wakeup", json_object_new_uint64(on->policy.regions_per_wakeup));
	json_object_object_add(root, "policy", pol);
	json_object_object_add(root, "window_s", json_object_new_double(c->window_s));
	json_object_object_add(root, "active_s", json_object_new_double(c->active_s));
	json_object_object_add(root, "gups_off", json_object_new_double(c->gups_off));
	json_object_object_add(root, "gups_on", json_object_new_double(c->gups_on));
	json_object_object_add(root, "gups_off_active", json_object_new_double(c->gups_off_active));
	json_object_object_add(root, "gups_on_active", json_object_new_double(c->gups_on_active));
	json_object_object_add(root, "gups_off_after", json_object_new_double(c->gups_off_after));
	json_object_object_add(root, "gups_on_after", json_object_new_double(c->gups_on_after));
	json_object_object_add(root, "loss_window_pct", json_object_new_double(c->loss_window_pct));
	json_object_object_add(root, "loss_active_pct", json_object_new_double(c->loss_active_pct));
	json_object_object_add(root, "gain_after_pct", json_object_new_double(c->gain_after_pct));
	json_object_object_add(root, "pause_share_active", json_object_new_double(c->pause_share_active));
	json_object_object_add(root, "off", bd__run_json(off, c->window_s));
	json_object_object_add(root, "on", bd__run_json(on, c->window_s));
	printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	json_object_put(root);
}

static void bd__print_text(const struct bd_opts *o, const struct bd_run *off, const struct bd_run *on,
			   const struct bd_cmp *c)
{
	const struct defragd_policy *p = &on->policy;

	printf("vmcompact bench defragd: %llu MiB guest, age %.2f, seed %llu, %u vCPU GUPS, %.1f s per window\n",
	       (unsigned long long)(o->guest.mem_bytes >> 20), o->guest.age, (unsigned long long)o->guest.seed, o->guest.cpus,
	       c->window_s);
	printf("  defragd policy: proactiveness %u (wmark low %u high %u), interval %u ms, %u regions/wakeup,\n"
	       "                  max pause %u us/step, max %u MB/s, backoff %u ms\n",
	       p->proactiveness, defragd__wmark(p->proactiveness, true), defragd__wmark(p->proactiveness, false),
	       p->interval_ms, p->regions_per_wakeup, p->max_pause_us, p->max_mbps, p->backoff_ms);
	printf("  GUPS per second (M updates/s):\n    %-8s", "second");
	for (double t = 0; t + 1.0 <= c->window_s + 1e-6; t += 1.0)
		printf(" %6.0f", t + 1);
	printf("\n    %-8s", "off");
	for (double t = 0; t + 1.0 <= c->window_s + 1e-6; t += 1.0)
		printf(" %6.2f", bd__gups(off, t, t + 1.0) / 1e6);
	printf("\n    %-8s", "auto");
	for (double t = 0; t + 1.0 <= c->window_s + 1e-6; t += 1.0)
		printf(" %6.2f", bd__gups(on, t, t + 1.0) / 1e6);
	printf("\n");
	if (on->t_converged >= 0)
		printf("  defragd compacted from 0 to %.2f s (then %s)\n", on->t_converged,
		       defragd_state_names[on->state]);
	else
		printf("  defragd was still compacting at the end of the window\n");
	printf("  %-40s %12s %12s %9s\n", "M updates/s", "defragd off", "auto", "change");
	printf("  %-40s %12.2f %12.2f %+8.1f%%\n", "while defragd compacts (0..active)", c->gups_off_active / 1e6,
	       c->gups_on_active / 1e6, -c->loss_active_pct);
	printf("  %-40s %12.2f %12.2f %+8.1f%%\n", "after it converged (active..end)", c->gups_off_after / 1e6,
	       c->gups_on_after / 1e6, c->gain_after_pct);
	printf("  %-40s %12.2f %12.2f %+8.1f%%\n", "whole window", c->gups_off / 1e6, c->gups_on / 1e6,
	       -c->loss_window_pct);
	printf("  loss while compacting: %.1f%% (target <= 5%%); vCPUs paused %.1f%% of that time\n",
	       c->loss_active_pct, 100.0 * c->pause_share_active);
	printf("  defragd: %llu wakeups, %llu rounds (%llu chunks seen), %llu regions promoted, %llu pages copied, "
	       "%llu backoffs, %llu failures\n", (unsigned long long)on->cnt.wakeups,
	       (unsigned long long)on->cnt.rounds, (unsigned long long)on->chunks,
	       (unsigned long long)on->cnt.regions_promoted, (unsigned long long)on->cnt.pages_copied,
	       (unsigned long long)on->cnt.backoffs, (unsigned long long)on->cnt.failures);
	printf("  defragd pauses: %llu steps, total %.1f ms, max %.0f us, p99 %.0f us (worst chunk's p99)\n",
	       (unsigned long long)on->steps, on->pause_total_ns / 1e6, on->pause_max_ns / 1e3,
	       on->pause_p99_max_ns / 1e3);
	printf("  backing_2m: off %.3f -> %.3f, auto %.3f -> %.3f (achievable %.3f); KVM pages_2m at the end: "
	       "off %llu, auto %llu\n", off->start.backing_2m, off->end.backing_2m, on->start.backing_2m,
	       on->end.backing_2m, on->end.backing_2m_achievable, (unsigned long long)off->kvm_end.pages_2m,
	       (unsigned long long)on->kvm_end.pages_2m);
	printf("  The whole-window figure mixes the cost (pauses, copies, TLB and shadow-page rebuilds while\n"
	       "  compacting) with the payoff (2 MiB mappings afterwards); the compacting-phase figure is the\n"
	       "  cost, and it is an underestimate of the pure cost as collapsed regions already run faster.\n");
}

int bench_defragd__cmd(int argc, char **argv)
{
	struct bd_opts o;
	struct bd_run off, on;
	struct bd_cmp c;
	int rc;

	bd__defaults(&o);
	rc = bench__parse_args(argc, argv, "defragd", bd_longopts, bench_defragd__usage, &o.guest, bd__parse_opt, &o);
	if (rc)
		return rc > 0 ? 0 : VMC_EXIT_USAGE;
	if (!o.json)
		fprintf(stderr, "bench defragd: %llu MiB at age %.2f, seed %llu: %.1f s with defragd off, "
			"then %.1f s with --defrag auto...\n", (unsigned long long)(o.guest.mem_bytes >> 20), o.guest.age,
			(unsigned long long)o.guest.seed, o.window_ms / 1e3, o.window_ms / 1e3);
	bd__one(&o, false, &off);
	if (off.rc)
		fprintf(stderr, "vmcompact bench defragd: defragd off: %s\n", off.err);
	bd__one(&o, true, &on);
	if (on.rc)
		fprintf(stderr, "vmcompact bench defragd: defragd on: %s\n", on.err);
	rc = off.rc || on.rc ? 1 : 0;
	if (!rc) {
		bd__compare(&off, &on, &c);
		if (o.json)
			bd__print_json(&o, &off, &on, &c);
		else
			bd__print_text(&o, &off, &on, &c);
	}
	bd__free(&off);
	bd__free(&on);
	return rc;
}
