/* experiment_plot.c: the experiment's plots: gnuplot data and scripts under DIR/plots, rendered to PNG. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/bench/experiment.h"

#define PLOT_TERM "set terminal pngcairo size 1100,700 enhanced font 'DejaVu Sans,12'\n"

double *exp_trace__pauses_us(const char *path, size_t *n)
{
	FILE *f = fopen(path, "re");
	char line[512];
	double *v = NULL;
	size_t cap = 0;

	*n = 0;
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, " vcpu_resume: ");
		unsigned long long ns;

		if (!p || !(p = strstr(p, "pause_ns=")) || sscanf(p, "pause_ns=%llu", &ns) != 1)
			continue;
		if (*n == cap) {
			double *nv = realloc(v, (cap = cap ? cap * 2 : 4096) * sizeof(*v));

			if (!nv)
				break;
			v = nv;
		}
		v[(*n)++] = (double)ns / 1000.0;
	}
	fclose(f);
	return v;
}

static FILE *open_in(const char *dir, const char *name)
{
	char path[4300];

	snprintf(path, sizeof(path), "%s/plots/%s", dir, name);
	return fopen(path, "we");
}

static int render(const char *dir, const char *script)
{
	char cmd[4400];

	snprintf(cmd, sizeof(cmd), "cd '%s/plots' && gnuplot '%s' 2>>gnuplot.log", dir, script);
	return system(cmd) == 0 ? 1 : 0;
}

static void add_note(char *note, size_t len, const char *msg)
{
	size_t o = strlen(note);

	snprintf(note + o, len - o, "%s%s", o ? "; " : "", msg);
}

/* ns per chase access against working set, one line per backing (and level). */
static int plot_access(const char *dir, const struct exp_spec *s, const struct exp_rows *rows, char *note, size_t len)
{
	FILE *d = open_in(dir, "access.dat"), *g = open_in(dir, "access.gp");
	const char *levels[] = { "mm", "kvm" };
	unsigned series = 0;

	if (!d || !g)
		goto fail;
	fprintf(g, PLOT_TERM "set output 'access.png'\n"
		   "set title 'Pointer chase: cost of a dependent load vs working set (median, bars min-max)'\n"
		   "set xlabel 'working set (MiB, log scale)'\nset ylabel 'ns per access (log scale)'\nset logscale x 2\n"
		   "set logscale y 10\nset key top left box opaque\nset grid\nplot");
	for (size_t l = 0; l < 2; l++)
		for (unsigned b = 0; b < s->nr_backings; b++) {
			struct exp_filter fl = { .experiment = "workload", .level = levels[l], .backing = s->backings[b],
						 .workload = "chase", .metric = "ns_per_access" };
			bool any = false;

			for (unsigned i = 0; i < s->nr_working_sets; i++) {
				struct exp_stat st;

				fl.ws_bytes = s->working_sets[i];
				st = exp_rows__stat(rows, &fl);
				if (!st.n)
					continue;
				if (!any)
					fprintf(d, "# %s %s\n", levels[l], s->backings[b]);
				any = true;
				fprintf(d, "%.0f %.3f %.3f %.3f\n", s->working_sets[i] / 1048576.0, st.median, st.min, st.max);
			}
			if (!any)
				continue;
			fprintf(d, "\n\n");
			fprintf(g, "%s 'access.dat' index %u using 1:2:3:4 with yerrorlines lw 2 pt 7 title '%s (%s)'",
				series ? ", \\\n  " : " ", series, s->backings[b],
				!strcmp(levels[l], "mm") ? "mm level: host threads" : "KVM guest");
			series++;
		}
	fprintf(g, "\n");
	fclose(d);
	fclose(g);
	if (!series) {
		add_note(note, len, "access.png: no chase rows");
		return 0;
	}
	return render(dir, "access.gp");
fail:
	if (d) fclose(d);
	if (g) fclose(g);
	return 0;
}

/* Defrag seconds per GiB against guest size: each algorithm, MADV_COLLAPSE and memcpy. */
static int plot_growth(const char *dir, const struct exp_spec *s, const struct exp_rows *rows, char *note, size_t len)
{
	FILE *d = open_in(dir, "growth.dat"), *g = open_in(dir, "growth.gp");
	char names[EXP_MAX_LIST + 2][24], titles[EXP_MAX_LIST + 2][64];
	unsigned nn = 0, series = 0;

	if (!d || !g)
		goto fail;
	for (unsigned a = 0; a < s->nr_growth_algos && nn < EXP_MAX_LIST; a++, nn++) {
		snprintf(names[nn], sizeof(names[nn]), "aged+%s", s->growth_algos[a]);
		snprintf(titles[nn], sizeof(titles[nn]), "vmcompact %s defrag (mm level)", s->growth_algos[a]);
	}
	snprintf(names[nn], 24, "madv_collapse");
	snprintf(titles[nn++], 64, "Linux MADV\\_COLLAPSE, 4 KiB anon");
	snprintf(names[nn], 24, "memcpy");
	snprintf(titles[nn++], 64, "memcpy of the same 4 KiB frames");
	fprintf(g, PLOT_TERM "set output 'growth.png'\n"
		   "set title 'Defrag cost per GiB as the guest grows (age %.2f; median, bars min-max; incomplete runs left out)'\n"
		   "set xlabel 'guest size (GiB, log scale)'\nset ylabel 'seconds per GiB of guest'\nset logscale x 2\n"
		   "set key top left box opaque\nset grid\nset yrange [0:*]\nplot", s->age);
	for (unsigned k = 0; k < nn; k++) {
		bool any = false;

		for (unsigned i = 0; i < s->nr_growth_sizes; i++) {
			struct exp_filter fl = { .experiment = "growth", .level = "mm", .backing = names[k],
						 .metric = "seconds_per_gib", .guest_bytes = s->growth_sizes[i],
						 .complete_only = true };
			struct exp_stat st = exp_rows__stat(rows, &fl);

			if (!st.n)
				continue;
			if (!any)
				fprintf(d, "# %s\n", names[k]);
			any = true;
			fprintf(d, "%.4f %.4f %.4f %.4f\n", s->growth_sizes[i] / 1073741824.0, st.median, st.min, st.max);
		}
		if (!any)
			continue;
		fprintf(d, "\n\n");
		fprintf(g, "%s 'growth.dat' index %u using 1:2:3:4 with yerrorlines lw 2 pt 7 title '%s'",
			series ? ", \\\n  " : " ", series, titles[k]);
		series++;
	}
	fprintf(g, "\n");
	fclose(d);
	fclose(g);
	if (!series) {
		add_note(note, len, "growth.png: no growth rows");
		return 0;
	}
	return render(dir, "growth.gp");
fail:
	if (d) fclose(d);
	if (g) fclose(g);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int plot_pause_cdf(const char *dir, const struct exp_spec *s, char *note, size_t len)
{
	FILE *d = open_in(dir, "pause_cdf.dat"), *g = open_in(dir, "pause_cdf.gp");
	unsigned series = 0;

	if (!d || !g)
		goto fail;
	fprintf(g, PLOT_TERM "set output 'pause_cdf.png'\n"
		   "set title 'vCPU pause per defrag step (from the trace file, %llu MiB guest, age %.2f)'\n"
		   "set xlabel 'pause per step (µs, log scale)'\nset ylabel 'share of steps with pause <= x'\n"
		   "set logscale x 10\nset yrange [0:1.02]\nset key bottom right box opaque\nset grid\n"
		   "set arrow from 1000, graph 0 to 1000, graph 1 nohead dt 2 lc rgb 'gray'\n"
		   "set label '1 ms step budget' at 1000, graph 0.5 offset 0.5,0 textcolor rgb 'gray40'\nplot",
		(unsigned long long)(s->pause_trace_size >> 20), s->age);
	for (unsigned a = 0; a < s->nr_growth_algos; a++) {
		char path[4300], sz[32];
		size_t n;
		double *p;

		if (s->pause_trace_size % (1ull << 30) == 0)
			snprintf(sz, sizeof(sz), "%lluG", (unsigned long long)(s->pause_trace_size >> 30));
		else
			snprintf(sz, sizeof(sz), "%lluM", (unsigned long long)(s->pause_trace_size >> 20));
		snprintf(path, sizeof(path), "%s/runs/trace-%s-%s.trace", dir, sz, s->growth_algos[a]);
		p = exp_trace__pauses_us(path, &n);
		if (!p || !n) {
			free(p);
			continue;
		}
		qsort(p, n, sizeof(*p), cmp_double);
		fprintf(d, "# %s: %zu steps\n", s->growth_algos[a], n);
		for (size_t i = 0, stride = n > 4000 ? n / 4000 : 1; i < n; i += stride)
			fprintf(d, "%.2f %.5f\n", p[i], (double)(i + 1) / n);
		fprintf(d, "%.2f 1.0\n\n\n", p[n - 1]);
		fprintf(g, "%s 'pause_cdf.dat' index %u using 1:2 with steps lw 2 title '%s (%zu steps)'",
			series ? ", \\\n  " : " ", series, s->growth_algos[a], n);
		series++;
		free(p);
	}
	fprintf(g, "\n");
	fclose(d);
	fclose(g);
	if (!series) {
		add_note(note, len, "pause_cdf.png: no trace file with vcpu_resume events");
		return 0;
	}
	return render(dir, "pause_cdf.gp");
fail:
	if (d) fclose(d);
	if (g) fclose(g);
	return 0;
}

static int plot_timeline(const char *dir, const struct exp_spec *s, const struct exp_rows *rows, char *note, size_t len)
{
	FILE *d = open_in(dir, "timeline.dat"), *g = open_in(dir, "timeline.gp");
	unsigned n = 0;
	double dsecs = 0, start = 0;

	if (!d || !g)
		goto fail;
	fprintf(d, "# t_s coverage_pct ops_M_per_s\n");
	for (size_t i = 0; i < rows->n; i++) {
		const struct exp_row *r = &rows->v[i];

		if (strcmp(r->experiment, "timeline") || strcmp(r->status, "ok"))
			continue;
		if (r->t_s < 0 && !strcmp(r->metric, "defrag_seconds"))
			dsecs = r->value;
		if (r->t_s < 0 && !strcmp(r->metric, "defrag_start_s"))
			start = r->value;
		/* coverage and ops come in pairs with the same t */
		if (r->t_s >= 0 && !strcmp(r->metric, "coverage_2m") && i + 1 < rows->n &&
		    !strcmp(rows->v[i + 1].metric, "ops_per_sec")) {
			fprintf(d, "%.3f %.2f %.4f\n", r->t_s, 100 * r->value, rows->v[i + 1].value / 1e6);
			n++;
		}
	}
	fprintf(g, PLOT_TERM "set output 'timeline.png'\n"
		   "set title \"%llu MiB guest, %s on one thread, planned defrag at %llu MB/s copy budget (mm level)\"\n"
		   "set xlabel 'time (s)'\nset ylabel '2 MiB coverage of guest memory (%%)'\n"
		   "set y2label '%s throughput (M %ss per second)'\nset yrange [0:105]\nset y2range [0:*]\n"
		   "set ytics nomirror\nset y2tics\nset key below box\nset bmargin 6\nset grid\n"
		   "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb 'gray'\n"
		   "set label 'defrag starts' at %.3f, graph 0.06 offset 0.5,0 textcolor rgb 'gray40'\n"
		   "set arrow from %.3f, graph 0 to %.3f, graph 1 nohead dt 2 lc rgb 'gray'\n"
		   "set label 'defrag done' at %.3f, graph 0.06 offset 0.5,0 textcolor rgb 'gray40'\n"
		   "plot 'timeline.dat' using 1:2 with lines lw 2 title '2 MiB coverage (left axis)', \\\n"
		   "  'timeline.dat' using 1:3 axes x1y2 with lines lw 2 title '%s throughput (right axis)'\n",
		(unsigned long long)(s->timeline_mem >> 20), s->timeline_workload, (unsigned long long)s->timeline_max_mbps,
		s->timeline_workload, !strcmp(s->timeline_workload, "gups") ? "update" : "op", start, start, start,
		start + dsecs, start + dsecs, start + dsecs,
		s->timeline_workload);
	fclose(d);
	fclose(g);
	if (!n) {
		add_note(note, len, "timeline.png: no timeline samples");
		return 0;
	}
	return render(dir, "timeline.gp");
fail:
	if (d) fclose(d);
	if (g) fclose(g);
	return 0;
}

int exp_plot__all(const char *dir, const struct exp_spec *s, const struct exp_rows *rows, char *note, size_t len)
{
	char path[4300];
	int n = 0;

	note[0] = 0;
	snprintf(path, sizeof(path), "%s/plots", dir);
	if (mkdir(path, 0755) && errno != EEXIST) {
		add_note(note, len, "cannot create plots/");
		return 0;
	}
	if (system("command -v gnuplot >/dev/null 2>&1")) {
		add_note(note, len, "gnuplot not installed (apt-get install gnuplot-nox; scripts/setup.sh does): "
				    "data and scripts written, no PNGs");
	}
	n += plot_access(dir, s, rows, note, len);
	n += plot_growth(dir, s, rows, note, len);
	n += plot_pause_cdf(dir, s, note, len);
	n += plot_timeline(dir, s, rows, note, len);
	return n;
}
