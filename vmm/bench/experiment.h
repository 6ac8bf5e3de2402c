/* experiment.h: `vmcompact experiment`: the spec, the tidy result rows, and the report and plot writers. */
#ifndef VMC_VMM_BENCH_EXPERIMENT_H
#define VMC_VMM_BENCH_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXP_MAX_LIST 12

/* A parsed spec file (scripts/experiments/NAME.spec): key = value, lists comma-separated. */
struct exp_spec {
	char path[512];
	uint64_t guest;                        /* guest size of the workload rows */
	double age;
	uint64_t seed;
	char slack[16];
	char backings[EXP_MAX_LIST][24]; unsigned nr_backings;
	char workloads[EXP_MAX_LIST][12]; unsigned nr_workloads;
	uint64_t working_sets[EXP_MAX_LIST]; unsigned nr_working_sets;
	unsigned vcpus[EXP_MAX_LIST]; unsigned nr_vcpus;
	unsigned repetitions;
	uint64_t measure_ms;
	bool chase_page;                       /* chase = page | line */
	uint64_t growth_sizes[EXP_MAX_LIST]; unsigned nr_growth_sizes;
	bool growth_optional[EXP_MAX_LIST];    /* "4G?": only if MemAvailable allows */
	char growth_algos[EXP_MAX_LIST][12]; unsigned nr_growth_algos;
	unsigned growth_repetitions;
	uint64_t pause_trace_size;             /* growth size whose first run writes a trace (pause CDF) */
	uint64_t timeline_mem;                 /* 0: no timeline run */
	char timeline_workload[12];
	uint64_t timeline_max_mbps, timeline_ms;
};

/* 0, or -1 with a one-line message in err naming the file, line and problem. */
int exp_spec__load(struct exp_spec *s, const char *path, char *err, size_t errlen);

/* One tidy result: one run and one metric (or a skipped/failed run with its reason). */
struct exp_row {
	char experiment[12];   /* workload, growth, timeline, pause */
	char level[8];         /* kvm (a real guest) or mm (engine + host threads, no vCPU) */
	char backing[24];
	char workload[12];
	uint64_t ws_bytes, guest_bytes;
	unsigned vcpus, rep;
	double t_s;            /* timeline rows: seconds since the defragmenter started; else -1 */
	char metric[32];
	double value;
	char unit[16];
	char status[8];        /* ok, skipped, failed */
	char reason[240];
	char command[640];     /* reproduces this row */
};

struct exp_rows {
	struct exp_row *v;
	size_t n, cap;
};

/* Append a row (copied); NULL when out of memory. */
struct exp_row *exp_rows__add(struct exp_rows *rows, const struct exp_row *r);
void exp_rows__free(struct exp_rows *rows);

/* What this host can run. */
struct exp_host {
	bool kvm;
	bool qemu_cmd;         /* `vmcompact qemu run` exists in this binary */
	bool qemu_binary;      /* qemu-system-x86_64 in PATH */
	bool hugetlb;          /* huge pages reserved and a hugetlbfs mounted */
	char hugetlb_mount[256];
	uint64_t mem_available;
	uint64_t max_map_count;
	char self[512];        /* this vmcompact binary */
};

/* experiment_report.c */
int exp_report__machine_json(const char *dir, const struct exp_host *h, char *err, size_t errlen);
int exp_report__csv(const char *dir, const struct exp_rows *rows, char *err, size_t errlen);
int exp_report__summary(const char *dir, const struct exp_spec *s, const struct exp_host *h,
			const struct exp_rows *rows, double elapsed_s, char *err, size_t errlen);
/* Median, min and max of the ok rows matching the filter (NULL/0 fields match anything). */
struct exp_stat { double median, min, max; unsigned n; };
struct exp_filter {
	const char *experiment, *level, *backing, *workload, *metric;
	uint64_t ws_bytes, guest_bytes;
	unsigned vcpus;
	bool complete_only;     /* skip rows flagged with a reason (e.g. an incomplete defrag) */
};
struct exp_stat exp_rows__stat(const struct exp_rows *rows, const struct exp_filter *f);
/* Least squares y = a + b x over the growth rows of one series; false with < 2 sizes. */
bool exp_fit__line(const double *x, const double *y, unsigned n, double *a, double *b, double *r2);

/* experiment_plot.c: data files and gnuplot scripts under dir/plots, PNGs rendered with gnuplot.
 * Returns the number of PNGs written; notes (what was not plotted and why) go to note. */
int exp_plot__all(const char *dir, const struct exp_spec *s, const struct exp_rows *rows,
		  char *note, size_t notelen);
/* Per-step pause times (µs) from a trace file's vcpu_resume events, sorted; caller frees. */
double *exp_trace__pauses_us(const char *path, size_t *n);

#endif
