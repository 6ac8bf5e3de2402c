/* experiment_summary.c: summary.md: the tables a paper would show (medians with min-max), the growth fit, skipped rows and why. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bench/experiment.h"

static const char *size_label(uint64_t b, char *buf, size_t len)
{
	if (b >= (1ull << 30) && b % (1ull << 30) == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(b >> 30));
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(b >> 20));
	return buf;
}

static void cell(FILE *f, struct exp_stat s, double scale, int decimals)
{
	if (!s.n)
		fprintf(f, " – |");
	else if (s.n == 1)
		fprintf(f, " %.*f (n=1) |", decimals, s.median * scale);
	else
		fprintf(f, " %.*f [%.*f–%.*f] |", decimals, s.median * scale, decimals, s.min * scale, decimals,
			s.max * scale);
}

struct wl_metric { const char *workload, *metric, *label; double scale; int decimals; };

static const struct wl_metric wl_metrics[] = {
	{ "chase", "ns_per_access", "chase: ns per dependent load (lower is better)", 1, 1 },
	{ "gups", "ns_per_update", "gups: ns per random update (lower is better)", 1, 2 },
	{ "stream", "bytes_per_sec", "stream: triad GB/s (higher is better)", 1e-9, 2 },
	{ "verify", "verify_errors", "verify: words that lost a write (must be 0)", 1, 0 },
};

static void workload_tables(FILE *f, const struct exp_spec *s, const struct exp_rows *rows, const char *level)
{
	for (size_t m = 0; m < sizeof(wl_metrics) / sizeof(wl_metrics[0]); m++) {
		const struct wl_metric *wm = &wl_metrics[m];
		struct exp_filter any = { .experiment = "workload", .level = level, .workload = wm->workload,
					  .metric = wm->metric };
		char sz[32];

		if (!exp_rows__stat(rows, &any).n)
			continue;
		for (unsigned v = 0; v < s->nr_vcpus; v++) {
			fprintf(f, "\n**%s**, %s level, %u %s, guest %s; median [min–max] of %u runs\n\n| backing |",
				wm->label, level, s->vcpus[v], !strcmp(level, "kvm") ? "vCPU(s)" : "thread(s)",
				size_label(s->guest, sz, sizeof(sz)), s->repetitions);
			for (unsigned i = 0; i < s->nr_working_sets; i++)
				fprintf(f, " ws %s |", size_label(s->working_sets[i], sz, sizeof(sz)));
			fprintf(f, "\n|---|");
			for (unsigned i = 0; i < s->nr_working_sets; i++)
				fprintf(f, "---|");
			fprintf(f, "\n");
			for (unsigned b = 0; b < s->nr_backings; b++) {
				struct exp_filter fl = any;

				fl.backing = s->backings[b];
				fl.vcpus = s->vcpus[v];
				fl.ws_bytes = 0;
				if (!exp_rows__stat(rows, &fl).n)
					continue;
				fprintf(f, "| %s |", s->backings[b]);
				for (unsigned i = 0; i < s->nr_working_sets; i++) {
					fl.ws_bytes = s->working_sets[i];
					cell(f, exp_rows__stat(rows, &fl), wm->scale, wm->decimals);
				}
				fprintf(f, "\n");
			}
		}
	}
}

/* The chase gap at the largest working set: aged and defragged against linear. */
static void chase_gap(FILE *f, const struct exp_spec *s, const struct exp_rows *rows, const char *level)
{
	uint64_t ws = s->nr_working_sets ? s->working_sets[s->nr_working_sets - 1] : 0;
	struct exp_filter fl = { .experiment = "workload", .level = level, .workload = "chase",
				 .metric = "ns_per_access", .ws_bytes = ws };
	const char *names[] = { "aged", "aged+planned", "aged+linux" };
	struct exp_stat lin;
	char sz[32];

	fl.backing = "linear";
	lin = exp_rows__stat(rows, &fl);
	if (!lin.n || lin.median <= 0)
		return;
	fprintf(f, "\nChase at %s (%s level), against linear %.1f ns:", size_label(ws, sz, sizeof(sz)), level, lin.median);
	for (size_t i = 0; i < 3; i++) {
		struct exp_stat st;

		fl.backing = names[i];
		st = exp_rows__stat(rows, &fl);
		if (st.n)
			fprintf(f, " %s %.1f ns (%+.1f %%);", names[i], st.median, 100 * (st.median / lin.median - 1));
	}
	fprintf(f, "\n");
}

static void coverage_table(FILE *f, const struct exp_spec *s, const struct exp_rows *rows)
{
	fprintf(f, "\nShare of guest 2 MiB regions on a host huge page (`backing_2m`) in the measured phase:");
	for (unsigned b = 0; b < s->nr_backings; b++) {
		struct exp_filter fl = { .experiment = "workload", .level = "mm", .backing = s->backings[b],
					 .metric = "backing_2m" };
		struct exp_stat st = exp_rows__stat(rows, &fl);

		if (st.n)
			fprintf(f, " %s %.3f;", s->backings[b], st.median);
	}
	fprintf(f, "\n");
}

static struct exp_stat gstat(const struct exp_rows *rows, const char *backing, uint64_t size, const char *metric)
{
	struct exp_filter fl = { .experiment = "growth", .level = "mm", .backing = backing, .metric = metric,
				 .guest_bytes = size };

	return exp_rows__stat(rows, &fl);
}

/* Some run of this size left achievable regions unbacked (its reason says so). */
static bool incomplete(const struct exp_rows *rows, const char *backing, uint64_t size)
{
	for (size_t i = 0; i < rows->n; i++)
		if (!strcmp(rows->v[i].experiment, "growth") && !strcmp(rows->v[i].backing, backing) &&
		    rows->v[i].guest_bytes == size && !strcmp(rows->v[i].status, "ok") && rows->v[i].reason[0])
			return true;
	return false;
}

static void growth_table(FILE *f, const struct exp_spec *s, const struct exp_rows *rows)
{
	char sz[32], backing[24];

	fprintf(f, "\n| guest | algorithm | defrag s | s/GiB | pages copied | copies/promoted page | steps | "
		   "peak pause µs | p99 pause µs | metadata | VMAs before | |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned i = 0; i < s->nr_growth_sizes; i++)
		for (unsigned g = 0; g < s->nr_growth_algos; g++) {
			struct exp_stat md;

			snprintf(backing, sizeof(backing), "aged+%s", s->growth_algos[g]);
			if (!gstat(rows, backing, s->growth_sizes[i], "defrag_seconds").n)
				continue;
			fprintf(f, "| %s | %s |", size_label(s->growth_sizes[i], sz, sizeof(sz)), s->growth_algos[g]);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "defrag_seconds"), 1, 3);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "seconds_per_gib"), 1, 3);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "pages_copied"), 1, 0);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "copies_per_promoted_page"), 1, 3);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "steps"), 1, 0);
			fprintf(f, " %.0f |", gstat(rows, backing, s->growth_sizes[i], "pause_max_us").max);
			cell(f, gstat(rows, backing, s->growth_sizes[i], "pause_p99_us"), 1, 0);
			md = gstat(rows, backing, s->growth_sizes[i], "metadata_bytes");
			fprintf(f, " %.2f MiB (%.3f %%) |", md.median / (1 << 20),
				100 * md.median / (double)s->growth_sizes[i]);
			fprintf(f, " %.0f |%s\n", gstat(rows, backing, s->growth_sizes[i], "vmas_before").median,
				incomplete(rows, backing, s->growth_sizes[i]) ? " incomplete ¹" : "");
		}
}

/* Fit seconds = a + b * GiB over every run of one series; print b and where the line stops holding. */
static void growth_fit(FILE *f, const struct exp_spec *s, const struct exp_rows *rows, const char *backing,
		       const char *label)
{
	double x[512], y[512], a, b, r2;
	unsigned n = 0;

	for (size_t i = 0; i < rows->n && n < 512; i++) {
		const struct exp_row *r = &rows->v[i];

		if (!strcmp(r->experiment, "growth") && !strcmp(r->level, "mm") && !strcmp(r->backing, backing) &&
		    !strcmp(r->metric, "defrag_seconds") && !strcmp(r->status, "ok") && !r->reason[0]) {
			x[n] = (double)r->guest_bytes / (1ull << 30);
			y[n++] = r->value;
		}
	}
	if (!exp_fit__line(x, y, n, &a, &b, &r2)) {
		fprintf(f, "| %s | – | – | – | – | fewer than 2 sizes |\n", label);
		return;
	}
	fprintf(f, "| %s | **%.3f s/GiB** | %+.3f s | %.4f |", label, b, a, r2);
	{
		/* the fastest run of each size: the least disturbed by other load on a shared host */
		double mx[EXP_MAX_LIST], my[EXP_MAX_LIST], ma, mb, mr2;
		unsigned m = 0;

		for (unsigned i = 0; i < s->nr_growth_sizes; i++) {
			struct exp_stat st = gstat(rows, backing, s->growth_sizes[i], "defrag_seconds");

			if (st.n && !incomplete(rows, backing, s->growth_sizes[i])) {
				mx[m] = (double)s->growth_sizes[i] / (1ull << 30);
				my[m++] = st.min;
			}
		}
		if (exp_fit__line(mx, my, m, &ma, &mb, &mr2))
			fprintf(f, " %.3f s/GiB (R² %.3f) |", mb, mr2);
		else
			fprintf(f, " – |");
	}
	for (unsigned i = 0; i < s->nr_growth_sizes; i++) {
		struct exp_stat st = gstat(rows, backing, s->growth_sizes[i], "defrag_seconds");
		double fit = a + b * (double)s->growth_sizes[i] / (1ull << 30);
		char sz[32];

		if (st.n && fit > 0)
			fprintf(f, " %s %+.0f %%;", size_label(s->growth_sizes[i], sz, sizeof(sz)), 100 * (st.median / fit - 1));
	}
	fprintf(f, " |\n");
}

static void pause_table(FILE *f, const struct exp_spec *s, const struct exp_rows *rows)
{
	char sz[32], backing[24];
	const char *m[] = { "steps", "pause_p50_us", "pause_p90_us", "pause_p99_us", "pause_max_us" };

	fprintf(f, "\nPer-step vCPU pause from the trace file (`vcpu_resume` events) of the first %s growth run:\n\n"
		   "| algorithm | steps | p50 µs | p90 µs | p99 µs | max µs |\n|---|---|---|---|---|---|\n",
		size_label(s->pause_trace_size, sz, sizeof(sz)));
	for (unsigned g = 0; g < s->nr_growth_algos; g++) {
		snprintf(backing, sizeof(backing), "aged+%s", s->growth_algos[g]);
		fprintf(f, "| %s |", s->growth_algos[g]);
		for (size_t i = 0; i < 5; i++) {
			struct exp_filter fl = { .experiment = "pause", .backing = backing, .metric = m[i] };
			struct exp_stat st = exp_rows__stat(rows, &fl);

			fprintf(f, st.n ? " %.0f |" : " – |", st.median);
		}
		fprintf(f, "\n");
	}
}

static void timeline_text(FILE *f, const struct exp_spec *s, const struct exp_rows *rows)
{
	double first_cov = -1, last_cov = -1, sum[3] = { 0 }, dsecs = 0, start = 0;
	unsigned cnt[3] = { 0 };
	char sz[32];

	for (size_t i = 0; i < rows->n; i++) {
		const struct exp_row *r = &rows->v[i];

		if (strcmp(r->experiment, "timeline") || strcmp(r->status, "ok") || strcmp(r->level, "mm"))
			continue;
		if (r->t_s < 0 && !strcmp(r->metric, "defrag_seconds"))
			dsecs = r->value;
		if (r->t_s < 0 && !strcmp(r->metric, "defrag_start_s"))
			start = r->value;
		if (r->t_s >= 0 && !strcmp(r->metric, "coverage_2m")) {
			if (first_cov < 0)
				first_cov = r->value;
			last_cov = r->value;
		}
	}
	for (size_t i = 0; i < rows->n; i++) {
		const struct exp_row *r = &rows->v[i];
		int phase;

		if (strcmp(r->experiment, "timeline") || strcmp(r->status, "ok") || r->t_s < 0 ||
		    strcmp(r->metric, "ops_per_sec"))
			continue;
		phase = r->t_s <= start ? 0 : r->t_s <= start + dsecs ? 1 : r->t_s > start + dsecs + 0.3 ? 2 : -1;
		if (phase >= 0) {
			sum[phase] += r->value;
			cnt[phase]++;
		}
	}
	if (first_cov < 0) {
		fprintf(f, "\nNo timeline run.\n");
		return;
	}
	fprintf(f, "\nA %s guest running `%s` on one thread; after 1 s the planned defrag starts under a copy budget "
		   "of %llu MB/s (a background defragmenter's pace): coverage %.1f %% → %.1f %% in %.1f s. Throughput "
		   "(wall clock, pauses included): before %.2f M/s, during %.2f M/s, after %.2f M/s.\n",
		size_label(s->timeline_mem, sz, sizeof(sz)), s->timeline_workload, (unsigned long long)s->timeline_max_mbps,
		100 * first_cov, 100 * last_cov, dsecs, cnt[0] ? sum[0] / cnt[0] / 1e6 : 0,
		cnt[1] ? sum[1] / cnt[1] / 1e6 : 0, cnt[2] ? sum[2] / cnt[2] / 1e6 : 0);
}

/* Skipped and failed rows, grouped by what was skipped and why. */
static void not_run(FILE *f, const struct exp_rows *rows, const char *status)
{
	unsigned shown = 0;

	for (size_t i = 0; i < rows->n; i++) {
		const struct exp_row *r = &rows->v[i];
		unsigned count = 0;
		bool seen = false;

		if (strcmp(r->status, status))
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = !strcmp(rows->v[k].status, status) && !strcmp(rows->v[k].experiment, r->experiment) &&
			       !strcmp(rows->v[k].level, r->level) && !strcmp(rows->v[k].backing, r->backing) &&
			       !strcmp(rows->v[k].reason, r->reason);
		if (seen)
			continue;
		for (size_t k = i; k < rows->n; k++)
			count += !strcmp(rows->v[k].status, status) && !strcmp(rows->v[k].experiment, r->experiment) &&
				 !strcmp(rows->v[k].level, r->level) && !strcmp(rows->v[k].backing, r->backing) &&
				 !strcmp(rows->v[k].reason, r->reason);
		if (!shown++)
			fprintf(f, "\n| experiment | level | backing | rows | why |\n|---|---|---|---|---|\n");
		fprintf(f, "| %s | %s | %s | %u | %s |\n", r->experiment, r->level, r->backing, count, r->reason);
	}
	if (!shown)
		fprintf(f, "\nNone.\n");
}

int exp_report__summary(const char *dir, const struct exp_spec *s, const struct exp_host *h,
			const struct exp_rows *rows, double elapsed_s, char *err, size_t errlen)
{
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/summary.md", dir);
	if (!(f = fopen(path, "we"))) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "# vmcompact experiment\n\nSpec `%s`, %.0f s, %zu result rows (`results.csv`; machine in "
		   "`machine.json`; every row carries the command that reproduces it).\n", s->path, elapsed_s, rows->n);
	if (!h->kvm)
		fprintf(f, "\n**No /dev/kvm on this host: every measured row is at the mm level.** The same frame pool, "
			   "GPA map, window and defrag engine as a VM, with host threads in place of vCPUs: they read and "
			   "write guest memory through the window, so the host's page tables stand in for KVM's (4 KiB "
			   "mappings where the layout is scattered, one 2 MiB PMD where a region sits on a host huge page), "
			   "and the engine parks them around every step as it parks vCPUs. Defrag cost is the engine's own "
			   "(no MMU-notifier or vCPU-kick cost, which MEASURED.md puts at about 12 vs 6 µs per 4 KiB remap). "
			   "KVM rows are listed below as skipped.\n");
	fprintf(f, "\n## Access cost per backing\n");
	workload_tables(f, s, rows, "mm");
	workload_tables(f, s, rows, "kvm");
	chase_gap(f, s, rows, "mm");
	chase_gap(f, s, rows, "kvm");
	coverage_table(f, s, rows);
	fprintf(f, "\n## Defrag cost as the guest grows (age %.2f, seed %llu, slack %s)\n", s->age,
		(unsigned long long)s->seed, s->slack);
	growth_table(f, s, rows);
	fprintf(f, "\n¹ At least one run left regions it could have backed unbacked (see the rows' reason in "
		   "results.csv): it did less work, so it is left out of the fit below.\n");
	fprintf(f, "\nLeast-squares fit of defrag seconds against guest GiB over every run (cost per GiB = slope), "
		   "and each size's median against the fit; the fit over each size's fastest run is less disturbed by other "
		   "load on a shared host:\n\n| series | cost per GiB | intercept | R² | fastest runs: cost per GiB | median vs fit |\n"
		   "|---|---|---|---|---|---|\n");
	for (unsigned g = 0; g < s->nr_growth_algos; g++) {
		char backing[24], label[48];

		snprintf(backing, sizeof(backing), "aged+%s", s->growth_algos[g]);
		snprintf(label, sizeof(label), "vmcompact %s", s->growth_algos[g]);
		growth_fit(f, s, rows, backing, label);
	}
	growth_fit(f, s, rows, "madv_collapse", "MADV_COLLAPSE (4K anon)");
	growth_fit(f, s, rows, "memcpy", "memcpy (4 KiB frames)");
	fprintf(f, "\nA size whose median sits far above the line (tens of %%) is where cost stops growing linearly.\n");
	fprintf(f, "\n## vCPU pause per defrag step\n");
	pause_table(f, s, rows);
	fprintf(f, "\n## Coverage and throughput while the defragmenter runs\n");
	timeline_text(f, s, rows);
	fprintf(f, "\n## Plots\n\n- `plots/access.png`: ns per access against working set, per backing\n"
		   "- `plots/growth.png`: defrag seconds per GiB against guest size, per algorithm, with MADV_COLLAPSE and memcpy\n"
		   "- `plots/pause_cdf.png`: CDF of the per-step vCPU pause\n"
		   "- `plots/timeline.png`: 2 MiB coverage and guest throughput over time during a budgeted defrag\n"
		   "\nThe gnuplot scripts and their data sit next to the PNGs (`plots/*.gp`, `plots/*.dat`).\n");
	fprintf(f, "\n## Skipped (cannot run here)\n");
	not_run(f, rows, "skipped");
	fprintf(f, "\n## Failed\n");
	not_run(f, rows, "failed");
	if (fclose(f)) {
		snprintf(err, errlen, "writing %s failed", path);
		return -1;
	}
	return 0;
}
